"""Raw Kafka records to contract objects, or to one sentence saying what is wrong.

This never raises: whatever bytes arrive, the caller gets an event or an error
it can put in a dead letter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter, ValidationError

from callvault.contract.call_events import (
    CARD_DIGITS,
    CallEvent,
    PaymentEnded,
    PaymentStarted,
    RecordingStored,
    call_event_adapter,
)
from callvault.contract.json_text import JsonRefused, parse_untrusted

T = TypeVar("T")

DEFAULT_MAX_EVENT_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Decoded(Generic[T]):
    value: T


@dataclass(frozen=True, slots=True)
class Rejected:
    error: str


def _describe(exc: ValidationError, kind: str) -> str:
    """Turn pydantic's errors into sentences: field first, then what is wrong with it."""
    parts: list[str] = []
    for err in exc.errors(include_url=False)[:5]:
        loc = [str(p) for p in err.get("loc", ())]
        # The first location step of a tagged union is the tag itself; it says nothing.
        if len(loc) > 1 and "." in loc[0]:
            loc = loc[1:]
        field = ".".join(loc) or kind
        kind_of = err.get("type", "")
        msg = str(err.get("msg", "is invalid"))
        if kind_of == "missing":
            parts.append(f"field '{field}' is missing")
        elif kind_of == "value_error":
            text = msg.removeprefix("Value error, ")
            parts.append(text if text.startswith(loc[-1] if loc else kind) else f"{field}: {text}")
        elif kind_of == "union_tag_invalid":
            tag = err.get("input", {}).get("type") if isinstance(err.get("input"), dict) else None
            expected = err.get("ctx", {}).get("expected_tags", "")
            parts.append(f"type {tag!r} is not a known {kind} type (known: {expected})")
        elif kind_of == "union_tag_not_found":
            parts.append(f"field 'type' is missing; every {kind} names its type")
        else:
            parts.append(f"field '{field}' {msg[0].lower() + msg[1:]}")
    extra = len(exc.errors()) - 5
    if extra > 0:
        parts.append(f"and {extra} more problem(s)")
    return "; ".join(parts)


def decode_json_object(
    value: bytes | None, kind: str, max_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> Decoded[dict[str, Any]] | Rejected:
    if value is None:
        return Rejected(f"the {kind} has no value (a tombstone); a JSON object was expected")
    if len(value) > max_bytes:
        return Rejected(f"the {kind} is {len(value)} bytes, over the {max_bytes}-byte limit for one event")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejected(f"the {kind} is not UTF-8 text (bad byte at position {exc.start})")
    try:
        obj = parse_untrusted(text)
    except JsonRefused as exc:
        return Rejected(f"the {kind} is refused: {exc}")
    except ValueError as exc:  # json.JSONDecodeError
        msg = getattr(exc, "msg", "unreadable")
        where = f" at line {exc.lineno} column {exc.colno}" if hasattr(exc, "lineno") else ""
        return Rejected(f"the {kind} is not JSON: {msg}{where}")
    if not isinstance(obj, dict):
        return Rejected(f"the {kind} is JSON but not an object (got {type(obj).__name__})")
    return Decoded(obj)


def decode_with(
    adapter: TypeAdapter[T],
    value: bytes | None,
    kind: str,
    max_bytes: int = DEFAULT_MAX_EVENT_BYTES,
) -> Decoded[T] | Rejected:
    raw = decode_json_object(value, kind, max_bytes)
    if isinstance(raw, Rejected):
        return raw
    try:
        return Decoded(adapter.validate_python(raw.value))
    except ValidationError as exc:
        return Rejected(f"the {kind} breaks the contract: {_describe(exc, kind)}")
    except Exception as exc:  # noqa: BLE001 - a decoder that raises would stop the stream
        # Only the kind of failure: its text may quote the input, phone numbers included.
        return Rejected(f"the {kind} could not be read ({type(exc).__name__})")


_CARD_RUN = re.compile(rb"\d{%d,}" % CARD_DIGITS)


def decode_call_event(
    key: bytes | None,
    value: bytes | None,
    max_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    source_buckets: frozenset[str] | None = None,
) -> Decoded[CallEvent] | Rejected:
    """Decode a `call-events` record; its key must be the event's `call_id`.

    A recording's source must lie in one of `source_buckets` (the staging bucket
    and `CALLVAULT_SOURCE_BUCKETS`): the worker reads, copies and deletes sources,
    and one event must never make it touch any other object. `None` skips that
    check, for tools that only read events.
    """
    result = decode_with(call_event_adapter, value, "call event", max_bytes)
    if isinstance(result, Rejected):
        return result
    event = result.value
    if key is not None and key != event.call_id.encode("utf-8"):
        # The key is not quoted: a platform may key by anything, a phone number included.
        return Rejected(
            f"the record key ({len(key)} bytes) is not the event's call_id {event.call_id!r}; "
            "call events are keyed by call_id so that one call stays in order"
        )
    if isinstance(event, PaymentStarted | PaymentEnded) and value is not None and _CARD_RUN.search(value):
        return Rejected(
            f"the {event.type} event is refused: it holds a run of {CARD_DIGITS} or more digits, which may "
            "be a card number, and a payment event carries no card data (its digits are redacted here)"
        )
    if isinstance(event, RecordingStored) and source_buckets is not None:
        problem = event.source_problem(source_buckets)
        if problem is not None:
            return Rejected(f"the call event is refused and nothing was read or deleted: {problem}")
    return result
