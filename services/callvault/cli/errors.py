"""A user's mistake is one sentence on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError


class UserError(Exception):
    """An error whose message is complete and meant for the person at the terminal."""


def describe_validation_error(exc: ValidationError, name_field: Callable[[str], str] = str) -> str:
    """Each failed field and why, in one line: `call_id: ...; reason: ...`."""
    parts = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{name_field(field)}: {msg}")
    return "; ".join(parts)


def describe_settings_error(exc: ValidationError) -> str:
    return describe_validation_error(exc, lambda field: f"CALLVAULT_{field.upper()}")
