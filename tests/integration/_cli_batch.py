"""Several ``rayka`` commands in one child process, for the CLI tests.

Usage: _cli_batch.py IN.json OUT.json

IN.json is a list of {"args": [...], "stdin": "<base64>"}; each command runs, one after the
other, through ``rayka.cli.main(args)`` (the script's entry point) with its own stdin, stdout
and stderr, and OUT.json gets, per command, its exit code and what it wrote (base64). A CLI
test pays for one Python start-up and one Ray connection for all its commands instead of one
per command; what each command prints and its exit code are checked as before.
"""

import base64
import contextlib
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def _stream(data: bytes = b"") -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", write_through=True)


def run_one(args: list[str], stdin: bytes) -> dict:
    """One command: its exit code (as the script would end with it) and its output."""
    from rayka.cli import main

    out, err = _stream(), _stream()
    saved_stdin, sys.stdin = sys.stdin, _stream(stdin)
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(args)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.stdin = saved_stdin
    out.flush()
    err.flush()
    return {"returncode": code, "stdout": base64.b64encode(out.buffer.getvalue()).decode(),
            "stderr": base64.b64encode(err.buffer.getvalue()).decode()}


def run_batch(commands, env, timeout=300) -> list[subprocess.CompletedProcess]:
    """Run ``commands`` ([(args, stdin bytes or None)]) in one child process; one
    CompletedProcess per command, with its exit code, stdout and stderr."""
    with tempfile.TemporaryDirectory(prefix="cli-batch-") as tmp:
        given, got = Path(tmp, "in.json"), Path(tmp, "out.json")
        given.write_text(json.dumps([{"args": list(args), "stdin": base64.b64encode(stdin or b"").decode()}
                                     for args, stdin in commands]))
        proc = subprocess.run([sys.executable, __file__, str(given), str(got)], env=env, capture_output=True,
                              timeout=timeout)
        assert proc.returncode == 0 and got.exists(), (proc.stdout + proc.stderr).decode()[-4000:]
        results = json.loads(got.read_text())
    return [subprocess.CompletedProcess(args, r["returncode"], base64.b64decode(r["stdout"]),
                                        base64.b64decode(r["stderr"])) for (args, _), r in zip(commands, results)]


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        commands = json.load(f)
    results = [run_one(c["args"], base64.b64decode(c.get("stdin", ""))) for c in commands]
    with open(sys.argv[2], "w") as f:
        json.dump(results, f)
