"""A hostile producer: nothing outside staging touched, nothing stalls, nothing raises, no number leaks.

Each test here failed on main before issue 13 (the closing note says how).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import uuid
from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callvault.contract.commands import command_adapter
from callvault.contract.deadletter import SourcePosition
from callvault.contract.decoding import Decoded, Rejected, decode_call_event, decode_with
from callvault.rules.dead_letters import dead_letter_for
from callvault.rules.redaction import redact_sentence, redact_value
from callvault.settings import Settings
from callvault.storage.errors import SourceFault, SourceUnreadable, is_permanent
from callvault.stream.offloop import S3Runner

UPLOADS = frozenset({"callvault-staging"})
NUMBER = "+32470123456"
DIGITS = "470123456"  # what must not survive in any form


def _event(**patch: object) -> dict[str, object]:
    return {
        "type": "call.started",
        "event_id": str(uuid.uuid4()),
        "call_id": "c-1",
        "tenant": "acme",
        "occurred_at": "2026-03-01T09:00:00+01:00",
        "direction": "inbound",
        "caller": NUMBER,
        "callee": "+3225551234",
        "agent_id": "a1",
        "language": "nl-BE",
        **patch,
    }


def _stored(source_uri: str, **patch: object) -> dict[str, object]:
    return {
        "type": "recording.stored",
        "event_id": str(uuid.uuid4()),
        "call_id": "c-1",
        "tenant": "acme",
        "occurred_at": "2026-03-01T09:10:00Z",
        "source_uri": source_uri,
        "sha256": "0" * 64,
        "size_bytes": 10,
        "content_type": "audio/wav",
        "recording_started_at": "2026-03-01T09:00:05Z",
        "recording_ended_at": "2026-03-01T09:10:00Z",
        **patch,
    }


def _decode(value: bytes, key: bytes | None = b"c-1") -> Decoded | Rejected:  # type: ignore[type-arg]
    return decode_call_event(key, value, source_buckets=UPLOADS)


def _refused(value: bytes, key: bytes | None = b"c-1") -> str:
    result = _decode(value, key)
    assert isinstance(result, Rejected), result
    return result.error


# -- 1. sources only from where uploads belong ------------------------------------------


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        (
            "s3://other-app-bucket/payroll/2026.xlsx",
            "names the bucket 'other-app-bucket', which is not where",
        ),
        ("s3://callvault-recordings/acme/2026/03/01/c-1.wav", "names the bucket 'callvault-recordings'"),
        ("s3://callvault-staging/acme/../../payroll.xlsx", "an empty, '.' or '..' segment"),
        ("s3://callvault-staging/acme//c-1.wav", "an empty, '.' or '..' segment"),
        ("s3://callvault-staging/acme/c-1.wav/", "an empty, '.' or '..' segment"),
        ("s3://callvault-staging/acme/c\t1.wav", "control character"),
        ("s3://callvault-staging/acme/c\x001.wav", "control character"),
        ("s3://callvault-staging/" + "k" * 1100, "longer than S3's 1,024 bytes"),
    ],
)
def test_a_source_outside_the_upload_buckets_is_refused(uri: str, says: str) -> None:
    error = _refused(json.dumps(_stored(uri)).encode())
    assert says in error, error
    assert "nothing was read or deleted" in error


def test_a_listed_source_bucket_is_accepted() -> None:
    value = json.dumps(_stored("s3://platform-uploads/acme/c-1.wav")).encode()
    assert isinstance(decode_call_event(b"c-1", value, source_buckets=UPLOADS), Rejected)
    also = UPLOADS | {"platform-uploads"}
    assert isinstance(decode_call_event(b"c-1", value, source_buckets=also), Decoded)


def test_settings_name_the_upload_buckets_and_refuse_an_archive_bucket_among_them() -> None:
    s = Settings(source_buckets=" platform-uploads , other-uploads ")
    assert s.upload_buckets == {"callvault-staging", "platform-uploads", "other-uploads"}
    with pytest.raises(ValueError, match="both an upload bucket .* and one of callvault's archive buckets"):
        Settings(source_buckets="callvault-recordings")


# -- 2. permanent answers end the wait; transient ones keep blocking --------------------


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": "said the store"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "HeadObject",
    )


@pytest.mark.parametrize(
    ("exc", "permanent"),
    [
        (_client_error("AccessDenied", 403), True),
        (_client_error("403", 403), True),  # a HEAD has no body: only the status
        (_client_error("NoSuchBucket", 404), True),
        (_client_error("InvalidObjectState", 403), True),
        (_client_error("ObjectNotInActiveTierError", 403), True),
        (_client_error("NoSuchKey", 404), False),  # absent: looked for again, then source_missing
        (_client_error("404", 404), False),
        (_client_error("SlowDown", 503), False),
        (_client_error("ServiceUnavailable", 503), False),
        (_client_error("RequestTimeout", 400), False),
        (_client_error("InternalError", 500), False),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), False),
    ],
)
def test_s3_answers_are_classified(exc: Exception, permanent: bool) -> None:
    assert is_permanent(exc) is permanent


class _Failing:
    """A stand-in S3 operation: raises what it is told, counting calls, then maybe succeeds."""

    def __init__(self, exc: Exception, *, source: bool, succeed_after: int | None = None) -> None:
        self.exc, self.source, self.succeed_after = exc, source, succeed_after
        self.calls = 0

    def __call__(self, client: object) -> str:
        self.calls += 1
        if self.succeed_after is not None and self.calls > self.succeed_after:
            return "done"
        raise SourceFault(self.exc) if self.source else self.exc


def _runner() -> S3Runner:
    return S3Runner(object(), max_workers=1, endpoint="http://127.0.0.1:1", backoff_cap_s=0.01)  # type: ignore[arg-type]


async def test_a_source_the_store_refuses_ends_at_once() -> None:
    op = _Failing(_client_error("AccessDenied", 403), source=True)
    with pytest.raises(SourceUnreadable, match="AccessDenied"):
        await _runner().run("reading a source", op)
    assert op.calls == 1


async def test_a_source_failing_alone_ends_after_the_bound() -> None:
    op = _Failing(_client_error("ServiceUnavailable", 503), source=True)

    async def answering() -> bool:
        return True

    with pytest.raises(
        SourceUnreadable, match="kept failing .ServiceUnavailable.* while it answered other requests"
    ):
        await _runner().run("reading a source", op, stuck_after_s=0.05, still_answering=answering)
    assert op.calls > 1


async def test_a_source_failing_in_an_outage_keeps_blocking() -> None:
    """The store answers nobody: the call waits (the fault tests rely on it) and then goes on."""
    op = _Failing(_client_error("ServiceUnavailable", 503), source=True, succeed_after=20)
    probes = 0

    async def down() -> bool:
        nonlocal probes
        probes += 1
        return False

    result = await _runner().run("reading a source", op, stuck_after_s=0.0, still_answering=down)
    assert result == "done" and op.calls == 21 and probes == 20


async def test_a_refusal_of_callvaults_own_bucket_blocks_and_says_so() -> None:
    runner = _runner()
    op = _Failing(_client_error("AccessDenied", 403), source=False, succeed_after=1000)
    task = asyncio.create_task(runner.run("writing metadata", op))
    while op.calls < 5:  # a positive signal: it is still trying, not given up
        await asyncio.sleep(0.01)
    assert not task.done()
    assert runner.refusals and "AccessDenied" in runner.refusals[0]
    op.succeed_after = op.calls  # an operator fixed the permission
    assert await task == "done"
    assert runner.refusals == []


async def test_one_call_can_be_capped_in_attempts() -> None:
    op = _Failing(_client_error("ServiceUnavailable", 503), source=False)
    with pytest.raises(ClientError):
        await _runner().run("building an export", op, attempts=3)
    assert op.calls == 3


# -- 3. the decoder is total ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (b'{"a":' * 1000 + b"1" + b"}" * 1000, "nests more than 32 levels deep; at most 32"),
        (b"[" * 60_000, "levels deep"),
        (json.dumps(_event(agent_id=None)).replace("null", "1" * 5000).encode(), "5000 characters"),
        (json.dumps(_event()).replace('"a1"', "Infinity").encode(), "Infinity is not a JSON number"),
        (json.dumps(_event()).replace('"a1"', "NaN").encode(), "NaN is not a JSON number"),
        (json.dumps(_event()).replace('"a1"', "1e999").encode(), "too large"),
        (b'{"type":"call.ended","type":"call.started"}', "field 'type' appears more than once"),
        (json.dumps(_event(agent_id="\ud800")).encode(), "lone UTF-16 surrogate"),
        (json.dumps(_event(agent_id="a\n1")).encode(), "agent_id: holds the control character U+000A"),
        (json.dumps(_event(occurred_at="0001-01-01T00:30:00+01:00")).encode(), "not a real instant"),
        (json.dumps(_event(occurred_at="9999-12-31T23:30:00-01:00")).encode(), "not a real instant"),
        (json.dumps(_event(occurred_at="1970-01-01T00:00:00Z")).encode(), "outside the years 2000 to 2199"),
        (json.dumps(_event(occurred_at="2999-01-01T00:00:00Z")).encode(), "outside the years 2000 to 2199"),
    ],
)
def test_inputs_that_used_to_raise_are_sentences(value: bytes, says: str) -> None:
    error = _refused(value, key=None)
    assert says in error, error


def test_commands_go_through_the_same_bounded_decoder() -> None:
    deep = b'{"a":' * 1000 + b"1" + b"}" * 1000
    result = decode_with(command_adapter, deep, "command")
    assert isinstance(result, Rejected) and "levels deep" in result.error


# -- 4. whole-string patterns -------------------------------------------------------------


@pytest.mark.parametrize(
    ("patch", "says"),
    [
        ({"call_id": "c-1\n"}, "call_id"),
        ({"tenant": "acme\n"}, "tenant"),
        ({"caller": NUMBER + "\n"}, "caller: phone number is not in E.164 form"),
        ({"occurred_at": "2026-03-01T09:00:00Z\n"}, "occurred_at: timestamp"),
    ],
)
def test_a_trailing_newline_does_not_pass_a_pattern(patch: dict[str, str], says: str) -> None:
    error = _refused(json.dumps(_event(**patch)).encode(), key=None)
    assert says in error, error


# -- 5. no phone number outside call-events, in any form --------------------------------

FORMS = [
    f'"{NUMBER}"',
    "32470123456",  # a JSON number
    '"\\u002b32470123456"',  # an escaped plus
    '"+32-470-12-34-56"',
    '"+32.470.12.34.56"',
    '"0470/12.34.56"',
    '"+32 (0)470 123456"',
    '"0032470123456"',
]


def _all_digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _letter_text(key: bytes | None, value: bytes, error: str) -> str:
    letter = dead_letter_for(
        error, SourcePosition(topic="t", partition=0, offset=7), key, value, datetime.now(UTC)
    )
    raw = letter.to_json_bytes().decode()
    parts = [raw, letter.error]
    parts += [base64.b64decode(x).decode("latin-1") for x in (letter.key, letter.value) if x is not None]
    return "\n".join(parts)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("field", ["caller", "agent_id", "unknown_extra"])
def test_a_number_in_any_form_and_field_is_cut_from_the_letter(form: str, field: str) -> None:
    base = json.dumps({**_event(caller="+3225551234"), field: "PLACEHOLDER"})
    value = base.replace('"PLACEHOLDER"', form).encode()
    letter = _letter_text(b"c-1", value, "the call event breaks the contract")
    assert DIGITS not in _all_digits(letter), letter
    # ... and what is not a number stays readable
    assert '"tenant":"acme"' in letter or '"tenant": "acme"' in letter


@pytest.mark.parametrize("form", [NUMBER, "0470 12 34 56", "+32-470-12-34-56"])
def test_the_key_is_redacted_like_the_value(form: str) -> None:
    value = json.dumps(_event(call_id="c-1")).encode()
    result = _decode(value, key=form.encode())
    assert isinstance(result, Rejected)
    assert DIGITS not in _all_digits(result.error)
    letter = _letter_text(form.encode(), value, result.error)
    assert DIGITS not in _all_digits(letter), letter


def test_sentences_that_quote_a_value_are_redacted() -> None:
    value = json.dumps(_event(type=NUMBER)).encode()  # an unknown type is quoted back
    error = _refused(value, key=None)
    assert NUMBER not in redact_sentence(error)
    assert "+REDACTED" in redact_sentence(error)


def test_unreadable_bytes_lose_their_numbers_by_pattern() -> None:
    raw = b'{"caller": "+32 470 12 34 56", broken' + b"\xff"
    redacted, count = redact_value(raw)
    assert count == 1 and b"470" not in redacted and b"broken" in redacted


def test_a_value_without_numbers_is_kept_byte_for_byte() -> None:
    raw = b'{ "type" : "call.ended",  "duration_s": 12.5, "size_bytes":48000044 }'
    assert redact_value(raw) == (raw, 0)


# -- the fuzz: for any bytes and any JSON, a result, never an exception ------------------

_far_dates = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.timezones()
).map(lambda d: d.isoformat())
_odd_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**60), max_value=10**60)
    | st.floats(allow_nan=True, allow_infinity=True)
    | _odd_text
    | _far_dates
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_odd_text, inner, max_size=5),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000), st.one_of(st.none(), st.binary(max_size=60)))
def test_fuzz_arbitrary_bytes(value: bytes, key: bytes | None) -> None:
    assert isinstance(_decode(value, key), Decoded | Rejected)
    letter = _letter_text(key, value, "x")
    assert letter


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(_event())), _json, st.integers(min_value=0, max_value=3000))
def test_fuzz_a_good_event_with_one_odd_field_and_deep_nesting(field: str, odd: object, depth: int) -> None:
    text = json.dumps({**_event(), field: odd}, allow_nan=True)
    nested = '{"x":' * depth + text + "}" * depth
    for value in (text.encode(), nested.encode()):
        assert isinstance(_decode(value, None), Decoded | Rejected)
        assert isinstance(decode_with(command_adapter, value, "command"), Decoded | Rejected)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(["type", "call_id", "caller", "x"]), _scalars), min_size=1, max_size=8
    ),
    st.integers(min_value=1, max_value=6000),
)
def test_fuzz_duplicate_keys_and_huge_numbers(pairs: list[tuple[str, object]], digits: int) -> None:
    body = ",".join(f"{json.dumps(k)}:{json.dumps(v, allow_nan=True)}" for k, v in pairs)
    for value in (f"{{{body}}}".encode(), f'{{{body},"n":{"9" * digits}}}'.encode()):
        result = _decode(value, None)
        assert isinstance(result, Decoded | Rejected)
        letter = _letter_text(None, value, getattr(result, "error", ""))
        assert letter


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(FORMS),
    st.sampled_from(["caller", "callee", "agent_id", "prompt_id", "x"]),
    st.booleans(),
)
def test_fuzz_no_number_survives_a_dead_letter(form: str, field: str, break_it: bool) -> None:
    event = {**_event(caller="+3225551234", callee="+3225551234"), field: "P"}
    value = json.dumps(event).replace('"P"', form)
    raw = (value[:-1] if break_it else value).encode()  # unreadable JSON: the pattern must do it
    letter = _letter_text(raw[:30], raw, "the call event is not JSON")
    assert DIGITS not in _all_digits(letter), letter


def test_a_call_id_with_a_long_run_of_digits_stays_readable_in_its_letter() -> None:
    """Ids such as `it-512345678abc` (or a platform's `c-20261201123456`) are not phone numbers."""
    for call_id in ("it-512345678abc", "c-20261201123456"):
        value = json.dumps(_event(call_id=call_id, agent_id=None)).encode()
        where = SourcePosition(topic="t", partition=0, offset=1)
        letter = dead_letter_for("x", where, call_id.encode(), value, datetime.now(UTC))
        assert base64.b64decode(letter.key or "") == call_id.encode()
        assert f'"call_id":"{call_id}"' in base64.b64decode(letter.value or "").decode()
        sentence = f"the record key is not the event's call_id {call_id!r}"
        said = dead_letter_for(sentence, where, b"+32470123456", value, datetime.now(UTC))
        assert call_id in said.error and "470123456" not in base64.b64decode(said.key or "").decode()
