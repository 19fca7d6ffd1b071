"""Run the `callvault` command as a user would: a child process, wide output."""

from __future__ import annotations

import os
import subprocess
import sys


def run_callvault(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callvault", *args],
        env={**os.environ, "COLUMNS": "250", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
