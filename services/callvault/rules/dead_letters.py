"""What a dead letter keeps of a refused input: everything but its phone numbers. Pure."""

from __future__ import annotations

from datetime import datetime

from callvault.contract.deadletter import DeadLetter, SourcePosition
from callvault.rules.redaction import call_id_of, redact_key, redact_sentence, redact_value


def dead_letter_for(
    error: str, source: SourcePosition, key: bytes | None, value: bytes | None, now: datetime
) -> DeadLetter:
    """The letter for one input position, its key, value and sentence redacted alike.

    `numbers_redacted` counts what was cut from the key and the value, so a person
    reading the letter knows the bytes are not quite the producer's.
    """
    call_id = call_id_of(value)
    kept_key, in_key = redact_key(key, call_id) if key is not None else (None, 0)
    kept_value, in_value = redact_value(value) if value is not None else (None, 0)
    return DeadLetter.for_input(
        error=redact_sentence(error, keep=call_id),
        source=source,
        key=kept_key,
        value=kept_value,
        occurred_at=now,
        numbers_redacted=in_key + in_value,
    )
