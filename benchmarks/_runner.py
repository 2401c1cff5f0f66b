"""Running one peer's runner script in its own virtualenv and reading its JSON line."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path


def run_peer_runner(python: Path, runner: Path, args: list[str], timeout_s: float = 7200) -> dict:
    """Run `python runner args...` and return the last JSON line it printed.

    A runner prints one JSON object per line on stdout (everything else goes to stderr). A
    failing peer must not stop a benchmark: any failure (non-zero exit, no JSON line,
    timeout) comes back as `{"error": "..."}` with the tail of the runner's stderr.
    """
    proc = None
    try:
        proc = subprocess.run(
            [str(python), str(runner), *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=dict(os.environ, PYTHONPATH=""),
        )
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1]
        return json.loads(line)
    except Exception as err:  # a peer failing must not stop the benchmark
        detail = proc.stderr[-400:] if proc is not None else ""
        return {"error": f"{type(err).__name__}: {err} {detail}"}
