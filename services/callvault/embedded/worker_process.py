"""The worker as a child process: how dev, demo, tests and benchmarks run it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from callvault.embedded.processes import ChildProcess


def start_worker_process(env: dict[str, str], log_path: Path, name: str = "worker") -> ChildProcess:
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    child = ChildProcess(name, [sys.executable, "-m", "callvault", "worker"], log_path, env=full_env)
    child.start()
    return child
