# The two set-up commands of the README: `make demo` and `make test` (plus `make bench`).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench install clean

# Keep every Ray socket on loopback for the local runs these targets start.
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER ?= 0
export RAY_USAGE_STATS_ENABLED ?= 0

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (or set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# One stamp per extra, so `make demo` installs only what the library needs.
$(VENV)/.installed-base: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

$(VENV)/.installed-bench: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	@touch $@

install: $(VENV)/.installed-base

demo: $(VENV)/.installed-base
	$(BIN)/rayka demo --reset   # re-runnable: replaces the demo topic of the last run

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest tests

bench: $(VENV)/.installed-bench
	$(BIN)/python -m benchmarks.compare

clean:
	rm -rf $(VENV) build *.egg-info
