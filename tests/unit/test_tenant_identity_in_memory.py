"""A call is (tenant, call_id): two clients may send the same id and each keeps its own call.

Call ids come from each client's platform. Before issue 16 the worker keyed a
call's state by the id alone and dead-lettered the second client's call as a
tenant conflict; holds, object locks and erasure found a call by its id in
every tenant.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from callvault.contract.fields import format_rfc3339
from callvault.testing import Harness
from tests.integration.helpers import CallScript
from tests.unit.test_subjects_in_memory import ask, new_number

CALL_ID = "c-shared-1"


@pytest.fixture
async def h() -> Any:
    async with Harness() as harness:
        yield harness


async def both(h: Harness, caller: str | None = None) -> tuple[CallScript, CallScript]:
    calls = []
    for tenant in ("acme", "beta"):
        call = CallScript(call_id=CALL_ID, tenant=tenant, start=h.clock.now(), caller=caller or new_number())
        h.upload(call.staging_key, call.audio)
        await h.send(call.started(), call.disclosure(), call.stored(), call.ended())
        calls.append(call)
    return calls[0], calls[1]


def of(h: Harness, tenant: str, type_: str) -> list[dict[str, Any]]:
    return [e for e in h.lifecycle(CALL_ID, type_) if e["tenant"] == tenant]


def tenant_keys(h: Harness, bucket: str, tenant: str) -> list[str]:
    return [k for k in h.objects(bucket) if k.startswith(f"{tenant}/") and CALL_ID in k]


def lock_status(h: Harness, bucket: str, key: str) -> str:
    versions = h.s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]
    statuses = set()
    for version in versions:
        try:
            answer = h.s3.get_object_legal_hold(Bucket=bucket, Key=key, VersionId=version["VersionId"])
            statuses.add(answer["LegalHold"].get("Status", "OFF"))
        except h.s3.exceptions.ClientError:
            statuses.add("OFF")
    return "ON" if statuses == {"ON"} else "OFF"


def hold(h: Harness, kind: str, tenant: str | None) -> dict[str, Any]:
    command = {
        "type": f"legal_hold.{kind}", "event_id": str(uuid.uuid4()), "call_id": CALL_ID,
        "requested_by": "legal@acme", "requested_at": format_rfc3339(h.clock.now()), "reason": "dispute 16",
    }  # fmt: skip
    if tenant is not None:
        command["tenant"] = tenant
    return command


async def test_the_same_call_id_for_two_tenants_is_archived_for_each(h: Harness) -> None:
    await both(h)

    assert not h.dead_letters, [d.error for d in h.dead_letters]
    for tenant in ("acme", "beta"):
        assert len(of(h, tenant, "recording.archived")) == 1, tenant
        assert len(of(h, tenant, "metadata.archived")) == 1, tenant
        assert len(tenant_keys(h, h.settings.recordings_bucket, tenant)) == 1


async def test_a_hold_on_one_tenants_call_keeps_and_locks_only_that_one(h: Harness) -> None:
    await both(h)
    await h.command(hold(h, "place", "acme"))
    assert len(h.lifecycle(CALL_ID, "legal_hold.placed")) == 1

    for bucket in (h.settings.recordings_bucket, h.settings.metadata_bucket):
        (acme,) = tenant_keys(h, bucket, "acme")
        (beta,) = tenant_keys(h, bucket, "beta")
        assert lock_status(h, bucket, acme) == "ON"
        assert lock_status(h, bucket, beta) == "OFF", "another client's call of the same id was locked"

    await h.advance(days=32)  # both recordings are past their month
    assert not of(h, "acme", "recording.deleted") and tenant_keys(h, h.settings.recordings_bucket, "acme")
    assert len(of(h, "beta", "recording.deleted")) == 1
    assert not tenant_keys(h, h.settings.recordings_bucket, "beta")


async def test_a_hold_without_a_tenant_is_refused_when_the_id_exists_in_two(h: Harness) -> None:
    await both(h)
    await h.command(hold(h, "place", None))

    assert not h.lifecycle(CALL_ID, "legal_hold.placed")
    (letter,) = h.dead_letters
    assert "acme" in letter.error and "beta" in letter.error and "--tenant" in letter.error


async def test_releasing_one_tenants_hold_leaves_the_others(h: Harness) -> None:
    await both(h)
    await h.command(hold(h, "place", "acme"))
    await h.command(hold(h, "place", "beta"))
    await h.command(hold(h, "release", "acme"))

    await h.advance(days=32)
    assert len(of(h, "acme", "recording.deleted")) == 1
    assert not of(h, "beta", "recording.deleted") and tenant_keys(h, h.settings.recordings_bucket, "beta")


async def test_an_erasure_in_one_tenant_leaves_the_same_id_in_the_other(h: Harness) -> None:
    number = new_number()
    await both(h, caller=number)
    await h.command(hold(h, "place", "beta"))  # a hold on beta's call must not shield acme's

    answer = await ask(h, "erase", number, tenant="acme")

    assert (answer["calls"], answer["recordings"], answer["metadata"]) == (1, 1, 1)
    assert answer["held_calls"] == []
    assert not tenant_keys(h, h.settings.recordings_bucket, "acme")
    assert tenant_keys(h, h.settings.recordings_bucket, "beta")
    assert tenant_keys(h, h.settings.metadata_bucket, "beta")


async def test_a_call_an_older_version_kept_under_its_bare_id_is_carried_on(h: Harness) -> None:
    """An upgrade with calls in flight: their state, keyed by the id alone, is adopted, not lost."""
    call = CallScript(call_id="c-in-flight", tenant="acme", start=h.clock.now())
    h.upload(call.staging_key, call.audio)
    await h.send(call.started(), call.disclosure())
    h.state[b"c-in-flight"] = h.state.pop(b"acme/c-in-flight")  # as the older version keyed it

    await h.send(call.stored(), call.ended())

    assert {"disclosure.verified", "recording.archived"} <= h.types(call.call_id), h.types(call.call_id)
    assert list(h.state) == [b"acme/c-in-flight"]


async def test_a_hold_an_older_version_wrote_under_the_bare_id_is_obeyed_for_its_tenant(h: Harness) -> None:
    from callvault.storage.holds import HOLDS_PREFIX, HoldRecord

    await both(h)
    older = HoldRecord(
        call_id=CALL_ID, tenant="beta", reason="older hold", placed_by="legal", placed_at=h.clock.now(),
        command_id=str(uuid.uuid4()),
    )  # fmt: skip
    h.s3.put_object(
        Bucket=h.settings.metadata_bucket, Key=f"{HOLDS_PREFIX}{CALL_ID}.json", Body=older.model_dump_json()
    )

    await h.advance(days=32)

    assert len(of(h, "acme", "recording.deleted")) == 1
    assert not of(h, "beta", "recording.deleted") and tenant_keys(h, h.settings.recordings_bucket, "beta")
    await h.command(hold(h, "release", None))  # found by its id: one tenant's hold
    await h.advance(minutes=5)
    assert len(of(h, "beta", "recording.deleted")) == 1
