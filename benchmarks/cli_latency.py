"""CLI latency: the median wall time of ``rayka topics list``, attached to a running runtime vs cold.

Then, attached, the median of other commands: describe, a small produce from stdin, a
bounded consume, groups list.

    python -m benchmarks.cli_latency [--runs 5]

"attached": the data dir's shared local runtime is already running, so the command
imports rayka, attaches to the head and asks the coordinator. "cold": no runtime is
running, so the command also starts the detached Ray head (and its coordinator);
the runtime is stopped before each cold run. Both use a fresh HOME and data dir in
a temp dir, and the runtime is stopped at the end. Also printed: the bare
``python -c "import rayka"`` time, the floor of any command.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAYKA = [sys.executable, "-m", "rayka.cli"]


def timed(cmd, env, stdin: bytes | None = None) -> float:
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, input=stdin, capture_output=True, timeout=180)
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {out.stderr.decode()[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rayka-cli-") as tmp:
        env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAYKA_ADDRESS")}
        Path(tmp, "home").mkdir()
        env.update(HOME=str(Path(tmp, "home")), RAYKA_DATA_DIR=str(Path(tmp, "data")))
        try:
            imports = [timed([sys.executable, "-c", "import rayka"], env) for _ in range(args.runs)]
            cold = []
            for _ in range(args.runs):
                subprocess.run(RAYKA + ["runtime", "stop"], env=env, capture_output=True, timeout=120)
                cold.append(timed(RAYKA + ["topics", "list"], env))
            attached = [timed(RAYKA + ["topics", "list"], env) for _ in range(args.runs)]
            timed(RAYKA + ["topics", "create", "latency", "--partitions", "2"], env)
            lines = b"".join(b"record %d\n" % i for i in range(10))
            others = {
                "topics describe": [timed(RAYKA + ["topics", "describe", "latency"], env)
                                    for _ in range(args.runs)],
                "produce (10 lines, stdin)": [timed(RAYKA + ["produce", "latency"], env, stdin=lines)
                                              for _ in range(args.runs)],
                "consume --max 10": [timed(RAYKA + ["consume", "latency", "--from-beginning", "--max", "10",
                                                    "--timeout-ms", "5000"], env) for _ in range(args.runs)],
                "groups list": [timed(RAYKA + ["groups", "list"], env) for _ in range(args.runs)],
            }
        finally:
            subprocess.run(RAYKA + ["runtime", "stop"], env=env, capture_output=True, timeout=120)
    load = os.getloadavg()[0]
    print(f"rayka topics list, {args.runs} runs each (load average {load:.1f} on {os.cpu_count()} cores)")
    print(f"{'case':<28}{'median s':>10}{'min s':>9}{'max s':>9}")
    for name, xs in (("import rayka (floor)", imports), ("attached to the runtime", attached),
                     ("cold (starts the runtime)", cold)):
        print(f"{name:<28}{statistics.median(xs):>10.2f}{min(xs):>9.2f}{max(xs):>9.2f}")
    print(f"\nother commands, attached ({args.runs} runs each)")
    for name, xs in others.items():
        print(f"{name:<28}{statistics.median(xs):>10.2f}{min(xs):>9.2f}{max(xs):>9.2f}")


if __name__ == "__main__":
    main()
