"""What every benchmark prints and keeps: the machine it ran on, and its figures as JSON."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.results import KAFKA

OUT = Path(__file__).resolve().parent / "out"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process so far, from /proc (Linux)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank value at quantile `q` (0..1) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def result_name(name: str, broker: str) -> str:
    """Where a run's figures are kept: `name` on Tansu, `{name}-kafka` on Apache Kafka
    (CALLVAULT_STACK_BROKER=kafka), so the two brokers' figures stand side by side."""
    return f"{name}{KAFKA}" if broker == "kafka" else name


def save(name: str, result: dict[str, Any]) -> None:
    """Write bench/out/{name}.json (`result_name`: -kafka when `result["broker"]` is kafka) and print
    the line that says where the figures come from."""
    OUT.mkdir(exist_ok=True)
    result = {**result, "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
    (OUT / f"{result_name(name, result.get('broker', 'tansu'))}.json").write_text(
        json.dumps(result, indent=2) + "\n"
    )
    print(f"machine: {result['machine']}; stack: {result['stack']}")
