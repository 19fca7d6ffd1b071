"""Phone numbers taken out of anything callvault keeps or says about a rejected input. Pure.

Only `call-events` may carry raw numbers. A dead letter keeps the input's key and
bytes so a person can see what was wrong, and its sentence may quote a value:
each goes through here first.

- Where the value parses as JSON, redaction goes by field: `caller`, `callee`
  (any field a contract model marks `personal`) lose their whole value, whatever
  its form (string, number, object); every other string, and every object key,
  loses any run that looks like a phone number; integers of nine digits or more
  outside the known numeric fields (sizes, durations) go too. Escapes such as
  `\\u002b` are already undone by the parser, so they cannot hide a number.
- Where it does not parse (and for keys and sentences), a pattern over the text
  finds numbers with or without `+`, `00` or an escaped plus, with spaces, dashes,
  dots, slashes and brackets between the digits. Over-redacting an unreadable
  value is acceptable; a number slipping through is not.
"""

from __future__ import annotations

import json
import re
from typing import Any

from callvault.contract.call_events import CALL_EVENT_TYPES
from callvault.contract.fields import CALL_ID_PATTERN, RFC3339_PATTERN, TENANT_PATTERN
from callvault.contract.json_text import MAX_DEPTH, nesting_depth

MARKER = "+REDACTED"
MARKER_BYTES = MARKER.encode()

# A plus (as itself, a JSON escape or URL-encoded) or a 00 prefix, then digits
# with at most two separators between any two of them.
_PLUS = r"(?:\+|\\u002[bB]|%2[bB])"
_CANDIDATE = re.compile(rf"(?P<plus>{_PLUS}\s?)?\(?\d(?:[ \-./()]{{0,2}}\d)+")
MIN_DIGITS_WITH_PLUS = 6  # "+32 2 555" is already too much of a number to keep
MIN_DIGITS_BARE = 9  # national forms (0470 12 34 56); dates such as 2026-03-01 have 8


def _personal_fields() -> frozenset[str]:
    names = set()
    for model in CALL_EVENT_TYPES:
        for name, info in model.model_fields.items():
            extra = info.json_schema_extra
            if isinstance(extra, dict) and extra.get("personal"):
                names.add(name)
    return frozenset(names)


PERSONAL_FIELDS = _personal_fields()
# Numbers the contract defines as numbers: their digits are sizes and times, not phones.
NUMERIC_FIELDS = frozenset({"size_bytes", "duration_ms", "duration_s", "partition", "offset"})
# Values of these fields, when well formed, hold digits that are never phone numbers.
# `call_id` and `tenant` are identifiers every lifecycle event, object key and record key
# of a valid event carries as they are: a dead letter keeps them too (redacting digits
# out of "c-20261201123456" would only hide which call it was).
_WELL_FORMED = {
    "call_id": re.compile(CALL_ID_PATTERN.strip("^$")),
    "tenant": re.compile(TENANT_PATTERN.strip("^$")),
    "event_id": re.compile(r"[0-9a-fA-F]{8}(?:-?[0-9a-fA-F]{4}){3}-?[0-9a-fA-F]{12}"),
    "sha256": re.compile(r"[0-9a-f]{64}"),
    "subject": re.compile(r"[0-9a-f]{64}"),
}
_TIMESTAMP = re.compile(RFC3339_PATTERN)


def _replace(match: re.Match[str]) -> str:
    digits = sum(ch.isdigit() for ch in match.group())
    needed = MIN_DIGITS_WITH_PLUS if match.group("plus") else MIN_DIGITS_BARE
    return MARKER if digits >= needed else match.group()


def redact_text(text: str) -> tuple[str, int]:
    """`text` with every phone-number-like run replaced by +REDACTED, and how many there were."""
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        out = _replace(match)
        count += out is MARKER
        return out

    return _CANDIDATE.sub(replace, text), count


def redact_sentence(text: str, keep: str | None = None) -> str:
    """An error sentence as it may be logged or kept: no phone number in it.

    `keep`: the input's own well-formed call id, left as it is here as everywhere
    else (a sentence about call `c-20261201123456` must still say which call).
    """
    if not keep or keep not in text:
        return redact_text(text)[0]
    return keep.join(redact_text(part)[0] for part in text.split(keep))


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as parsed, duplicate keys and order kept."""


class _Number(str):
    """A JSON number as written, so that redaction never changes one it keeps."""


class _Redactor:
    def __init__(self) -> None:
        self.count = 0

    def text(self, value: str) -> str:
        out, n = redact_text(value)
        self.count += n
        return out

    def value(self, value: Any, field: str | None) -> Any:
        if field in PERSONAL_FIELDS:
            self.count += 1
            return MARKER
        if isinstance(value, _Pairs):
            return _Pairs((self.text(k), self.value(v, k)) for k, v in value)
        if isinstance(value, list):
            return [self.value(item, field) for item in value]
        if isinstance(value, _Number):
            integral = value.lstrip("-").split(".")[0].split("e")[0].split("E")[0]
            if field not in NUMERIC_FIELDS and sum(ch.isdigit() for ch in integral) >= MIN_DIGITS_BARE:
                self.count += 1
                return MARKER
            return value
        if isinstance(value, str):
            shape = _WELL_FORMED.get(field or "")
            if shape is not None and shape.fullmatch(value):
                return value
            if _TIMESTAMP.fullmatch(value):
                return value
            return self.text(value)
        return value


def _dump(value: Any) -> str:
    if isinstance(value, _Pairs):
        return "{" + ",".join(f"{json.dumps(k)}:{_dump(v)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dump(item) for item in value) + "]"
    if isinstance(value, _Number):
        return str(value)
    return json.dumps(value)  # ASCII escapes: a lone surrogate stays writable


def _parse(raw: bytes) -> Any | None:
    """The JSON of `raw` with numbers kept as written, or None when it does not parse."""
    try:
        text = raw.decode("utf-8")
        if nesting_depth(text) > MAX_DEPTH:
            return None
        return json.loads(
            text, object_pairs_hook=_Pairs, parse_int=_Number, parse_float=_Number, parse_constant=_Number
        )
    except (ValueError, RecursionError):
        return None


def redact_value(raw: bytes) -> tuple[bytes, int]:
    """An input's bytes with phone numbers replaced, and how many were replaced."""
    parsed = _parse(raw)
    if parsed is not None and isinstance(parsed, _Pairs | list):
        redactor = _Redactor()
        out = redactor.value(parsed, None)
        if redactor.count == 0:
            return raw, 0  # nothing to hide: the producer's bytes exactly as they came
        return _dump(out).encode("utf-8"), redactor.count
    return redact_key(raw)


def call_id_of(raw: bytes | None) -> str | None:
    """The well-formed `call_id` of a JSON object value, if it has one."""
    parsed = _parse(raw) if raw is not None else None
    if not isinstance(parsed, _Pairs):
        return None
    found = dict(parsed).get("call_id")
    shape = _WELL_FORMED["call_id"]
    return (
        found
        if isinstance(found, str) and not isinstance(found, _Number) and shape.fullmatch(found)
        else None
    )


def redact_key(raw: bytes, call_id: str | None = None) -> tuple[bytes, int]:
    """A record key (or bytes that are not JSON) by pattern; a key that is the value's own
    well-formed `call_id` is kept, as every valid event's key is."""
    if call_id is not None and raw == call_id.encode():
        return raw, 0
    text, count = redact_text(raw.decode("latin-1"))  # one char per byte, so it maps back
    return (text.encode("latin-1"), count) if count else (raw, 0)
