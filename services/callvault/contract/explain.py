"""Validation errors as one line a person can act on: `field: what is wrong; other: ...`.

Shared by the command line (options, settings) and the API (422 answers); the
dead-letter decoder has its own, richer wording for producers (`decoding.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any


def describe_errors(errors: Iterable[Mapping[str, Any]], name_field: Callable[[str], str] = str) -> str:
    """Each failed field and why; `name_field` renames a dotted location (a variable, a parameter)."""
    parts = []
    for err in errors:
        field = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{name_field(field)}: {msg}")
    return "; ".join(parts)
