"""callvault's own services as child processes: how dev, demo, tests and benchmarks run them."""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

from callvault.embedded.processes import ChildProcess


def start_callvault_process(args: list[str], env: dict[str, str], log_path: Path, name: str) -> ChildProcess:
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    child = ChildProcess(name, [sys.executable, "-m", "callvault", *args], log_path, env=full_env)
    child.start()
    return child


def start_worker_process(env: dict[str, str], log_path: Path, name: str = "worker") -> ChildProcess:
    return start_callvault_process(["worker"], env, log_path, name)


def start_api_process(
    env: dict[str, str],
    log_path: Path,
    port: int,
    name: str = "api",
    timeout: float = 30.0,
    ops_port: int = 0,
) -> ChildProcess:
    """`callvault api` on loopback, returned once /readyz answers (S3 and the broker reached).

    `ops_port`: where its metrics and docs are served (0: nowhere)."""
    env = {
        **env,
        "CALLVAULT_API_HOST": "127.0.0.1",
        "CALLVAULT_API_PORT": str(port),
        "CALLVAULT_API_OPS_PORT": str(ops_port),
    }
    child = start_callvault_process(["api"], env, log_path, name)

    def ready() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:  # noqa: S310
            return bool(answer.status == 200)

    try:
        child.wait_ready(ready, timeout, "ready")
    except BaseException:
        child.stop()
        raise
    return child
