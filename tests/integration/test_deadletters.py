"""Bad input ends in a dead letter with a sentence and the original bytes; processing goes on."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from callvault.embedded.processes import ChildProcess
from callvault.settings import Settings
from tests.integration.helpers import Bus, new_call_id

pytestmark = pytest.mark.integration


def _valid_end(call_id: str) -> dict[str, object]:
    return {
        "type": "call.ended",
        "event_id": str(uuid.uuid4()),
        "call_id": call_id,
        "tenant": "acme",
        "occurred_at": "2026-11-24T10:00:00Z",
        "duration_s": 12,
    }


def _j(obj: object) -> bytes:
    return json.dumps(obj).encode()


CASES: list[tuple[str, bytes, bytes | None, str]] = [
    ("not json", b"{this is not json", b"k1", "is not JSON"),
    ("not utf-8", b"\xff\xfe\x00garbage", b"k2", "not UTF-8"),
    ("json array", b"[1, 2, 3]", b"k3", "not an object"),
    (
        "unknown type",
        _j({**_valid_end("c-unknown"), "type": "call.teleported"}),
        b"c-unknown",
        "'call.teleported' is not a known call event type",
    ),
    (
        "missing field",
        json.dumps({k: v for k, v in _valid_end("c-missing").items() if k != "tenant"}).encode(),
        b"c-missing",
        "field 'tenant' is missing",
    ),
    ("slash in call_id", _j(_valid_end("a/b")), b"a/b", "call_id 'a/b' has characters outside A-Za-z0-9._:-"),
    ("dot-dot call_id", _j(_valid_end("..")), b"..", "call_id '..' is a path step"),
    (
        "naive timestamp",
        json.dumps({**_valid_end("c-naive"), "occurred_at": "2026-11-24T10:00:00"}).encode(),
        b"c-naive",
        "not RFC 3339 with an offset",
    ),
    ("key is not the call_id", _j(_valid_end("c-key")), b"other-key", "is not the event's call_id"),
    (
        "oversized",
        _j({**_valid_end("c-big"), "padding": "x" * 200_000}),
        b"c-big",
        "over the 65536-byte limit",
    ),
    ("tombstone", b"", b"c-empty", "is not JSON"),
    # Each of these raised in the decoder before issue 13, and the worker acked it silently.
    ("nested 1000 deep", b'{"a":' * 1000 + b"1" + b"}" * 1000, b"c-deep", "nests more than 32 levels deep"),
    (
        "5000-digit number",
        _j(_valid_end("c-digits")).replace(b'"duration_s": 12', b'"duration_s": ' + b"7" * 5000),
        b"c-digits",
        "a number has 5000 characters",
    ),
    (
        "infinity",
        _j(_valid_end("c-inf")).replace(b'"duration_s": 12', b'"duration_s": Infinity'),
        b"c-inf",
        "Infinity is not a JSON number",
    ),
    (
        "year 1",
        _j({**_valid_end("c-year1"), "occurred_at": "0001-01-01T00:30:00+01:00"}),
        b"c-year1",
        "not a real instant",
    ),
    ("trailing newline", _j(_valid_end("c-nl\n")), b"c-nl\n", "call_id"),
]


@pytest.mark.parametrize(("name", "value", "key", "says"), CASES, ids=[c[0] for c in CASES])
async def test_bad_input_becomes_a_dead_letter(
    settings: Settings, worker: ChildProcess, name: str, value: bytes, key: bytes | None, says: str
) -> None:
    async with Bus(settings) as bus:
        await bus.send_raw(value, key)
        letter = await bus.dead_letter_where(lambda r: base64.b64decode(r.get("value") or "") == value)
        assert says in letter["error"], letter["error"]
        assert letter["source"]["topic"] == settings.call_events_topic
        assert letter["source"]["offset"] >= 0
        assert base64.b64decode(letter["key"]) == key


async def test_processing_goes_on_after_bad_input(settings: Settings, worker: ChildProcess) -> None:
    async with Bus(settings) as bus:
        for _, value, key, _ in CASES:
            await bus.send_raw(value, key)
        call = bus.script(call_id=new_call_id("after-bad"))
        await bus.send_call(call)
        await bus.wait_types(call.call_id, "recording.archived", "metadata.archived")


async def test_the_same_call_id_from_two_tenants_is_two_calls(
    settings: Settings, worker: ChildProcess
) -> None:
    """A call is (tenant, call_id): before issue 16 globex's call was dead-lettered as a tenant conflict."""
    async with Bus(settings) as bus:
        acme = bus.script()
        globex = bus.script(call_id=acme.call_id, tenant="globex")
        for call in (acme, globex):
            await bus.upload(call)
        await bus.send(acme.started(), globex.started(), globex.disclosure(), acme.disclosure())
        await bus.send(acme.stored(), globex.stored(), acme.ended(), globex.ended())
        await bus.lifecycle.wait_for(
            lambda w: (
                {(r.get("tenant"), r.get("type")) for r in w.records if r.get("call_id") == acme.call_id}
                >= {(t, k) for t in ("acme", "globex") for k in ("recording.archived", "metadata.archived")}
            ),
            60,
            "both tenants' calls archived",
        )
        archived = bus.s3.list_objects_v2(Bucket=settings.recordings_bucket, Prefix="globex/")
        assert any(acme.call_id in o["Key"] for o in archived.get("Contents", []))


async def test_a_source_in_the_recordings_bucket_is_refused(settings: Settings, worker: ChildProcess) -> None:
    async with Bus(settings) as bus:
        call = bus.script()
        stored = {**call.stored(), "source_uri": f"s3://{settings.recordings_bucket}/acme/x.wav"}
        await bus.send(stored)
        letter = await bus.dead_letter_where(
            lambda r: call.call_id.encode() in base64.b64decode(r.get("value") or "")
        )
        assert (
            f"names the bucket '{settings.recordings_bucket}', which is not where uploads" in letter["error"]
        )


async def test_a_source_in_another_bucket_is_never_touched(settings: Settings, worker: ChildProcess) -> None:
    """On main this deleted both versions of an unrelated object and said `retention_elapsed`."""
    other = settings.staging_bucket.replace("-staging", "-other-app")
    async with Bus(settings) as bus:
        await bus.create_bucket(other, versioned=True)
        for body in (b"v1", b"v2"):
            await asyncio.to_thread(bus.s3.put_object, Bucket=other, Key="payroll/2026.xlsx", Body=body)
        call = bus.script(start=datetime.now(UTC) - timedelta(days=60))  # retention elapsed on arrival
        stored = {**call.stored(), "source_uri": f"s3://{other}/payroll/2026.xlsx"}
        await bus.send(call.started(), stored)
        letter = await bus.dead_letter_where(
            lambda r: call.call_id.encode() in base64.b64decode(r.get("value") or "")
        )
        assert "nothing was read or deleted" in letter["error"]
        assert bus.versions(other, "payroll/2026.xlsx") == 2


async def test_a_phone_number_as_record_key_is_not_kept(settings: Settings, worker: ChildProcess) -> None:
    async with Bus(settings) as bus:
        call = bus.script()
        await bus.send(call.started(), key=b"+32470123456")
        letter = await bus.dead_letter_where(lambda r: "is not the event's call_id" in r.get("error", "")
                                             and call.call_id in r.get("error", ""))  # fmt: skip
        kept = (base64.b64decode(letter["key"]) + base64.b64decode(letter["value"])).decode()
        assert "470123456" not in kept and "470123456" not in letter["error"]
        assert letter["numbers_redacted"] >= 2  # the key and the caller
