"""A user's mistake is one sentence on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError

from callvault.contract.explain import describe_errors


class UserError(Exception):
    """An error whose message is complete and meant for the person at the terminal."""


def describe_validation_error(exc: ValidationError, name_field: Callable[[str], str] = str) -> str:
    """Each failed field and why, in one line: `call_id: ...; reason: ...`."""
    return describe_errors(exc.errors(include_url=False), name_field)


def describe_settings_error(exc: ValidationError) -> str:
    return describe_validation_error(exc, lambda field: f"CALLVAULT_{field.upper()}")
