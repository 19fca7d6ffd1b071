"""The QA API as a real process against the real broker and store.

Calls are archived by a real worker, then read through HTTP: tenant isolation
on every endpoint, byte ranges, an access event per retrieval, 410 past
retention and after deletion, restriction, and clear 422s.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from callvault.api.tokens import issue_token
from callvault.embedded.processes import ChildProcess
from callvault.rules.access import Role
from callvault.rules.pseudonym import pseudonymize
from callvault.rules.retention import RetentionClass
from callvault.settings import Settings
from callvault.storage.subject_flags import FlagRecord, SubjectFlag, put_flag, remove_flag
from tests.cli import run_callvault
from tests.conftest import (
    ARTIFACTS,
    settings_env,
    spawn_api,
    stack_fixtures,
)
from tests.integration.helpers import CALLEE, CALLER, Bus, CallScript
from tests.integration.ops_probe import scrape, value

pytestmark = pytest.mark.integration

PURPOSE = {"purpose": "coaching session with agent-7"}


api_settings, api_worker, _, api_urls, api_url = stack_fixtures(
    "api",
    "a",
    api=True,
    purge_interval_s=1.0,
    purge_rescan_s=1.0,
    api_restrictions_ttl_s=0.5,
    api_trusted_proxies="127.0.0.1",  # the tests' client is a trusted proxy: its X-Request-ID is kept
)


@pytest.fixture(scope="module")
def ops_url(api_urls: tuple[str, str]) -> str:
    """Where the API serves its metrics and docs: not on the public port."""
    return api_urls[1]


def token(
    settings: Settings, role: Role = Role.QA, tenants: tuple[str, ...] = ("acme",), who: str = "coach@acme"
) -> str:
    secret = settings.api_token_secret.get_secret_value()
    return issue_token(secret, who, role, list(tenants), datetime.now(UTC), timedelta(hours=1))


def auth(settings: Settings, **kwargs: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(settings, **kwargs)}"}


@dataclass
class Archived:
    call: CallScript

    @property
    def day(self) -> str:
        return self.call.start.astimezone(UTC).date().isoformat()

    @property
    def path(self) -> str:
        return f"/api/v1/calls/{self.call.tenant}/{self.day}/{self.call.call_id}"


async def archive(bus: Bus, **script: Any) -> Archived:
    call = bus.script(**script)
    await bus.send_call(call)
    await bus.wait_types(call.call_id, "recording.archived", "metadata.archived")
    return Archived(call)


@pytest.fixture
async def bus(api_settings: Settings) -> AsyncIterator[Bus]:
    async with Bus(api_settings) as b:
        yield b


@pytest.fixture
async def client(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as c:
        yield c


async def test_another_tenants_call_is_not_found_on_every_endpoint(
    api_settings: Settings, bus: Bus, client: httpx.AsyncClient
) -> None:
    theirs = await archive(bus, tenant="globex")
    ours = await archive(bus, tenant="acme")
    acme = auth(api_settings)
    unknown = f"/api/v1/calls/acme/{theirs.day}/no-such-call"
    not_found = (await client.get(unknown, params=PURPOSE, headers=acme)).json()["error"]

    for method, suffix, kwargs in [
        ("GET", "", {"params": PURPOSE}),
        ("GET", "/audio", {"params": PURPOSE}),
        ("POST", "/audio-link", {"json": PURPOSE}),
    ]:
        answer = await client.request(method, theirs.path + suffix, headers=acme, **kwargs)
        assert answer.status_code == 404, (suffix, answer.text)
        assert "globex" in answer.json()["error"] and "no call" in not_found
    search = await client.get("/api/v1/calls", params={"tenant": "globex"}, headers=acme)
    assert search.status_code == 404
    everything = await client.get("/api/v1/calls", params={"limit": 200}, headers=acme)
    found = {c["call_id"] for c in everything.json()["calls"]}
    assert ours.call.call_id in found and theirs.call.call_id not in found

    globex = auth(api_settings, tenants=("globex",), who="coach@globex")
    assert (await client.get(theirs.path, params=PURPOSE, headers=globex)).status_code == 200
    everyone = auth(api_settings, role=Role.ADMIN, tenants=("*",), who="ops")
    assert (await client.get(theirs.path, params=PURPOSE, headers=everyone)).status_code == 200


async def test_a_sealed_recording_is_served_whole_and_by_range_and_refused_once_altered(
    api_settings: Settings, bus: Bus, client: httpx.AsyncClient
) -> None:
    """Issue 29 on moto's server: the bytes at rest hold no piece of the audio; the API serves the source's
    bytes; a segment altered in the store is refused with a sentence, never garbage audio."""
    done = await archive(bus)
    audio, headers = done.call.audio, auth(api_settings)
    obj = bus.events_of(done.call.call_id, "recording.archived")[-1]["object"]
    stored = bus.s3.get_object(Bucket=obj["bucket"], Key=obj["key"])
    at_rest, meta = bytearray(stored["Body"].read()), stored["Metadata"]
    assert at_rest.startswith(b"CVS1") and not [
        i for i in range(0, len(audio) - 32, 32) if audio[i : i + 32] in at_rest
    ]
    part = await client.get(
        done.path + "/audio", params=PURPOSE, headers={**headers, "Range": "bytes=7-70000"}
    )
    assert part.status_code == 206 and part.content == audio[7:70001]
    at_rest[len(at_rest) // 2] ^= 0x01  # behind callvault's back: one bit, metadata kept
    bus.s3.put_object(Bucket=obj["bucket"], Key=obj["key"], Body=bytes(at_rest), Metadata=meta)
    refused = await client.get(done.path + "/audio", params=PURPOSE, headers=headers)
    assert refused.status_code == 500 and "does not open under its client's key" in refused.json()["error"]


async def test_a_search_leaves_out_a_document_that_does_not_open_and_names_it(
    api_settings: Settings, bus: Bus, client: httpx.AsyncClient
) -> None:
    """One metadata document altered in the store (one bit, its metadata kept) does not open under its
    client's key: a search of its day still answers, shows the other calls and names that one."""
    tenant = f"alt-{uuid.uuid4().hex[:6]}"
    kept, altered = await archive(bus, tenant=tenant), await archive(bus, tenant=tenant)
    obj = bus.events_of(altered.call.call_id, "metadata.archived")[-1]["object"]
    stored = bus.s3.get_object(Bucket=obj["bucket"], Key=obj["key"])
    at_rest, meta = bytearray(stored["Body"].read()), stored["Metadata"]
    at_rest[len(at_rest) // 2] ^= 0x01
    bus.s3.put_object(Bucket=obj["bucket"], Key=obj["key"], Body=bytes(at_rest), Metadata=meta)
    headers = auth(api_settings, tenants=(tenant,), who=f"coach@{tenant}")

    found = await client.get("/api/v1/calls", params={"tenant": tenant}, headers=headers)

    assert found.status_code == 200, found.text
    assert [c["call_id"] for c in found.json()["calls"]] == [kept.call.call_id]
    assert found.json()["unreadable"] == [f"{tenant}/{altered.day}/{altered.call.call_id}"]
    opened = await client.get(altered.path, params=PURPOSE, headers=headers)
    assert opened.status_code == 500 and "does not open under its client's key" in opened.json()["error"]


async def test_range_requests_return_the_right_bytes(
    api_settings: Settings, bus: Bus, client: httpx.AsyncClient
) -> None:
    done = await archive(bus)
    audio = done.call.audio
    size = len(audio)
    headers = auth(api_settings)
    whole = await client.get(done.path + "/audio", params=PURPOSE, headers=headers)
    assert whole.status_code == 200 and whole.content == audio
    assert whole.headers["accept-ranges"] == "bytes" and whole.headers["content-type"] == "audio/wav"

    for spec, first, last in [
        ("bytes=100-199", 100, 199),
        ("bytes=-50", size - 50, size - 1),
        ("bytes=1000-", 1000, size - 1),
        (f"bytes=10-{size * 2}", 10, size - 1),
    ]:
        part = await client.get(done.path + "/audio", params=PURPOSE, headers={**headers, "Range": spec})
        assert part.status_code == 206, spec
        assert part.content == audio[first : last + 1], spec
        assert part.headers["content-range"] == f"bytes {first}-{last}/{size}"
    past = await client.get(
        done.path + "/audio", params=PURPOSE, headers={**headers, "Range": f"bytes={size}-"}
    )
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{size}"

    link = await client.post(done.path + "/audio-link", json=PURPOSE, headers=headers)
    assert link.status_code == 200, link.text
    url = link.json()["url"]
    seek = await client.get(url, headers={"Range": "bytes=44-1043"})  # no token: the link is the grant
    assert seek.status_code == 206 and seek.content == audio[44:1044]


async def test_every_retrieval_is_one_access_event_naming_who_why_and_which_request(
    api_settings: Settings, bus: Bus, client: httpx.AsyncClient
) -> None:
    done = await archive(bus)
    headers = auth(api_settings, who="coach-17@acme")
    ids, offered = [], []
    for i, (method, suffix, kwargs) in enumerate(
        [
            ("GET", "", {"params": PURPOSE}),
            ("GET", "/audio", {"params": PURPOSE}),
            ("POST", "/audio-link", {"json": PURPOSE}),
        ]
    ):
        request_id = f"req-{secrets.token_hex(6)}-{i}"
        answer = await client.request(
            method, done.path + suffix, headers={**headers, "X-Request-ID": request_id}, **kwargs
        )
        # callvault's own id names the request; the proxy's is kept apart, never used as ours.
        assert answer.status_code == 200 and answer.headers["x-request-id"] != request_id
        assert CALLER not in answer.text and CALLEE not in answer.text
        ids.append(answer.headers["x-request-id"])
        offered.append(request_id)
    await client.get(done.path, headers=headers)  # no purpose: refused, and not an access
    # Playing the link is covered by the event logged when it was handed out.
    link = (await client.post(done.path + "/audio-link", json=PURPOSE, headers=headers)).json()
    for _ in range(3):
        assert (await client.get(link["url"], headers={"Range": "bytes=0-99"})).status_code == 206

    def four_accesses(w: Any) -> bool:
        return len([e for e in w.by_key.get(done.call.call_id, []) if e["type"] == "recording.accessed"]) >= 4

    await bus.lifecycle.wait_for(four_accesses, 20, "access events")
    # A last access marks the end: the API logs a call's accesses in order (keyed by call id),
    # so once it arrives, any access the link plays had wrongly made is here too.
    last = await client.get(done.path, params=PURPOSE, headers=headers)
    last_id = last.headers["x-request-id"]
    await bus.lifecycle.wait_for(
        lambda w: any(e.get("request_id") == last_id for e in w.by_key.get(done.call.call_id, [])),
        20,
        "the closing access event",
    )
    *events, closing = bus.events_of(done.call.call_id, "recording.accessed")
    assert closing["request_id"] == last_id
    assert len(events) == 4
    assert [e["request_id"] for e in events[:3]] == ids
    assert [e["client_request_id"] for e in events[:3]] == offered
    assert [e["what"] for e in events] == ["metadata", "audio", "audio", "audio"]
    assert events[3]["event_id"] == link["access_event_id"]
    for event in events:
        assert event["accessed_by"] == "coach-17@acme" and event["role"] == "qa"
        assert event["purpose"] == PURPOSE["purpose"] and event["granted_tenants"] == ["acme"]
        assert event["tenant"] == "acme"


async def test_bad_parameters_are_422_with_a_sentence_naming_the_parameter(
    api_settings: Settings, client: httpx.AsyncClient
) -> None:
    headers = auth(api_settings)
    cases = [
        ("/api/v1/calls", {"from": "2026-13-01"}, "from"),
        ("/api/v1/calls", {"limit": "0"}, "limit"),
        ("/api/v1/calls", {"tenant": "ACME"}, "tenant"),
        ("/api/v1/calls", {"from": "2026-05-02", "to": "2026-05-01"}, "after"),
        ("/api/v1/calls", {"from": "2025-01-01", "to": "2026-05-01"}, "at most"),
        ("/api/v1/calls", {"outcome": "lost"}, "outcome"),
        ("/api/v1/calls", {"cursor": "!!!"}, "cursor"),
        ("/api/v1/calls/acme/2026-02-30/c-1", PURPOSE, "day"),
        ("/api/v1/calls/acme/2026-02-03/c 1", PURPOSE, "call_id"),
        ("/api/v1/calls/acme/2026-02-03/c-1", {}, "purpose"),
    ]
    for path, params, word in cases:
        answer = await client.get(path, params=params, headers=headers)
        assert answer.status_code == 422, (path, params, answer.text)
        assert word in answer.json()["error"], (path, params, answer.json())


async def test_tokens_are_required_and_roles_are_obeyed(
    api_settings: Settings, bus: Bus, client: httpx.AsyncClient
) -> None:
    done = await archive(bus)
    assert (await client.get("/api/v1/calls")).status_code == 401
    bad = await client.get("/api/v1/calls", headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401 and "token" in bad.json()["error"]
    forged = issue_token(
        "another-secret-that-is-at-least-32-bytes",
        "x",
        Role.ADMIN,
        ["*"],
        datetime.now(UTC),
        timedelta(hours=1),
    )
    assert (
        await client.get("/api/v1/calls", headers={"Authorization": f"Bearer {forged}"})
    ).status_code == 401
    auditor = auth(api_settings, role=Role.AUDITOR, who="auditor@dpa")
    assert (await client.get(done.path, params=PURPOSE, headers=auditor)).status_code == 200
    listen = await client.get(done.path + "/audio", params=PURPOSE, headers=auditor)
    assert listen.status_code == 403 and "auditor" in listen.json()["error"]


async def test_health_and_readiness(client: httpx.AsyncClient, ops_url: str) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "problems": {}}
    async with httpx.AsyncClient(base_url=ops_url, timeout=10) as ops:
        docs = await ops.get("/openapi.json")
        assert "/api/v1/calls/{tenant}/{day}/{call_id}/audio" in docs.json()["paths"]
        assert (await ops.get("/docs")).status_code == 200
    # The public port serves neither the spec nor the metrics.
    for path in ("/openapi.json", "/docs", "/metrics"):
        assert (await client.get(path)).status_code == 404, path


def _starting_so_recording_expires_in(settings: Settings, seconds: float) -> datetime:
    """The call start whose recording (6 s later) is due `seconds` from now, in calendar months."""
    target = datetime.now(UTC) + timedelta(seconds=seconds)
    start = target - timedelta(days=30)
    for _ in range(3):
        due = settings.retention.expires_at(RetentionClass.RECORDING, start + timedelta(seconds=6))
        start += target - due
    return start


async def test_a_recording_past_retention_is_gone_then_deleted_and_still_gone(
    api_settings: Settings, bus: Bus, client: httpx.AsyncClient
) -> None:
    done = await archive(bus, start=_starting_so_recording_expires_in(api_settings, 12))
    headers = auth(api_settings)
    assert (await client.get(done.path + "/audio", params=PURPOSE, headers=headers)).status_code == 200
    link = (await client.post(done.path + "/audio-link", json=PURPOSE, headers=headers)).json()
    await bus.wait_types(done.call.call_id, "recording.deleted", timeout=60)

    gone = await client.get(done.path + "/audio", params=PURPOSE, headers=headers)
    assert gone.status_code == 410 and "expired" in gone.json()["error"]
    assert (await client.post(done.path + "/audio-link", json=PURPOSE, headers=headers)).status_code == 410
    assert (await client.get(link["url"])).status_code in (401, 410)  # the link never outlives it
    meta = await client.get(done.path, params=PURPOSE, headers=headers)
    assert meta.status_code == 200
    assert meta.json()["recording"]["days_left"] == 0 and meta.json()["metadata_days_left"] > 100


async def test_a_restricted_subjects_call_is_refused_with_a_reason_until_unrestricted(
    api_settings: Settings, bus: Bus, client: httpx.AsyncClient
) -> None:
    done = await archive(bus)
    subject = pseudonymize(api_settings.pseudonym_key.get_secret_value().encode(), "acme", CALLER)
    record = FlagRecord(
        subject=subject,
        tenant="acme",
        reason="contests accuracy",
        requested_by="dpo@acme",
        flagged_at=datetime.now(UTC),
    )
    flag = SubjectFlag.RESTRICTED
    await asyncio.to_thread(put_flag, bus.s3, api_settings.metadata_bucket, flag, record)
    qa = auth(api_settings)
    await until_status(client, done.path, qa, 451)  # once the API's restriction cache has renewed
    for method, suffix, kwargs in [
        ("GET", "", {"params": PURPOSE}),
        ("GET", "/audio", {"params": PURPOSE}),
        ("POST", "/audio-link", {"json": PURPOSE}),
    ]:
        refused = await client.request(method, done.path + suffix, headers=qa, **kwargs)
        assert refused.status_code == 451 and "restrict" in refused.json()["error"], suffix
    listed = await client.get("/api/v1/calls", params={"call_id": done.call.call_id}, headers=qa)
    (entry,) = listed.json()["calls"]
    assert entry["restricted"] is True and entry["agent_id"] is None
    dpo = auth(api_settings, role=Role.DPO, who="dpo@acme")
    assert (await client.get(done.path, params=PURPOSE, headers=dpo)).status_code == 200

    await asyncio.to_thread(remove_flag, bus.s3, api_settings.metadata_bucket, flag, "acme", subject)
    await until_status(client, done.path, qa, 200)


async def until_status(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], status: int, timeout: float = 10
) -> httpx.Response:
    """Ask until the API answers `status`: its caches renew on their own clock."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (answer := await client.get(path, params=PURPOSE, headers=headers)).status_code != status:
        assert asyncio.get_running_loop().time() < deadline, f"still {answer.status_code}: {answer.text}"
        await asyncio.sleep(0.1)
    return answer


async def test_search_filters_and_pages_newest_first(
    api_settings: Settings, bus: Bus, client: httpx.AsyncClient
) -> None:
    agent = f"agent-{secrets.token_hex(3)}"
    calls = []
    for hours in (1, 30, 60):
        call = bus.script(tenant="acme", start=datetime.now(UTC) - timedelta(hours=hours))
        started = {**call.started(), "agent_id": agent}
        await bus.send_call(call, started, call.disclosure(), call.stored(), call.ended())
        calls.append(call)
    for call in calls:
        await bus.wait_types(call.call_id, "recording.archived", "metadata.archived")
    headers = auth(api_settings)
    first = await client.get("/api/v1/calls", params={"agent": agent, "limit": 2}, headers=headers)
    page = first.json()
    # 1, 30 and 60 hours ago are three UTC days: newest day first.
    assert [c["call_id"] for c in page["calls"]] == [calls[0].call_id, calls[1].call_id]
    assert page["next_cursor"]
    rest = await client.get(
        "/api/v1/calls", params={"agent": agent, "limit": 2, "cursor": page["next_cursor"]}, headers=headers
    )
    seen = [c["call_id"] for c in page["calls"]] + [c["call_id"] for c in rest.json()["calls"]]
    assert sorted(seen) == sorted(c.call_id for c in calls) and rest.json()["next_cursor"] is None
    entry = page["calls"][0]
    assert entry["outcome"] == "archived" and entry["disclosure_verdict"] == "compliant"
    assert 29 <= entry["recording_days_left"] <= 31
    none = await client.get("/api/v1/calls", params={"agent": agent, "outcome": "objected"}, headers=headers)
    assert none.json()["calls"] == []


async def test_presigned_mode_streams_a_sealed_recording_and_logs_the_access(
    api_settings: Settings, bus: Bus, api_worker: ChildProcess
) -> None:
    """A presigned URL would serve the store's bytes, sealed under the client's key: the API hands its own
    link instead (a recording stored unsealed still gets a presigned one: tests/stores)."""
    done = await archive(bus)
    presigned = api_settings.model_copy(update={"api_audio_mode": "presigned", "api_audio_link_s": 60})
    proc, url, _ = spawn_api(presigned, "api-presigned")
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            answer = await client.post(done.path + "/audio-link", json=PURPOSE, headers=auth(api_settings))
            link = answer.json()
            assert answer.status_code == 200 and link["mode"] == "stream", answer.text
            assert link["url"].startswith("/api/v1/audio/")
            fetched = await client.get(link["url"], headers={"Range": "bytes=0-99"})
        assert fetched.status_code == 206 and fetched.content == done.call.audio[:100]
        await bus.lifecycle.wait_for(
            lambda w: any(
                e["event_id"] == link["access_event_id"] for e in w.by_key.get(done.call.call_id, [])
            ),
            20,
            "the link's access event",
        )
    finally:
        proc.stop()


def test_the_api_log_holds_no_phone_number_and_no_audio_link(api_settings: Settings, api_url: str) -> None:
    log = (ARTIFACTS / f"api-{api_settings.app_id}.log").read_text()
    assert '"status":200' in log  # the other tests of this module ran and were logged
    assert CALLER not in log and CALLEE not in log
    assert "/api/v1/audio/<link>" in log and "/api/v1/audio/eyJ" not in log


async def test_api_metrics_count_requests_by_route_never_by_call(
    api_settings: Settings, bus: Bus, client: httpx.AsyncClient, ops_url: str
) -> None:
    archived = await archive(bus, tenant="acme")
    served = {"method": "GET", "route": "/api/v1/calls/{tenant}/{day}/{call_id}", "status": "200"}
    before = value(scrape(ops_url), "callvault_api_requests_total", **served)
    for _ in range(3):
        answer = await client.get(archived.path, params=PURPOSE, headers=auth(api_settings))
        assert answer.status_code == 200
    after = value(scrape(ops_url), "callvault_api_requests_total", **served)
    assert after - before == 3, "counted under the route's template"
    text = httpx.get(f"{ops_url}/metrics", timeout=5).text
    assert archived.call.call_id not in text, "a metric label names a call"


# -- issue 14: fail closed -------------------------------------------------------------------
# Each of these failed on main (the closing note says how).


async def test_search_finds_a_restricted_call_by_address_and_time_only(
    api_settings: Settings, bus: Bus, client: httpx.AsyncClient
) -> None:
    agent = f"agent-{secrets.token_hex(3)}"
    caller = f"+32470{secrets.randbelow(10**6):06d}"
    call = bus.script(tenant="acme", caller=caller)
    await bus.send_call(
        call, {**call.started(), "agent_id": agent}, call.disclosure(), call.stored(), call.ended()
    )
    await bus.wait_types(call.call_id, "recording.archived", "metadata.archived")
    subject = pseudonymize(api_settings.pseudonym_key.get_secret_value().encode(), "acme", caller)
    record = FlagRecord(
        subject=subject, tenant="acme", reason="r", requested_by="dpo", flagged_at=datetime.now(UTC)
    )
    await asyncio.to_thread(put_flag, bus.s3, api_settings.metadata_bucket, SubjectFlag.RESTRICTED, record)
    try:
        qa = auth(api_settings)

        async def listed(**params: str) -> list[str]:
            async def fresh() -> bool:  # the API rereads restrictions within its TTL
                found = await client.get("/api/v1/calls", params={"call_id": call.call_id}, headers=qa)
                return bool(found.json()["calls"]) and found.json()["calls"][0]["restricted"]

            while not await fresh():
                await asyncio.sleep(0.2)
            answer = await client.get("/api/v1/calls", params={"limit": 200, **params}, headers=qa)
            return [c["call_id"] for c in answer.json()["calls"]]

        # On main `agent=<its agent>` listed it and any other agent did not: the filter told.
        assert call.call_id not in await listed(agent=agent)
        assert call.call_id not in await listed(agent="agent-nobody")
        assert call.call_id not in await listed(outcome="archived")
        assert call.call_id in await listed()
    finally:
        await asyncio.to_thread(
            remove_flag, bus.s3, api_settings.metadata_bucket, SubjectFlag.RESTRICTED, "acme", subject
        )


async def test_a_search_has_a_budget_and_a_cursor_to_go_on(
    api_settings: Settings, api_worker: ChildProcess
) -> None:
    """`agent=nobody` over 60 days read every listing and document for one answer on main."""
    small = api_settings.model_copy(update={"api_search_budget": 7})
    proc, url, _ = spawn_api(small, "api-budget")
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            params = {
                "agent": "agent-nobody",
                "from": (datetime.now(UTC) - timedelta(days=59)).date().isoformat(),
            }
            pages, cursor = 0, None
            while True:
                answer = await client.get(
                    "/api/v1/calls", params={**params, **({"cursor": cursor} if cursor else {})},
                    headers=auth(api_settings),
                )  # fmt: skip
                body = answer.json()
                assert answer.status_code == 200 and body["calls"] == [], body
                pages += 1
                cursor = body["next_cursor"]
                if cursor is None:
                    assert body["partial"] is False
                    break
                assert body["partial"] is True
            assert pages >= 60 // 7  # 60 day listings (one tenant at least), at most 7 per answer
    finally:
        proc.stop()


async def test_the_token_is_checked_before_any_body_is_read(
    api_settings: Settings, client: httpx.AsyncClient
) -> None:
    path = f"/api/v1/calls/acme/{datetime.now(UTC).date()}/c-1/audio-link"
    # Not read at all before the 401 (tests/unit/test_fail_closed.py follows the bytes).
    big = await client.post(path, content=b"x" * 60_000)
    assert big.status_code == 401 and "Bearer" in big.json()["error"]
    broken = await client.post(path, content=b"{not json", headers={"content-type": "application/json"})
    assert broken.status_code == 401  # was 422: a stranger learnt what the route expects
    too_large = await client.post(path, content=b"{" + b" " * 70_000 + b"}", headers=auth(api_settings))
    assert too_large.status_code == 413 and "CALLVAULT_API_MAX_BODY_BYTES" in too_large.json()["error"]


async def test_another_tenants_call_is_404_before_its_purpose_is_asked(
    api_settings: Settings, client: httpx.AsyncClient
) -> None:
    path = f"/api/v1/calls/globex/{datetime.now(UTC).date()}/c-1"
    for suffix in ("", "/audio"):
        answer = await client.get(path + suffix, headers=auth(api_settings))  # no purpose: that comes later
        assert answer.status_code == 404, answer.text


async def test_an_audio_link_opens_nothing_but_its_calls_recording(
    api_settings: Settings, bus: Bus, client: httpx.AsyncClient
) -> None:
    from callvault.api.tokens import AudioLink, issue_audio_link

    done = await archive(bus)
    await asyncio.to_thread(
        bus.s3.put_object, Bucket=api_settings.exports_bucket, Key="acme/x.zip", Body=b"PK"
    )
    forged = AudioLink(
        tenant="acme", call_id=done.call.call_id, bucket=api_settings.exports_bucket, key="acme/x.zip",
        content_type="application/zip", size_bytes=2, sha256="0" * 64, recording_expires_at=None,
        expires_at=datetime.now(UTC) + timedelta(minutes=5), access_id="x", subject="someone",
    )  # fmt: skip
    url = f"/api/v1/audio/{issue_audio_link(api_settings.api_token_secret.get_secret_value(), forged)}"
    answer = await client.get(url)
    assert answer.status_code == 403 and answer.content != b"PK"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/calls/acme/9999-12-31/c-1",
        "/api/v1/calls/acme/0001-01-01/c-1",
        "/api/v1/calls?from=0001-01-01",
        "/api/v1/calls?to=9999-12-31",
    ],
)
async def test_absurd_dates_are_422_not_500(
    api_settings: Settings, client: httpx.AsyncClient, path: str
) -> None:
    answer = await client.get(path, params=PURPOSE if "/c-1" in path else None, headers=auth(api_settings))
    assert answer.status_code == 422, answer.text


async def test_a_range_of_thousands_of_digits_is_416_not_500(
    api_settings: Settings, bus: Bus, client: httpx.AsyncClient
) -> None:
    done = await archive(bus)
    rng = {"Range": "bytes=" + "9" * 5000 + "-", **auth(api_settings)}
    answer = await client.get(done.path + "/audio", params=PURPOSE, headers=rng)
    assert answer.status_code == 416, answer.text


def test_a_busy_ops_port_leaves_the_api_serving(api_settings: Settings, api_worker: ChildProcess) -> None:
    import socket

    from callvault.embedded.processes import free_port
    from callvault.embedded.worker_process import start_api_process
    from tests.conftest import settings_env

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = free_port()
        log = ARTIFACTS / f"api-busy-ops-{api_settings.app_id}.log"
        proc = start_api_process(
            settings_env(api_settings), log, port, "api-busy-ops", ops_port=busy.getsockname()[1]
        )
        try:
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json() == {"status": "ok"}
            assert "the ops listener could not start" in proc.tail(40)
        finally:
            proc.stop()


async def test_the_dpo_changes_a_client_policy_and_the_auditor_reads_it(
    api_settings: Settings, bus: Bus, client: httpx.AsyncClient
) -> None:
    tenant = f"pol-{uuid.uuid4().hex[:6]}"
    dpo = auth(api_settings, role=Role.DPO, tenants=(tenant,), who="dpo@centre")
    body = {"terms": {"recording": "P14D"}, "reason": "contract 7.1"}

    made = await client.post(f"/api/v1/policies/{tenant}", json=body, headers=dpo)

    assert made.status_code == 201, made.text
    assert made.json()["version"] == 1 and made.json()["changed_by"] == "dpo@centre"
    await bus.lifecycle.wait_for(
        lambda w: any(r.get("type") == "policy.changed" and r.get("tenant") == tenant for r in w.records),
        30,
        "policy.changed",
    )
    auditor = auth(api_settings, role=Role.AUDITOR, tenants=(tenant,), who="auditor@dpa")
    shown = (await client.get(f"/api/v1/policies/{tenant}", headers=auditor)).json()
    assert shown["version"] == 1
    assert shown["scopes"][0]["terms"] == {"recording": "P14D", "metadata": "P6M"}
    history = (await client.get(f"/api/v1/policies/{tenant}/history", headers=auditor)).json()
    assert [v["reason"] for v in history] == ["contract 7.1"]

    refused = await client.post(f"/api/v1/policies/{tenant}", json=body, headers=auditor)
    assert refused.status_code == 403 and "may not change" in refused.json()["error"]
    elsewhere = await client.post("/api/v1/policies/acme", json=body, headers=dpo)
    assert elsewhere.status_code == 403 and "does not cover tenant 'acme'" in elsewhere.json()["error"]
    too_short = await client.post(
        f"/api/v1/policies/{tenant}", json={"terms": {"recording": "PT1M"}, "reason": "r"}, headers=dpo
    )
    assert too_short.status_code == 422
    assert "shorter than the shortest allowed (P1D)" in too_short.json()["error"]

    clause = (datetime.now(UTC) + timedelta(days=30)).isoformat(timespec="seconds")
    later = {"terms": {"recording": "P2M"}, "reason": "clause 8 from next month", "effective_at": clause}
    pending = await client.post(f"/api/v1/policies/{tenant}", json=later, headers=dpo)
    assert pending.status_code == 201, pending.text
    shown = (await client.get(f"/api/v1/policies/{tenant}", headers=auditor)).json()
    assert [v["version"] for v in shown["pending"]] == [2]
    path = f"/api/v1/policies/{tenant}/versions/2/cancel"
    assert (await client.post(path, json={"reason": "r"}, headers=auditor)).status_code == 403
    cancelled = await client.post(path, json={"reason": "clause 8 withdrawn"}, headers=dpo)
    assert cancelled.status_code == 201, cancelled.text
    assert cancelled.json()["change"] == {"cancels": 2}
    assert (await client.get(f"/api/v1/policies/{tenant}", headers=auditor)).json()["pending"][0][
        "version"
    ] == 3
    again = await client.post(path, json={"reason": "twice"}, headers=dpo)
    assert again.status_code == 422 and "replaced at its instant by version 3" in again.json()["error"]
    await bus.lifecycle.wait_for(
        lambda w: any(r.get("type") == "policy.cancelled" and r.get("tenant") == tenant for r in w.records),
        30,
        "policy.cancelled",
    )


@pytest.fixture(scope="module")
def sites_api(api_settings: Settings, api_worker: ChildProcess) -> Iterator[tuple[Settings, str]]:
    """A second API on the same stack, with processing sites declared."""
    settings = api_settings.model_copy(update={"sites": "be-machelen=BE,nl-weert=NL,ma-rabat=MA"})
    proc, url, _ = spawn_api(settings, "api-sites")
    yield settings, url
    proc.stop()


def site_auth(settings: Settings, site: str | None, tenant: str, role: Role = Role.QA) -> dict[str, str]:
    secret = settings.api_token_secret.get_secret_value()
    text = issue_token(
        secret, f"{role.value}@{site}", role, [tenant], datetime.now(UTC), timedelta(hours=1), site=site
    )
    return {"Authorization": f"Bearer {text}"}


async def test_a_site_outside_the_eea_reads_a_client_only_once_the_client_allows_it(
    sites_api: tuple[Settings, str], bus: Bus
) -> None:
    settings, url = sites_api
    tenant = f"site-{uuid.uuid4().hex[:6]}"
    done = await archive(bus, tenant=tenant)
    env = settings_env(settings)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        assert (
            await client.get(done.path, params=PURPOSE, headers=site_auth(settings, None, tenant))
        ).status_code == 401
        inside = await client.get(
            done.path, params=PURPOSE, headers=site_auth(settings, "be-machelen", tenant)
        )
        assert inside.status_code == 200, inside.text

        rabat = site_auth(settings, "ma-rabat", tenant)
        refused = await client.get(done.path, params=PURPOSE, headers=rabat)
        assert refused.status_code == 403 and "outside the EEA" in refused.json()["error"]
        await bus.lifecycle.wait_for(
            lambda w: any(
                r.get("type") == "recording.access_refused" and r.get("tenant") == tenant for r in w.records
            ),
            30,
            "recording.access_refused",
        )
        (refusal,) = [
            r
            for r in bus.lifecycle.records
            if r.get("type") == "recording.access_refused" and r.get("tenant") == tenant
        ]
        assert (refusal["site"], refusal["site_country"], refusal["call_id"]) == (
            "ma-rabat",
            "MA",
            done.call.call_id,
        )
        searched = await client.get("/api/v1/calls", params={"tenant": tenant}, headers=rabat)
        assert searched.status_code == 403, "a search is a read too"

        # Issue 31, item 5: a DPO at the site acts on the tenant's subject requests only where a coach
        # there may read (on main, the request was filed and its export handed out).
        dpo_rabat = site_auth(settings, "ma-rabat", tenant, Role.DPO)
        body = {"kind": "access", "phone": "+32470123456", "tenant": tenant, "reason": "asked by letter",
                "verified_by": "dpo@rabat"}  # fmt: skip
        filed = await client.post("/api/v1/subject-requests", json=body, headers=dpo_rabat)
        assert filed.status_code == 403 and "outside the EEA" in filed.json()["error"], filed.text
        export = await client.get(f"/api/v1/subject-requests/{tenant}/{uuid.uuid4()}", headers=dpo_rabat)
        assert export.status_code == 403 and "outside the EEA" in export.json()["error"], export.text
        listed = await client.get("/api/v1/subject-requests", params={"all": "true"}, headers=dpo_rabat)
        assert listed.status_code == 200 and listed.json() == []
        await bus.lifecycle.wait_for(
            lambda w: {"subject_request", "export"}
            <= {r.get("what") for r in w.records if r.get("type") == "recording.access_refused"
                and r.get("tenant") == tenant},
            30,
            "the refused subject request and export, as access_refused",
        )  # fmt: skip
        assert "+32470123456" not in str(bus.lifecycle.records), "no phone number leaves call-events"

        allowed = await asyncio.to_thread(
            run_callvault,
            "policy",
            "allow-site",
            tenant,
            "ma-rabat",
            "--reason",
            "the client asked, ticket 88",
            env=env,
        )
        assert allowed.returncode == 0, allowed.stderr
        await until_status(client, done.path, rabat, 200)
        await bus.lifecycle.wait_for(
            lambda w: any(
                r.get("type") == "recording.accessed"
                and r.get("tenant") == tenant
                and r.get("site") == "ma-rabat"
                for r in w.records
            ),
            30,
            "an access naming the site",
        )
        (access,) = [
            r for r in bus.lifecycle.records
            if (r.get("type"), r.get("tenant"), r.get("site")) == ("recording.accessed", tenant, "ma-rabat")
        ]  # fmt: skip
        assert access["site_country"] == "MA"
        # Issue 33, item 7: a link handed out while the site was allowed (on main it played on after a
        # deny-site, until it expired).
        handed = await client.post(
            f"{done.path}/audio-link", json={"purpose": "coaching at rabat"}, headers=rabat
        )
        assert handed.status_code == 200, handed.text
        link = handed.json()["url"]
        assert (await client.get(link)).status_code == 200

        # Issue 32: a version pending a month out must not hold the withdrawal back (on main,
        # deny-site answered "change the sites after it has" and the site kept reading).
        clause = (datetime.now(UTC) + timedelta(days=30)).isoformat(timespec="seconds")
        pending = await asyncio.to_thread(
            run_callvault, "policy", "set", tenant, "--recording", "P14D", "--effective", clause,
            "--reason", "a clause from next month", env=env,
        )  # fmt: skip
        assert pending.returncode == 0, pending.stderr
        denied = await asyncio.to_thread(
            run_callvault, "policy", "deny-site", tenant, "ma-rabat", "--reason", "the annex ended", env=env
        )
        assert denied.returncode == 0, denied.stderr
        assert "no longer allows the site ma-rabat" in denied.stdout
        await until_status(client, done.path, rabat, 403)
        await until_status(client, link, {}, 403)
        played = await client.get(link)
        assert "outside the EEA" in played.json()["error"], played.text


async def test_the_dpo_names_the_clients_own_key_and_the_auditor_sees_it(
    api_settings: Settings, bus: Bus, client: httpx.AsyncClient
) -> None:
    """Issue 29 through the API: `POST /api/v1/policies/{tenant}/key`, as `policy set --kms-key` does."""
    tenant = f"key-{uuid.uuid4().hex[:6]}"
    dpo = auth(api_settings, role=Role.DPO, tenants=(tenant,), who="dpo@centre")
    auditor = auth(api_settings, role=Role.AUDITOR, tenants=(tenant,), who="auditor@dpa")
    path = f"/api/v1/policies/{tenant}/key"
    arn = "arn:aws:kms:eu-west-1:111122223333:key/0a1b2c3d-1111-2222-3333-444455556666"

    made = await client.post(path, json={"kms_key": arn, "reason": "the client's BYOK clause"}, headers=dpo)

    assert made.status_code == 201, made.text
    assert made.json()["kms_key"] == arn and made.json()["changed_by"] == "dpo@centre"
    assert (await client.get(f"/api/v1/policies/{tenant}", headers=auditor)).json()["kms_key"] == arn
    await bus.lifecycle.wait_for(
        lambda w: any(r.get("type") == "policy.changed" and r.get("tenant") == tenant for r in w.records),
        30,
        "policy.changed",
    )
    outside = arn.replace("eu-west-1", "us-east-1")
    refused = await client.post(path, json={"kms_key": outside, "reason": "r"}, headers=dpo)
    assert refused.status_code == 422 and "CALLVAULT_ALLOWED_REGIONS" in refused.json()["error"]
    not_arn = await client.post(path, json={"kms_key": "alias/theirs", "reason": "r"}, headers=dpo)
    assert not_arn.status_code == 422 and "ARN" in not_arn.json()["error"]
    by_auditor = await client.post(path, json={"kms_key": "callvault", "reason": "r"}, headers=auditor)
    assert by_auditor.status_code == 403
    back = await client.post(path, json={"kms_key": "callvault", "reason": "contract ended"}, headers=dpo)
    assert back.status_code == 201 and back.json()["kms_key"] is None
    assert (await client.get(f"/api/v1/policies/{tenant}", headers=auditor)).json()["kms_key"] is None
