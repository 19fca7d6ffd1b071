"""Loading settings for a command, with configuration errors turned into sentences."""

from __future__ import annotations

import sys
from typing import Any

from pydantic import ValidationError

from callvault.cli.errors import UserError, describe_settings_error
from callvault.settings import Settings


def load_settings(*, acts: bool = True, **overrides: Any) -> Settings:
    """The settings, checked. `acts`: the command pseudonymizes, signs or writes, so off loopback
    it refuses dev and placeholder secrets (only read-only commands pass False)."""
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise UserError(f"configuration error: {describe_settings_error(exc)}") from exc
    if acts:
        try:
            settings.check_production_ready()
        except ValueError as exc:
            raise UserError(str(exc)) from exc
    notice = settings.plaintext_notice()
    if notice is not None:
        print(f"callvault: {notice}", file=sys.stderr)
    return settings
