"""Shared helpers for the infrastructure tests."""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@functools.lru_cache(maxsize=None)
def snapwatch_consumed(cloud: str):
    """What the core consumes for `cloud`, as `snapwatch consumed CLOUD` prints it.

    Uses the binary `make test`'s unit step just built; `cargo run -p` would resolve the CLI's
    features alone and rebuild shared dependencies for nothing. Falls back to cargo when run alone.
    """
    binary = REPO / "target" / "debug" / "snapwatch"
    if binary.is_file():
        command = [str(binary), "consumed", cloud]
    else:
        command = [os.environ.get("CARGO", "cargo"), "run", "-q", "-p", "snapwatch-cli", "--", "consumed", cloud]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, f"snapwatch consumed {cloud} failed:\n{result.stderr}"
    return json.loads(result.stdout)
