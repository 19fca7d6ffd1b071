"""What every benchmark prints and keeps: the machine it ran on, and its figures as JSON."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def save(name: str, result: dict[str, Any]) -> None:
    """Write bench/out/{name}.json and print the line that says where the figures come from."""
    OUT.mkdir(exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"machine: {result['machine']}; stack: {result['stack']}")
