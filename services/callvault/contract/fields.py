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

_CALL_ID = re.compile(CALL_ID_PATTERN)
_TENANT = re.compile(TENANT_PATTERN)
_E164 = re.compile(E164_PATTERN)
_RFC3339 = re.compile(RFC3339_PATTERN)


def _check_call_id(value: str) -> str:
    if not value:
        raise ValueError("call_id is empty; it needs 1 to 128 characters of A-Za-z0-9._:-")
    if len(value) > 128:
        raise ValueError(f"call_id has {len(value)} characters; at most 128 are allowed")
    if not _CALL_ID.match(value):
        raise ValueError(f"call_id {value!r} has characters outside A-Za-z0-9._:-")
    if value in {".", ".."}:
        raise ValueError(f"call_id {value!r} is a path step, not a name")
    return value


def _check_tenant(value: str) -> str:
    if not _TENANT.match(value):
        raise ValueError(f"tenant {value!r} must be 1 to 64 characters of lowercase a-z, 0-9 and '-'")
    return value


def _check_e164(value: str) -> str:
    if not _E164.match(value):
        raise ValueError(
            "phone number is not in E.164 form (a '+', the country code, then at most 15 digits)"
        )
    return value


def _parse_rfc3339(value: Any) -> Any:
    """Accept only RFC 3339 text with an offset; pydantic alone also takes epochs and naive times."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("timestamp has no UTC offset; RFC 3339 needs one, such as Z or +01:00")
        return value
    if not isinstance(value, str):
        raise ValueError(f"timestamp must be RFC 3339 text, got {type(value).__name__}")
    if not _RFC3339.match(value):
        raise ValueError(
            f"timestamp {value!r} is not RFC 3339 with an offset, such as 2026-03-01T09:30:00+01:00"
        )
    return datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))


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
Sha256Hex = Annotated[str, Field(pattern=SHA256_PATTERN, description="lowercase hex SHA-256")]
Timestamp = Annotated[
    datetime,
    BeforeValidator(_parse_rfc3339),
    PlainSerializer(format_rfc3339, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": RFC3339_PATTERN}),
]
