"""A contract's end in memory: a client's data returned to its own bucket and erased, holds excepted."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest

from callvault.rules.audit_replay import replay
from callvault.storage.client import make_s3_client
from callvault.storage.holds import HoldRecord, put_hold
from callvault.storage.subject_index import INDEX_PREFIX
from callvault.storage.tenant_keys import ensure_tenant_key, make_kms_client, tenant_key
from callvault.stream.offboarding import Offboarding, OffboardingRefused, enable
from callvault.testing import Harness
from tests.integration.helpers import CallScript, indexed_subjects
from tests.unit.test_subjects_in_memory import new_number

CLIENT_BUCKET = "leaving-client-own"


@pytest.fixture
async def h() -> Any:
    async with Harness() as harness:
        harness.s3.create_bucket(
            Bucket=CLIENT_BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        yield harness


async def call_of(h: Harness, tenant: str) -> CallScript:
    call = CallScript(
        call_id=f"c-{uuid.uuid4().hex[:8]}", tenant=tenant, start=h.clock.now(), caller=new_number()
    )
    h.upload(call.staging_key, call.audio)
    await h.send(call.started(), call.disclosure(), call.stored(), call.ended())
    return call


def job(h: Harness) -> Offboarding:
    return Offboarding(h.settings, h._runner, h._emit, h.clock, dest=h.s3, settle_s=0)


def of_tenant(h: Harness, tenant: str) -> list[str]:
    keys = [k for b in (h.settings.recordings_bucket, h.settings.metadata_bucket) for k in h.objects(b)]
    return [k for k in keys if k.startswith(f"{tenant}/") or k.startswith(f"{INDEX_PREFIX}{tenant}/")]


async def test_a_tenants_data_is_returned_then_erased_but_what_a_hold_keeps(h: Harness) -> None:
    leaving = [await call_of(h, "leaving") for _ in range(3)]
    staying = await call_of(h, "staying")
    held = leaving[0]
    put_hold(h.s3, h.settings.metadata_bucket, HoldRecord(
        call_id=held.call_id, tenant="leaving", reason="dispute", placed_by="legal", placed_at=h.clock.now(),
        command_id=str(uuid.uuid4()),
    ))  # fmt: skip
    before_staying = of_tenant(h, "staying")

    outcome = await job(h).run(
        "leaving",
        reason="contract 2024-3 ended",
        by="dpo",
        return_to=f"s3://{CLIENT_BUCKET}/export",
        erase=True,
    )

    manifest = json.loads(h.s3.get_object(Bucket=CLIENT_BUCKET, Key="export/manifest.json")["Body"].read())
    paths = {f["path"] for f in manifest["files"]}
    assert len(paths) == 6 and {p.split("/")[0] for p in paths} == {"recording", "metadata"}
    for f in manifest["files"]:
        body = h.s3.get_object(Bucket=CLIENT_BUCKET, Key=f"export/{f['path']}")["Body"].read()
        assert hashlib.sha256(body).hexdigest() == f["sha256"], f["path"]
    listed = {o["Key"] for o in h.s3.list_objects_v2(Bucket=CLIENT_BUCKET)["Contents"]}
    assert listed == {f"export/{p}" for p in paths} | {"export/manifest.json"}, "exactly the tenant's data"

    left = of_tenant(h, "leaving")
    assert left and all(held.call_id in k for k in left), left
    assert len(indexed_subjects(left, held.call_id)) == 3, "the held call is still found by its subjects"
    assert of_tenant(h, "staying") == before_staying
    assert outcome.held_calls == [held.call_id]
    (returned,) = h.lifecycle(type_="tenant.returned")
    assert (
        returned["counts"] == {"recording": 3, "metadata": 3}
        and returned["manifest_sha256"] == outcome.manifest_sha256
    )
    (erased,) = h.lifecycle(type_="tenant.erased")
    assert erased["held_calls"] == [held.call_id] and erased["counts"]["recording"] == 2
    for call in leaving[1:]:
        (proof,) = h.lifecycle(call.call_id, "recording.deleted")
        assert proof["reason"] == "contract_end"
    assert "recording.deleted" not in h.types(staying.call_id)

    # The auditor's replay shows the contract end, and finds nothing wrong with the erasure.
    result = replay(h.events, h.clock.now(), timedelta(minutes=10), h.settings.policy_defaults)
    assert [e["type"] for e in result.contract_ends] == [
        "tenant.returned",
        "tenant.erased",
        "tenant.key_destroyed",
    ]
    assert not [v for v in result.violations if v.tenant == "leaving"], result.violations


async def test_an_offboarded_tenants_new_events_are_dead_letters_until_it_is_enabled(h: Harness) -> None:
    await call_of(h, "leaving")
    await job(h).run("leaving", reason="contract ended", by="dpo", return_to=None, erase=True)
    await h.advance(seconds=1)

    late = await call_of(h, "leaving")
    assert "recording.archived" not in h.types(late.call_id)
    assert h.dead_letters and all("offboarded" in d.error for d in h.dead_letters)
    assert "callvault tenant enable" in h.dead_letters[0].error

    await enable(h._runner, h.settings, h._emit, h.clock, "leaving", "dpo", "a new contract")
    await h.advance(seconds=1)
    again = await call_of(h, "leaving")
    assert "recording.archived" in h.types(again.call_id)
    assert h.lifecycle(type_="tenant.enabled")


async def test_an_offboarding_says_what_to_do(h: Harness) -> None:
    with pytest.raises(OffboardingRefused, match="--return-to s3://..., --erase, or both"):
        await job(h).run("leaving", reason="r", by="dpo", return_to=None, erase=False)
    with pytest.raises(OffboardingRefused, match="is not s3://bucket/prefix"):
        await job(h).run("leaving", reason="r", by="dpo", return_to="/tmp/x", erase=False)
    own = h.settings.recordings_bucket
    with pytest.raises(OffboardingRefused, match=f"s3://{own} is callvault's own bucket"):
        await job(h).run("leaving", reason="r", by="dpo", return_to=f"s3://{own}/x", erase=True)
    assert not h.lifecycle(type_="recording.deleted"), "refused before anything was touched"


async def test_callvaults_own_buckets_are_refused_as_a_destination_whatever_the_endpoint(h: Harness) -> None:
    """Issue 33, item 5: on main, a destination client of another endpoint (here another region of the
    same store) passed the guard and the returned data landed in callvault's metadata bucket."""
    elsewhere = make_s3_client(h.settings.model_copy(update={"s3_region": "eu-central-1"}))
    assert elsewhere.meta.endpoint_url != h.s3.meta.endpoint_url
    offboarding = Offboarding(h.settings, h._runner, h._emit, h.clock, dest=elsewhere, settle_s=0)
    for bucket in (h.settings.metadata_bucket, h.settings.staging_bucket):
        with pytest.raises(OffboardingRefused, match=f"s3://{bucket} is callvault's own bucket"):
            await offboarding.run("leaving", reason="r", by="dpo", return_to=f"s3://{bucket}/x", erase=False)
    with pytest.raises(OffboardingRefused, match="does not exist in its store"):
        await offboarding.run("leaving", reason="r", by="dpo", return_to="s3://nobody-made-it/x", erase=False)
    assert not h.lifecycle(type_="tenant.returned")


async def test_a_call_archived_while_workers_learn_the_tenant_is_closed_is_erased_too(h: Harness) -> None:
    """Issue 33, item 5: on main, what a worker archived between the erasure's listing and its next read
    of the registries survived `tenant.erased`. Now a second listing, once every worker has read that
    the tenant is closed, erases it, and the counts include it."""
    await call_of(h, "leaving")
    waiting = asyncio.Event()

    def progress(step: str, done: int, total: int) -> None:
        if step.startswith("waiting") and done == 0:
            waiting.set()

    offboarding = Offboarding(
        h.settings, h._runner, h._emit, h.clock, dest=h.s3, progress=progress, settle_s=0.3
    )
    running = asyncio.create_task(
        offboarding.run("leaving", reason="contract ended", by="dpo", return_to=None, erase=True)
    )
    await asyncio.wait_for(waiting.wait(), 10)
    late = await call_of(h, "leaving")  # this worker has not read the registries since
    assert "recording.archived" in h.types(late.call_id)
    await asyncio.wait_for(running, 10)
    assert of_tenant(h, "leaving") == []
    (erased,) = h.lifecycle(type_="tenant.erased")
    assert erased["counts"]["recording"] == 2 and erased["counts"]["metadata"] == 2
    assert not [k for k in h.objects(h.settings.staging_bucket) if k.startswith("leaving/")]


async def test_the_clients_key_is_destroyed_after_its_erasure_and_the_report_says_so(h: Harness) -> None:
    """Issue 29, item 4 (crypto-shredding): the key goes once the data has; another client's key stays;
    a held call's objects are wrapped under the hold key first, and stay readable."""
    kms = make_kms_client(h.settings)
    leaving, _ = ensure_tenant_key(kms, "leaving")
    ensure_tenant_key(kms, "staying")
    await call_of(h, "leaving")
    shredder = Offboarding(h.settings, h._runner, h._emit, h.clock, dest=h.s3, settle_s=0, kms=kms)
    outcome = await shredder.run("leaving", reason="contract ended", by="dpo", return_to=None, erase=True)
    (destroyed,) = h.lifecycle(type_="tenant.key_destroyed")
    assert destroyed["key_id"] == leaving and destroyed["tenant"] == "leaving"
    assert outcome.key is not None and "destroyed by the KMS on" in outcome.key
    assert tenant_key(kms, "leaving")["KeyState"] == "PendingDeletion"  # type: ignore[index]
    assert tenant_key(kms, "staying")["KeyState"] == "Enabled"  # type: ignore[index]
    result = replay(h.lifecycle(), h.clock.now(), timedelta(minutes=5), h.settings.policy_defaults)
    (ended,) = [e for e in result.contract_ends if e["type"] == "tenant.key_destroyed"]
    assert ended["key_id"] == leaving and ended["deletion_date"]

    held = await call_of(h, "staying")
    put_hold(h.s3, h.settings.metadata_bucket, HoldRecord(
        call_id=held.call_id, tenant="staying", reason="dispute", placed_by="legal", placed_at=h.clock.now(),
        command_id=str(uuid.uuid4()),
    ))  # fmt: skip
    outcome = await shredder.run("staying", reason="contract ended", by="dpo", return_to=None, erase=True)
    assert (
        outcome.key is not None and "(2 object(s) of 1 held call(s) kept under the hold key)" in outcome.key
    )
    assert tenant_key(kms, "staying")["KeyState"] == "PendingDeletion"  # type: ignore[index]
    assert len(h.lifecycle(type_="tenant.key_destroyed")) == 2
    assert h.read(
        h.settings.recordings_bucket, h.lifecycle(held.call_id, "recording.archived")[0]["object"]["key"]
    )
