"""Loading settings for a command, with configuration errors turned into sentences."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from callvault.cli.errors import UserError, describe_settings_error
from callvault.settings import Settings


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise UserError(f"configuration error: {describe_settings_error(exc)}") from exc
