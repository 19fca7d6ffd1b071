"""Data-subject requests on the real stack: the session's worker, broker, store and API.

Erasure, holds and objection as the command handler decides them run in memory
(tests/unit/test_subjects_in_memory.py); here, requests filed through the
commands topic and answered, the API, exports, deadlines and the command line.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import random
import uuid
import zipfile
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import DefaultPartitioner

from callvault.contract.commands import LegalHoldPlace, SubjectExtend, SubjectRequest
from callvault.embedded.processes import ChildProcess
from callvault.rules.access import Role
from callvault.rules.pseudonym import pseudonymize
from callvault.rules.subject_requests import new_record
from callvault.settings import Settings
from callvault.storage.archive import erase_under
from callvault.storage.sealing import Keyring, read_plain
from callvault.storage.subject_index import entry_key
from callvault.storage.subject_requests import put_request
from callvault.stream.bus import read_topic
from callvault.stream.command_client import answers, submit_command
from callvault.stream.subject_client import export_link, file_request, subject_command
from callvault.testing import read_archived
from tests.cli import run_callvault
from tests.conftest import ARTIFACTS, settings_env
from tests.integration.helpers import CALLEE, Bus, CallScript
from tests.integration.test_api import auth, until_status

pytestmark = pytest.mark.integration

PURPOSE = {"purpose": "coaching"}


def new_number() -> str:
    """A Belgian mobile number no other test uses."""
    return f"+32470{random.randrange(10**6):06d}"


def pseudonym(settings: Settings, number: str, tenant: str = "acme") -> str:
    return pseudonymize(settings.pseudonym_key.get_secret_value().encode(), tenant, number)


@pytest.fixture
async def bus(settings: Settings, worker: Any) -> AsyncIterator[Bus]:
    async with Bus(settings) as b:
        yield b


async def archived_call(bus: Bus, caller: str, tenant: str = "acme") -> CallScript:
    call = bus.script(caller=caller, tenant=tenant)
    await bus.send_call(call)
    await bus.wait_types(call.call_id, "recording.archived", "metadata.archived")
    return call


def new_command(
    settings: Settings, kind: str, number: str, tenant: str = "acme", received_at: datetime | None = None
) -> SubjectRequest:
    return subject_command(
        settings,
        kind,
        number,
        tenant,
        command_id=uuid.uuid4(),
        requested_by="dpo@acme",
        reason=f"{kind} request by e-mail, ref 2026-117",
        verified_by="front desk, ID card seen",
        received_at=received_at,
        now=datetime.now(UTC),
    )


async def request(
    settings: Settings, kind: str, number: str, tenant: str = "acme", received_at: datetime | None = None
) -> dict[str, Any]:
    _, answer = await file_request(settings, new_command(settings, kind, number, tenant, received_at), 60)
    assert isinstance(answer, dict), f"the worker did not answer the {kind} request: {answer}"
    return answer


def keys_of(bus: Bus, bucket: str, prefix: str = "") -> set[str]:
    """Every key with a version or marker under `prefix`: all pages (the session's store holds thousands)."""
    keys: set[str] = set()
    for page in bus.s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        keys.update(v["Key"] for v in (*page.get("Versions", ()), *page.get("DeleteMarkers", ())))
    return keys


def archive_keys(bus: Bus, call: CallScript) -> tuple[str, str]:
    rec = bus.events_of(call.call_id, "recording.archived")[0]["object"]["key"]
    meta = bus.events_of(call.call_id, "metadata.archived")[0]["object"]["key"]
    return rec, meta


async def test_restriction_makes_the_api_refuse_and_unrestrict_lets_it_answer(
    settings: Settings, bus: Bus, api_url: str
) -> None:
    number = new_number()
    call = await archived_call(bus, number)
    day = call.start.astimezone(UTC).date().isoformat()
    path = f"/api/v1/calls/acme/{day}/{call.call_id}"
    qa = auth(settings)
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        assert (await client.get(path, params=PURPOSE, headers=qa)).status_code == 200

        answer = await request(settings, "restrict", number)
        assert answer["type"] == "subject.restricted" and answer["calls"] == 1
        refused = await until_status(client, path, qa, 451)  # once the API's copy of the list renews
        assert "restrict" in refused.json()["error"]
        assert (await client.get(path + "/audio", params=PURPOSE, headers=qa)).status_code == 451
        dpo = auth(settings, role=Role.DPO, who="dpo@acme")
        assert (await client.get(path, params=PURPOSE, headers=dpo)).status_code == 200

        answer = await request(settings, "unrestrict", number)
        assert answer["type"] == "subject.unrestricted"
        await until_status(client, path, qa, 200)


async def test_the_export_holds_exactly_the_subjects_data(settings: Settings, bus: Bus) -> None:
    number, other = new_number(), new_number()
    hers = [await archived_call(bus, number) for _ in range(2)]
    theirs = await archived_call(bus, other)

    answer = await request(settings, "access", number)

    assert answer["type"] == "subject.access_fulfilled"
    assert (answer["calls"], answer["recordings"], answer["metadata"]) == (2, 2, 2)
    expires = datetime.fromisoformat(answer["export_expires_at"])
    assert timedelta(days=6) < expires - datetime.now(UTC) <= timedelta(days=7)
    link = export_link(bus.s3, settings, answer["export_uri"], expires, datetime.now(UTC))
    assert link is not None
    async with httpx.AsyncClient(timeout=30) as client:
        got = await client.get(link)
    assert got.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(got.content))
    names = set(archive.namelist())
    ids = sorted(c.call_id for c in hers)
    assert names == {"manifest.json"} | {f"calls/{i}.json" for i in ids} | {
        f"recordings/{i}.wav" for i in ids
    }
    # Larger than one PUT may carry here (CALLVAULT_S3_MAX_PUT_BYTES is set small for the suite):
    # it went up as a multipart upload, whose ETag names its parts.
    bucket, key = answer["export_uri"].removeprefix("s3://").split("/", 1)
    stored = bus.s3.head_object(Bucket=bucket, Key=key)
    assert stored["ContentLength"] > settings.s3_max_put_bytes and "-" in stored["ETag"]
    manifest = json.loads(archive.read("manifest.json"))
    assert sorted(c["call_id"] for c in manifest["calls"]) == ids
    assert manifest["subject"] == pseudonym(settings, number)
    for call in hers:
        assert archive.read(f"recordings/{call.call_id}.wav") == call.audio
        doc = json.loads(archive.read(f"calls/{call.call_id}.json"))
        assert doc["call_id"] == call.call_id and doc["participants"] == {"subject_was": ["caller"]}
    everything = b"".join(archive.read(n) for n in names)
    for foreign in (pseudonym(settings, other), pseudonym(settings, CALLEE), theirs.call_id.encode()):
        text = foreign if isinstance(foreign, bytes) else foreign.encode()
        assert text not in everything, "the export holds someone else's data"


async def test_an_export_the_store_will_not_take_is_a_refusal_not_a_rebuild_loop(settings: Settings) -> None:
    """On main the handler rebuilt the ZIP for ever and the commands agent stood still."""
    from callvault.clock import SystemClock
    from callvault.storage.client import make_s3_client
    from callvault.stream.command_errors import CommandRefused
    from callvault.stream.offloop import S3Runner
    from callvault.stream.subjects import SubjectHandler

    broken = settings.model_copy(update={"exports_bucket": settings.exports_bucket + "-missing"})
    runner = S3Runner(make_s3_client(broken), max_workers=2, endpoint=broken.s3_endpoint, backoff_cap_s=0.05)
    emitted: list[Any] = []

    async def emit(events: Any) -> None:
        emitted.extend(events)

    handler = SubjectHandler(broken, runner, emit, SystemClock())
    command = new_command(broken, "access", new_number())
    with pytest.raises(CommandRefused, match="could not be built .*NoSuchBucket.*file it again"):
        await asyncio.wait_for(handler.handle(command), 30)
    assert [e.type for e in emitted] == ["subject.request_received"]


async def test_an_open_request_is_extended_once_to_three_months(settings: Settings, bus: Bus) -> None:
    # Recorded, not yet carried out (its command still queued, say): the registry entry alone.
    received = datetime.now(UTC) - timedelta(days=20)
    command = new_command(settings, "erase", new_number(), received_at=received)
    record = new_record(command, settings.zone, settings.identity_check)
    await asyncio.to_thread(put_request, bus.s3, settings.metadata_bucket, record)
    extend = SubjectExtend(
        event_id=uuid.uuid4(),
        requested_by="dpo@acme",
        requested_at=datetime.now(UTC),
        reason="numerous requests from the same person",
        request_id=command.event_id,
        tenant="acme",
    )

    extended = await submit_command(settings, extend, 30)

    assert isinstance(extended, dict) and extended["type"] == "subject.request_extended"
    assert 89 <= (datetime.fromisoformat(extended["due_at"]) - received).days <= 92
    again = extend.model_copy(update={"event_id": uuid.uuid4(), "reason": "more"})
    refused = await submit_command(settings, again, 30)
    assert isinstance(refused, str) and "already extended" in refused


async def test_a_request_waits_for_its_identity_check_from_the_command_line(
    settings: Settings, bus: Bus, worker: ChildProcess
) -> None:
    number = new_number()
    call = await archived_call(bus, number)
    env = settings_env(settings)
    args = ("subject", "erase", number, "--tenant", "acme", "--reason", "a letter", "--identity-pending")
    filed = await asyncio.to_thread(run_callvault, *args, env=env, timeout=120)
    assert filed.returncode == 0, filed.stderr
    assert "it waits for the identity check" in filed.stdout and number not in filed.stdout
    request_id = filed.stdout.split()[1].rstrip(":")

    listed = await asyncio.to_thread(run_callvault, "subject", "requests", "--tenant", "acme", env=env)
    assert "identity check pending for 0.0 days" in " ".join(listed.stdout.split()), listed.stdout
    received = await bus.lifecycle_where(lambda e: e.get("request_id") == request_id, timeout=30)
    assert received["type"] == "subject.request_received" and received["identity_pending"] is True
    ours = [k for k in keys_of(bus, settings.recordings_bucket, call.tenant) if call.call_id in k]
    assert ours, "nothing is erased before the identity check"

    args = ("subject", "identity-verified", request_id, "--tenant", "acme", "--verified-by", "front desk")
    checked = await asyncio.to_thread(run_callvault, *args, env=env, timeout=120)
    assert checked.returncode == 0, checked.stderr
    assert "identity verified" in checked.stdout and "done (subject.erased): 1 calls" in checked.stdout
    assert not [k for k in keys_of(bus, settings.recordings_bucket, call.tenant) if call.call_id in k]


async def test_a_processor_tenants_request_is_forwarded_and_executed_on_instruction(
    settings: Settings, bus: Bus, worker: ChildProcess
) -> None:
    tenant = f"client-{random.randrange(10**6):06d}"  # its own tenant: the role is the tenant's policy
    number = new_number()
    call = await archived_call(bus, number, tenant=tenant)
    env = settings_env(settings)
    contact = "privacy@client.example"
    args = ("policy", "set", tenant, "--role", "processor", "--contact", contact, "--reason", "DPA clause 7")
    role = await asyncio.to_thread(run_callvault, *args, env=env, timeout=120)
    assert role.returncode == 0, role.stderr
    assert f"processor, subjects' requests forwarded to {contact}" in role.stdout

    args = ("subject", "erase", number, "--tenant", tenant, "--reason", "e-mail", "--verified-by", "desk")
    filed = await asyncio.to_thread(run_callvault, *args, env=env, timeout=120)
    assert filed.returncode == 0, filed.stderr
    said = " ".join(filed.stdout.split())
    assert f"forwarded to the client ({contact})" in said and "tell the subject so" in said, said
    request_id = filed.stdout.split()[1].rstrip(":")
    ours = [k for k in keys_of(bus, settings.recordings_bucket, tenant) if call.call_id in k]
    assert ours, "not erased: the client decides"

    args = ("subject", "execute", request_id, "--tenant", tenant, "--instructed-by", "client ticket 311")
    done = await asyncio.to_thread(run_callvault, *args, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "done (subject.erased): 1 calls" in done.stdout
    assert not [k for k in keys_of(bus, settings.recordings_bucket, tenant) if call.call_id in k]


async def test_a_portable_export_is_delivered_to_another_organisation_from_the_command_line(
    settings: Settings, bus: Bus, worker: ChildProcess
) -> None:
    number = new_number()
    call = await archived_call(bus, number)
    recipient = f"cvt-recipient-{random.randrange(10**6):06d}"
    await bus.create_bucket(recipient)
    env = settings_env(settings)
    args = ("subject", "access", number, "--tenant", "acme", "--reason", "portability, e-mail",
            "--format", "portable", "--deliver-to", f"s3://{recipient}/inbox")  # fmt: skip
    done = await asyncio.to_thread(run_callvault, *args, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())
    assert (
        "portable (manifest.json lists every file with its SHA-256)" in said
        and f"s3://{recipient}/inbox/" in said
    )
    (key,) = [o["Key"] for o in bus.s3.list_objects_v2(Bucket=recipient)["Contents"]]
    sent = bus.s3.get_object(Bucket=recipient, Key=key)["Body"].read()
    with zipfile.ZipFile(io.BytesIO(sent)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        assert manifest["format"] == "callvault.portable/v1"
        assert {f"calls/{call.call_id}.json", f"recordings/{call.call_id}.wav"} <= {
            f["path"] for f in manifest["files"]
        }
    assert number not in sent.decode("latin-1")


async def test_a_call_is_rectified_from_the_command_line_and_no_value_reaches_a_topic(
    settings: Settings, bus: Bus, worker: ChildProcess
) -> None:
    number = new_number()
    call = await archived_call(bus, number)
    env = settings_env(settings)
    args = ("subject", "rectify", number, "--tenant", "acme", "--call", call.call_id, "--field", "language",
            "--statement", "spoken in Walloon", "--reason", "letter")  # fmt: skip
    done = await asyncio.to_thread(run_callvault, *args, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())
    assert (
        f"done (subject.rectified): language of call {call.call_id} completed with the subject's statement"
        in said
    )
    key = f"acme/{call.start.astimezone(UTC):%Y/%m/%d}/{call.call_id}.json"
    doc = json.loads(read_archived(bus.s3, settings, settings.metadata_bucket, key))
    assert doc["rectifications"][0]["statement"] == "spoken in Walloon"
    topics = await _topic_bytes(settings)
    assert not [t for t, data in topics.items() if b"Walloon" in data], (
        "the statement is in the registry only"
    )


async def test_an_agent_is_a_subject_from_the_command_line(
    settings: Settings, bus: Bus, worker: ChildProcess
) -> None:
    tenant = f"agents-{random.randrange(10**6):06d}"  # agent-7 takes every call of the suite: a tenant apart
    call = await archived_call(bus, new_number(), tenant=tenant)
    env = settings_env(settings)
    args = ("subject", "erase", "--agent", "agent-7", "--tenant", tenant, "--reason", "left the company")
    done = await asyncio.to_thread(run_callvault, *args, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "done (subject.erased): 1 calls, 0 recordings, 1 metadata documents" in done.stdout
    key = f"{tenant}/{call.start.astimezone(UTC):%Y/%m/%d}/{call.call_id}.json"
    doc = json.loads(read_archived(bus.s3, settings, settings.metadata_bucket, key))
    assert doc["agent_id"] is None
    ours = [k for k in keys_of(bus, settings.recordings_bucket, tenant) if call.call_id in k]
    assert ours, "the recording keeps its term"


async def _topic_bytes(settings: Settings) -> dict[str, bytes]:
    """Every record of every topic callvault writes (all but `call-events`), dead letters decoded."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        topics = await consumer.topics()
    finally:
        await consumer.stop()
    ours = sorted(
        t
        for t in topics
        if (t.startswith(settings.topic_prefix) or t.startswith(settings.app_id))
        and t != settings.call_events_topic
    )
    assert settings.lifecycle_topic in ours and settings.commands_topic in ours
    found: dict[str, bytes] = {}
    for topic in ours:
        chunks = []
        async for key, value in read_topic(settings.kafka_bootstrap, topic, idle_s=1.0):
            chunks += [key or b"", value or b""]
            if topic == settings.deadletter_topic and value:
                chunks.append(base64.b64decode(json.loads(value).get("value") or ""))
        found[topic] = b"\n".join(chunks)
    return found


def _object_bytes(bus: Bus, settings: Settings) -> dict[str, bytes]:
    """Every version of every object in every bucket, opened where it is sealed, ZIP members unpacked."""
    found: dict[str, bytes] = {}
    keyring = Keyring.for_settings(settings)
    buckets = (
        settings.recordings_bucket,
        settings.metadata_bucket,
        settings.audit_bucket,
        settings.exports_bucket,
        settings.staging_bucket,
    )
    for bucket in buckets:
        for page in bus.s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for version in page.get("Versions", ()):
                data = read_plain(bus.s3, keyring, bucket, version["Key"], version["VersionId"])[0]
                if version["Key"].endswith(".zip"):
                    with zipfile.ZipFile(io.BytesIO(data)) as archive:
                        data = b"\n".join(archive.read(n) for n in archive.namelist())
                found[f"s3://{bucket}/{version['Key']}"] = data
    return found


async def test_no_topic_log_or_object_but_call_events_holds_the_raw_number(
    settings: Settings, bus: Bus, worker: ChildProcess, api_url: str
) -> None:
    number = new_number()
    digits = number.removeprefix("+").encode()
    await archived_call(bus, number)
    broken = {**bus.script(caller=number).started(), "direction": "sideways"}
    await bus.send(broken)
    await bus.dead_letter_where(
        lambda r: broken["call_id"].encode() in base64.b64decode(r.get("value") or "")
    )
    env = settings_env(settings)
    outputs = []
    for kind in ("restrict", "unrestrict", "access", "object", "erase"):
        args = ("subject", kind, number, "--tenant", "acme", "--reason", "by phone", "--verified-by", "desk")
        result = await asyncio.to_thread(run_callvault, *args, env=env, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        outputs.append(result.stdout + result.stderr)
    listed = await asyncio.to_thread(run_callvault, "subject", "requests", "--all", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    mine = [r for r in rows if r["subject"] == pseudonym(settings, number)]
    assert sorted(r["kind"] for r in mine) == ["access", "erase", "object", "restrict", "unrestrict"]
    assert all(r["status"] == "fulfilled" and r["verified_by"] == "desk" for r in mine)
    await bus.caught_up()  # the last events are on every topic

    places: dict[str, bytes] = {f"cli output {i}": o.encode() for i, o in enumerate(outputs)}
    places |= await _topic_bytes(settings)
    places |= await asyncio.to_thread(_object_bytes, bus, settings)
    places |= {f"log {p.name}": p.read_bytes() for p in ARTIFACTS.glob("*.log")}
    leaks = [where for where, data in places.items() if digits in data]
    # The same search does find it where it belongs, so an empty list means something.
    raw = [v async for _, v in read_topic(settings.kafka_bootstrap, settings.call_events_topic, idle_s=1.0)]
    assert any(digits in (v or b"") for v in raw)
    assert not leaks, f"the raw number is in {leaks}"
    assert len(places) > 20 and any("subject-index" in p for p in places)  # the scan saw a real store


async def _export_accesses(bus: Bus, request_id: str, at_least: int) -> list[dict[str, Any]]:
    def handed(w: Any) -> list[dict[str, Any]]:
        return [
            r
            for r in w.records
            if r.get("type") == "subject.export_accessed" and r["request_id"] == request_id
        ]

    await bus.lifecycle.wait_for(lambda w: len(handed(w)) >= at_least, 20, "the export's hand-out")
    return handed(bus.lifecycle)


async def test_the_command_line_hands_out_an_export_link_and_logs_it(settings: Settings, bus: Bus) -> None:
    """On main `callvault subject export-link` failed with a TypeError, and wrote no access event."""
    number = new_number()
    await archived_call(bus, number)
    answer = await request(settings, "access", number)
    done = await asyncio.to_thread(
        run_callvault, "subject", "export-link", answer["request_id"], "--tenant", "acme",
        "--purpose", "handed over at the desk", "--by", "dpo@acme", env=settings_env(settings),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(settings.s3_endpoint)
    (event,) = await _export_accesses(bus, answer["request_id"], 1)
    assert (event["accessed_by"], event["purpose"]) == ("dpo@acme", "handed over at the desk")
    assert "role" not in event  # no API token: a hand-out from the command line names the person only


async def test_the_dpo_files_and_follows_requests_through_the_api(
    settings: Settings, bus: Bus, api_url: str
) -> None:
    number = new_number()
    call = await archived_call(bus, number)
    dpo = auth(settings, role=Role.DPO, who="dpo@acme")
    body = {
        "kind": "access",
        "phone": number,
        "tenant": "acme",
        "reason": "web form 88",
        "verified_by": "desk",
    }
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        # Only the DPO, only in its tenants, and a bad number is refused without being repeated.
        assert (
            await client.post("/api/v1/subject-requests", json=body, headers=auth(settings))
        ).status_code == 403
        other = {**body, "tenant": "globex"}
        assert (await client.post("/api/v1/subject-requests", json=other, headers=dpo)).status_code == 403
        bad = await client.post("/api/v1/subject-requests", json={**body, "phone": "0470 12"}, headers=dpo)
        assert bad.status_code == 422 and "E.164" in bad.json()["error"] and "0470" not in bad.text

        filed = await client.post("/api/v1/subject-requests", json=body, headers=dpo)
        assert filed.status_code == 202, filed.text
        request = filed.json()
        assert request["status"] == "received" and request["subject"] == pseudonym(settings, number)
        assert 27 <= request["days_left"] <= 31 and number not in filed.text
        path = f"/api/v1/subject-requests/acme/{request['request_id']}"
        for _ in range(60):
            followed = (await client.get(path, headers=dpo)).json()
            if followed["status"] == "fulfilled":
                break
            await asyncio.sleep(0.5)
        assert followed["status"] == "fulfilled", followed
        assert followed["outcome"]["calls"] == 1 and followed["export_link"]
        # Signed by the API's own key, for the token's subject (issue 26, item 4).
        received = await bus.lifecycle_where(
            lambda e: (
                e.get("type") == "subject.request_received" and e.get("request_id") == request["request_id"]
            )
        )
        assert (received["requested_by"], received["on_behalf_of"]) == (
            settings.command_identity().name,
            "dpo@acme",
        )
        export = await client.get(followed["export_link"])
        assert f"calls/{call.call_id}.json" in zipfile.ZipFile(io.BytesIO(export.content)).namelist()
        # Handing out the link was an access: who, why, through which API request (issue 14).
        given = await client.get(path, params={"purpose": "sent to the subject by post"}, headers=dpo)
        ours = given.headers["x-request-id"]
        await bus.lifecycle.wait_for(
            lambda w: any(r.get("api_request_id") == ours for r in w.records), 20, "the export's hand-out"
        )
        (handed,) = [r for r in bus.lifecycle.records if r.get("api_request_id") == ours]
        assert handed["type"] == "subject.export_accessed" and handed["request_id"] == request["request_id"]
        assert (handed["accessed_by"], handed["role"]) == ("dpo@acme", "dpo")
        assert handed["purpose"] == "sent to the subject by post"
        listed = await client.get("/api/v1/subject-requests", params={"all": "true"}, headers=dpo)
        assert request["request_id"] in {r["request_id"] for r in listed.json()}
        extend = await client.post(path + "/extend", json={"reason": "too late"}, headers=dpo)
        assert extend.status_code == 409


async def test_a_request_past_its_deadline_shows_in_requests_and_in_the_audit_report(
    settings: Settings, bus: Bus, tmp_path: Path
) -> None:
    # An erasure the store refuses (an object-lock hold set outside callvault), received
    # 40 days ago: it stays open and is overdue. An access received as long ago is
    # answered now, so it was late.
    blocked, slow = new_number(), new_number()
    call = await archived_call(bus, blocked)
    rec, _ = archive_keys(bus, call)
    await asyncio.to_thread(
        bus.s3.put_object_legal_hold, Bucket=settings.recordings_bucket, Key=rec, LegalHold={"Status": "ON"}
    )
    long_ago = datetime.now(UTC) - timedelta(days=40)
    command = new_command(settings, "erase", blocked, received_at=long_ago)
    _, refused = await file_request(settings, command, 60)
    assert isinstance(refused, str) and "refused to delete" in refused
    late = await request(settings, "access", slow, received_at=long_ago)
    env = settings_env(settings)

    listed = await asyncio.to_thread(run_callvault, "subject", "requests", "--json", env=env)
    rows = {r["request_id"]: r for r in map(json.loads, listed.stdout.splitlines())}
    open_one = rows[str(command.event_id)]
    assert open_one["status"] == "refused" and open_one["overdue"] is True
    assert -11 < open_one["days_left"] < -8 and "refused to delete" in open_one["refusal"]
    assert late["request_id"] not in rows, "a fulfilled request is not open"
    table = await asyncio.to_thread(run_callvault, "subject", "requests", "--tenant", "acme", env=env)
    assert str(command.event_id) in table.stdout and "overdue by" in table.stdout

    await bus.caught_up()
    out = tmp_path / "report"
    replayed = await asyncio.to_thread(
        run_callvault, "audit", "replay", "--tenant", "acme", "--out", str(out), env=env, timeout=180
    )
    assert replayed.returncode == 1, replayed.stdout + replayed.stderr  # violations found
    report = json.loads((out / "report.json").read_text())
    found = {
        (v["rule"], v["detail"].split()[2]) for v in report["violations"] if v["rule"].startswith("subject")
    }
    assert ("subject_request_overdue", str(command.event_id)) in found
    assert ("subject_request_late", late["request_id"]) in found
    statuses = {r["request_id"]: r["status"] for r in report["subject_requests"]}
    assert statuses[str(command.event_id)] == "overdue" and statuses[late["request_id"]] == "late"
    assert str(command.event_id) in (out / "report.html").read_text()
    await asyncio.to_thread(
        bus.s3.put_object_legal_hold, Bucket=settings.recordings_bucket, Key=rec, LegalHold={"Status": "OFF"}
    )


async def test_an_objection_event_after_the_archive_erases_the_recording(
    settings: Settings, bus: Bus
) -> None:
    call = await archived_call(bus, new_number())
    rec, meta = archive_keys(bus, call)

    await bus.send(call.objected())

    await bus.wait_types(call.call_id, "recording.deleted")
    (proof,) = {e["event_id"]: e for e in bus.events_of(call.call_id, "recording.deleted")}.values()
    assert proof["reason"] == "objection" and proof["object"]["key"] == rec
    assert rec not in keys_of(bus, settings.recordings_bucket, rec)
    await bus.lifecycle.wait_for(lambda w: len(bus.events_of(call.call_id, "metadata.archived")) == 2, 20)
    doc = json.loads(read_archived(bus.s3, settings, settings.metadata_bucket, meta))
    assert doc["objected_at"] and doc["recording"]["erased_at"]


async def test_a_legal_hold_is_not_kept_waiting_behind_a_subject_requests_lookup(
    settings: Settings, bus: Bus
) -> None:
    """A subject request lists its tenant's whole index (minutes for a large tenant); a hold sent behind
    it on the same partition of `commands` is taken while the lookup runs, not after it (the subject
    lane, stream/command_lane.py). Before the lane the worker took the hold only once the request was
    answered. (When the hold is placed is no measure here: on moto its own version listings scan the
    whole bucket, the planted entries included, and share moto's CPU with the lookup.)"""
    tenant = f"lane{uuid.uuid4().hex[:6]}"
    call = bus.script(tenant=tenant)  # held ahead of its recording: the hold names its tenant
    # 300 other calls in the tenant's index: with the export it writes, the request takes about a second
    # on moto, where the hold's admission takes milliseconds. They are erased at the end: moto lists
    # a bucket whole.
    keys = [entry_key(tenant, [uuid.uuid4().hex * 2], f"planted-{n}") for n in range(300)]

    def plant(key: str) -> None:
        bus.s3.put_object(Bucket=settings.metadata_bucket, Key=key, Body=b"{}")

    def plant_all() -> None:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(plant, keys))

    await asyncio.to_thread(plant_all)
    try:
        await hold_behind_lookup(settings, bus, tenant, call)
    finally:
        await asyncio.to_thread(erase_under, bus.s3, settings.metadata_bucket, os.path.commonprefix(keys))


async def hold_behind_lookup(settings: Settings, bus: Bus, tenant: str, call: CallScript) -> None:
    """An access request for a subject of `tenant`, then a hold on `call` right behind it."""
    # The request and the hold on one partition of `commands`: the request's subject is chosen so.
    partitions = sorted(await bus.producer.partitions_for(settings.commands_topic))
    on_partition = DefaultPartitioner()
    where = on_partition(call.call_id.encode(), partitions, partitions)
    number = next(
        n for n in iter(new_number, None)
        if on_partition(pseudonym(settings, n, tenant).encode(), partitions, partitions) == where
    )  # fmt: skip
    request = new_command(settings, "access", number, tenant)
    hold = LegalHoldPlace(
        event_id=uuid.uuid4(), requested_by="legal@acme", requested_at=datetime.now(UTC),
        reason="case 2026-31", call_id=call.call_id, tenant=tenant,
    )  # fmt: skip
    await file_request(settings, request, 0)
    await submit_command(settings, hold, 0)

    held = await bus.lifecycle_where(answers(hold), timeout=60)
    done = await bus.lifecycle_where(answers(request), timeout=120)
    assert held["type"] == "legal_hold.placed" and done["type"] == "subject.access_fulfilled"
    taken = await bus.lifecycle_where(
        lambda e: e.get("type") == "command.accepted" and e.get("command_id") == str(hold.event_id)
    )
    # By the worker's own clock, which stamps both: the two proofs may lie on different partitions of
    # `lifecycle`, and a reader gets partitions in no set order (CI saw the answer read first once).
    assert datetime.fromisoformat(taken["occurred_at"]) < datetime.fromisoformat(done["occurred_at"]), (
        f"the worker took the hold at {taken['occurred_at']}, "
        f"after the request's answer at {done['occurred_at']}"
    )
