"""Dead letters: an input callvault could not read, kept whole with a sentence saying why."""

from __future__ import annotations

import base64
import uuid
from typing import Annotated, Literal

from pydantic import Field

from callvault.contract.base import ContractModel, deterministic_id
from callvault.contract.fields import Timestamp


class SourcePosition(ContractModel):
    topic: str
    partition: Annotated[int, Field(ge=0)]
    offset: Annotated[int, Field(ge=0)]


class DeadLetter(ContractModel):
    type: Literal["deadletter"] = "deadletter"
    event_id: uuid.UUID
    error: str = Field(description="why the input was set aside, for a person")
    source: SourcePosition
    key: str | None = Field(description="the original key, base64")
    value: str | None = Field(description="the original value, base64")
    occurred_at: Timestamp
    # Additive (v1.1): phone numbers are cut out of every input (key and value) before it is kept here.
    numbers_redacted: Annotated[int, Field(ge=0)] = Field(
        0, description="how many phone numbers were replaced by +REDACTED in `key` and `value`"
    )

    @classmethod
    def for_input(
        cls,
        *,
        error: str,
        source: SourcePosition,
        key: bytes | None,
        value: bytes | None,
        occurred_at: object,
        numbers_redacted: int = 0,
    ) -> DeadLetter:
        """One dead letter per input position: a replay produces the same id."""
        return cls(
            event_id=deterministic_id("deadletter", source.topic, str(source.partition), str(source.offset)),
            error=error,
            source=source,
            key=None if key is None else base64.b64encode(key).decode("ascii"),
            value=None if value is None else base64.b64encode(value).decode("ascii"),
            occurred_at=occurred_at,  # type: ignore[arg-type]
            numbers_redacted=numbers_redacted,
        )
