"""Option values read into contract types, or refused with one sentence naming the option."""

from __future__ import annotations

import getpass
from datetime import datetime

from pydantic import TypeAdapter, ValidationError

from callvault.cli.errors import UserError
from callvault.contract.explain import describe_errors
from callvault.contract.fields import Timestamp

_instant: TypeAdapter[datetime] = TypeAdapter(Timestamp)


def instant_option(option: str, text: str | None) -> datetime | None:
    """An RFC 3339 instant with its offset, as the contract spells them; None when not given."""
    if text is None:
        return None
    try:
        return _instant.validate_python(text)
    except ValidationError as exc:
        raise UserError(describe_errors(exc.errors(include_url=False), lambda _: option)) from exc


def requester() -> str:
    """Who is at the terminal, for the `requested_by` of a command."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
