"""The command line as a user meets it: the demo end to end, and errors without tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest


def _callvault(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callvault", *args],
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _processes_with(marker: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker.encode() in (proc / "environ").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


@pytest.mark.integration
def test_demo_prints_the_summary_and_leaves_no_process_behind() -> None:
    marker = f"CALLVAULT_TEST_MARK={uuid.uuid4().hex}"
    name, value = marker.split("=")
    result = _callvault("demo", "--calls", "40", env={name: value}, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "outcomes by reason" in out and "archived" in out and "dead letters" in out
    assert "demo finished" in out
    assert _processes_with(marker) == [], "the demo left processes running"


def test_a_bad_setting_is_one_sentence() -> None:
    result = _callvault("storage", "init", env={"CALLVAULT_RECORDING_RETENTION": "a month"})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "callvault: configuration error: CALLVAULT_RECORDING_RETENTION: "
        "'a month' is not an ISO 8601 duration such as P1M, P6M, P30D or PT5M"
    )


def test_schemas_check_passes_on_the_checked_in_schemas() -> None:
    result = _callvault("schemas", "check")
    assert result.returncode == 0, result.stderr
