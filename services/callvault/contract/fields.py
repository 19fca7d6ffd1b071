"""Field types shared by the contract's models, with errors a person can act on."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, PlainSerializer, WithJsonSchema

CALL_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
TENANT_PATTERN = r"^[a-z0-9-]{1,64}$"
E164_PATTERN = r"^\+[1-9][0-9]{1,14}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
RFC3339_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"

# Python's `$` also matches before a trailing newline ("c-1\n" would pass), so
# every pattern here is applied with `fullmatch`: the whole string or nothing.
# The `^...$` spelling stays for JSON Schema, whose `$` has no such exception.
_CALL_ID = re.compile(CALL_ID_PATTERN)
_TENANT = re.compile(TENANT_PATTERN)
_E164 = re.compile(E164_PATTERN)
_RFC3339 = re.compile(RFC3339_PATTERN)

# Call times outside these years are a producer's bug (a zeroed clock, a sentinel
# such as 9999-12-31), and at the edges of `datetime` turning them into UTC or
# adding a retention term overflows.
EARLIEST_YEAR = 2000
LATEST_YEAR = 2199


def whole_match(pattern: re.Pattern[str], value: str) -> bool:
    """True when `pattern` matches all of `value`, a trailing newline included."""
    return pattern.fullmatch(value) is not None


def _check_call_id(value: str) -> str:
    if not value:
        raise ValueError("call_id is empty; it needs 1 to 128 characters of A-Za-z0-9._:-")
    if len(value) > 128:
        raise ValueError(f"call_id has {len(value)} characters; at most 128 are allowed")
    if not whole_match(_CALL_ID, value):
        raise ValueError(f"call_id {value!r} has characters outside A-Za-z0-9._:-")
    if value in {".", ".."}:
        raise ValueError(f"call_id {value!r} is a path step, not a name")
    return value


def _check_tenant(value: str) -> str:
    if not whole_match(_TENANT, value):
        raise ValueError(f"tenant {value!r} must be 1 to 64 characters of lowercase a-z, 0-9 and '-'")
    return value


def _check_e164(value: str) -> str:
    if not whole_match(_E164, value):
        raise ValueError(
            "phone number is not in E.164 form (a '+', the country code, then at most 15 digits)"
        )
    return value


def _check_text(value: str) -> str:
    """Free text (agent ids, prompt ids, languages) goes into logs and documents: no control characters."""
    for ch in value:
        if ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0:
            raise ValueError(f"holds the control character U+{ord(ch):04X}; plain text is expected")
    return value


def _parse_rfc3339(value: Any) -> Any:
    """Accept only RFC 3339 text with an offset; pydantic alone also takes epochs and naive times."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("timestamp has no UTC offset; RFC 3339 needs one, such as Z or +01:00")
        return value
    if not isinstance(value, str):
        raise ValueError(f"timestamp must be RFC 3339 text, got {type(value).__name__}")
    if not whole_match(_RFC3339, value):
        raise ValueError(
            f"timestamp {value[:40]!r} is not RFC 3339 with an offset, such as 2026-03-01T09:30:00+01:00"
        )
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
        in_utc = moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"timestamp {value!r} is not a real instant ({exc})") from None
    if not EARLIEST_YEAR <= in_utc.year <= LATEST_YEAR:
        raise ValueError(
            f"timestamp {value!r} lies outside the years {EARLIEST_YEAR} to {LATEST_YEAR}; "
            "is the platform's clock set?"
        )
    return moment


def format_rfc3339(moment: datetime) -> str:
    """UTC, `Z`, millisecond precision at most: one spelling for one instant."""
    moment = moment.astimezone(UTC)
    text = moment.isoformat(timespec="milliseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")


CallId = Annotated[
    str,
    AfterValidator(_check_call_id),
    WithJsonSchema({"type": "string", "pattern": CALL_ID_PATTERN, "minLength": 1, "maxLength": 128}),
]
Tenant = Annotated[
    str, AfterValidator(_check_tenant), WithJsonSchema({"type": "string", "pattern": TENANT_PATTERN})
]
E164 = Annotated[
    str, AfterValidator(_check_e164), WithJsonSchema({"type": "string", "pattern": E164_PATTERN})
]
Text = Annotated[str, AfterValidator(_check_text)]
Sha256Hex = Annotated[str, Field(pattern=SHA256_PATTERN, description="lowercase hex SHA-256")]
Timestamp = Annotated[
    datetime,
    BeforeValidator(_parse_rfc3339),
    PlainSerializer(format_rfc3339, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": RFC3339_PATTERN}),
]
