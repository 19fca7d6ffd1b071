"""The decoder: every input gives an event or a sentence, never an exception."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callvault.contract.call_events import CallStarted, RecordingStored
from callvault.contract.decoding import Decoded, Rejected, decode_call_event

GOOD = {
    "type": "call.started",
    "event_id": str(uuid.uuid4()),
    "call_id": "call-1",
    "tenant": "acme",
    "occurred_at": "2026-03-01T09:00:00+01:00",
    "direction": "inbound",
    "caller": "+3221234567",
    "callee": "+3227654321",
    "agent_id": "a1",
    "language": "nl-BE",
}


def _decode(obj: object, key: bytes | None = b"call-1") -> Decoded | Rejected:  # type: ignore[type-arg]
    return decode_call_event(key, json.dumps(obj).encode())


def test_a_good_event_decodes() -> None:
    result = _decode(GOOD)
    assert isinstance(result, Decoded) and isinstance(result.value, CallStarted)


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    assert isinstance(_decode({**GOOD, "added_in_v1_1": True}), Decoded)


@pytest.mark.parametrize(
    ("patch", "says"),
    [
        ({"call_id": "a/b"}, "call_id 'a/b' has characters outside A-Za-z0-9._:-"),
        ({"call_id": ".."}, "call_id '..' is a path step"),
        ({"call_id": "x" * 129}, "call_id has 129 characters; at most 128"),
        ({"tenant": "ACME"}, "tenant 'ACME' must be 1 to 64 characters"),
        (
            {"occurred_at": "2026-03-01T09:00:00"},
            "occurred_at: timestamp '2026-03-01T09:00:00' is not RFC 3339",
        ),
        ({"occurred_at": 1700000000}, "occurred_at: timestamp must be RFC 3339 text, got int"),
        ({"caller": "0476123456"}, "caller: phone number is not in E.164 form"),
        ({"direction": "sideways"}, "field 'direction' input should be 'inbound' or 'outbound'"),
        ({"type": "call.teleported"}, "type 'call.teleported' is not a known call event type"),
        ({"event_id": "not-a-uuid"}, "field 'event_id'"),
    ],
)
def test_errors_speak_to_a_person(patch: dict[str, object], says: str) -> None:
    result = _decode({**GOOD, **patch}, key=None)
    assert isinstance(result, Rejected)
    assert says in result.error, result.error
    assert "ValidationError" not in result.error


def test_the_phone_number_is_not_echoed_in_errors() -> None:
    result = _decode({**GOOD, "caller": "0476123456"}, key=None)
    assert isinstance(result, Rejected) and "0476123456" not in result.error


def test_missing_fields_are_named() -> None:
    result = _decode({k: v for k, v in GOOD.items() if k != "agent_id"})
    assert isinstance(result, Rejected) and "field 'agent_id' is missing" in result.error


def test_the_key_must_be_the_call_id() -> None:
    result = _decode(GOOD, key=b"call-2")
    assert isinstance(result, Rejected) and "is not the event's call_id" in result.error


def test_oversized_values_are_refused_before_parsing() -> None:
    result = decode_call_event(b"k", b" " * 70_000, max_bytes=65536)
    assert isinstance(result, Rejected) and "over the 65536-byte limit" in result.error


def test_recording_source_uri_parts() -> None:
    event = RecordingStored.model_validate({
        **{k: GOOD[k] for k in ("event_id", "call_id", "tenant", "occurred_at")},
        "source_uri": "s3://callvault-staging/acme/2026/call-1.wav", "sha256": "0" * 64, "size_bytes": 1,
        "content_type": "audio/wav", "recording_started_at": "2026-03-01T09:00:05Z",
        "recording_ended_at": "2026-03-01T09:10:00Z",
    })  # fmt: skip
    assert (event.source_bucket, event.source_key, event.extension) == (
        "callvault-staging",
        "acme/2026/call-1.wav",
        "wav",
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000), st.one_of(st.none(), st.binary(max_size=40)))
def test_fuzz_bytes_never_raise(value: bytes, key: bytes | None) -> None:
    assert isinstance(decode_call_event(key, value), Decoded | Rejected)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from([*GOOD.keys(), "x"]), json_values, max_size=12))
def test_fuzz_json_objects_never_raise(obj: dict[str, object]) -> None:
    result = decode_call_event(None, json.dumps(obj).encode())
    assert isinstance(result, Decoded | Rejected)
    if isinstance(result, Rejected):
        assert result.error.startswith("the call event")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(GOOD)), json_values)
def test_fuzz_one_field_of_a_good_event(field: str, value: object) -> None:
    result = decode_call_event(None, json.dumps({**GOOD, field: value}).encode())
    assert isinstance(result, Decoded | Rejected)


def _recording(**patch: object) -> dict[str, object]:
    return {
        **{k: GOOD[k] for k in ("event_id", "call_id", "tenant", "occurred_at")},
        "type": "recording.stored", "source_uri": "s3://callvault-staging/acme/call-1.wav",
        "sha256": "0" * 64,
        "size_bytes": 1, "content_type": "audio/wav", "recording_started_at": "2026-03-01T09:00:05Z",
        "recording_ended_at": "2026-03-01T09:10:00Z", **patch,
    }  # fmt: skip


def test_a_recording_cannot_end_before_it_starts() -> None:
    result = _decode(_recording(recording_ended_at="2026-03-01T08:00:00Z"))
    assert (
        isinstance(result, Rejected) and "recording_ended_at is before recording_started_at" in result.error
    )


def test_a_source_inside_the_archive_is_refused() -> None:
    uploads = frozenset({"callvault-staging"})
    bad = json.dumps(_recording(source_uri="s3://callvault-recordings/acme/2026/03/01/call-1.wav")).encode()
    result = decode_call_event(b"call-1", bad, source_buckets=uploads)
    assert isinstance(result, Rejected)
    assert "names the bucket 'callvault-recordings', which is not where uploads belong" in result.error
    good = json.dumps(_recording()).encode()
    assert isinstance(decode_call_event(b"call-1", good, source_buckets=uploads), Decoded)


def test_numbers_are_cut_out_of_a_dead_letter_and_nothing_else() -> None:
    from callvault.rules.redaction import redact_value

    raw = b'{"caller":"+32470123456","callee":"02 555 12 34","size_bytes":48000044,"call_id":"c-1"}'
    redacted, count = redact_value(raw)
    assert count == 2
    assert b"32470123456" not in redacted and b"555 12 34" not in redacted
    assert b'"size_bytes":48000044' in redacted and b'"call_id":"c-1"' in redacted
