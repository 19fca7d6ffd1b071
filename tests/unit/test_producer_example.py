"""The producers' example in docs/producers.md runs as shown and prints what the guide says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "producers.md"


def test_the_producer_example_runs_and_prints_what_the_guide_says() -> None:
    section = GUIDE.read_text().split("## Testing your producer against callvault", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None, "the producers' guide lost its example"
    done = subprocess.run([sys.executable, "-c", code.group(1)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines == [
        "['disclosure.verified', 'metadata.archived', 'recording.archived']",
        '"retention_elapsed"',
        "[]",
    ], done.stdout
