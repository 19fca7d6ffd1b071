"""A user's mistake is one sentence on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

from pydantic import ValidationError


class UserError(Exception):
    """An error whose message is complete and meant for the person at the terminal."""


def describe_settings_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"CALLVAULT_{field.upper()}: {msg}")
    return "; ".join(parts)
