"""Data-subject requests through the worker's command handler in memory: erasure, holds, objection.

Moved from tests/integration/test_subjects.py, where what needs the wiring
stays: requests filed through the commands topic and answered, the API's
restriction, exports read from the store, deadlines in the audit report, the
command line, and no raw number in any topic, log or object.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime
from typing import Any

import pytest

from callvault.contract.fields import format_rfc3339
from callvault.rules.pseudonym import pseudonymize
from callvault.storage.subject_index import INDEX_PREFIX
from callvault.stream.subject_client import subject_command
from callvault.testing import Harness
from tests.integration.helpers import CALLEE, CallScript


@pytest.fixture
async def h() -> Any:
    async with Harness() as harness:
        yield harness


def new_number() -> str:
    return f"+32470{random.randrange(10**6):06d}"


def pseudonym(h: Harness, number: str, tenant: str = "acme") -> str:
    return pseudonymize(h.settings.pseudonym_key.get_secret_value().encode(), tenant, number)


async def archived_call(h: Harness, caller: str, tenant: str = "acme") -> CallScript:
    call = CallScript(call_id=f"c-{uuid.uuid4().hex[:10]}", tenant=tenant, caller=caller, start=h.clock.now())
    h.upload(call.staging_key, call.audio)
    await h.send(call.started(), call.disclosure(), call.stored(), call.ended())
    assert {"recording.archived", "metadata.archived"} <= h.types(call.call_id)
    return call


async def ask(h: Harness, kind: str, number: str, tenant: str = "acme") -> dict[str, Any]:
    """File the request as the DPO would; the answer is the event it ends with."""
    command = subject_command(
        h.settings, kind, number, tenant, command_id=uuid.uuid4(), requested_by="dpo@acme",
        reason=f"{kind} request by e-mail", verified_by="front desk", received_at=None, now=h.clock.now(),
    )  # fmt: skip
    before = len(h.events)
    await h.command(command)
    told = [e for e in h.events[before:] if e["type"].startswith("subject.")]
    assert told[0]["type"] == "subject.request_received", told
    return told[-1]


def keys(h: Harness, bucket: str, call: CallScript) -> list[str]:
    return [k for k in h.objects(bucket) if call.call_id in k]


async def test_erase_removes_everything_of_that_subject_and_nothing_of_anyone_else(h: Harness) -> None:
    her, him = new_number(), new_number()
    hers = [await archived_call(h, her) for _ in range(2)]
    his = await archived_call(h, him)
    elsewhere = await archived_call(h, her, tenant="globex")  # another client: another pseudonym

    answer = await ask(h, "erase", her)

    assert answer["type"] == "subject.erased" and answer["subject"] == pseudonym(h, her)
    assert (answer["calls"], answer["recordings"], answer["metadata"]) == (2, 2, 2)
    assert answer["held_calls"] == []
    for call in hers:
        assert keys(h, h.settings.recordings_bucket, call) == [], "a version or marker is left"
        assert keys(h, h.settings.metadata_bucket, call) == []
        for kind in ("recording.deleted", "metadata.deleted"):
            (proof,) = h.lifecycle(call.call_id, kind)
            assert proof["reason"] == "erasure_request"
    for call in (his, elsewhere):
        assert keys(h, h.settings.recordings_bucket, call) and "recording.deleted" not in h.types(
            call.call_id
        )
    index = [k for k in h.objects(h.settings.metadata_bucket) if k.startswith(INDEX_PREFIX)]
    assert not [k for k in index if any(c.call_id in k for c in hers)], "no index entry outlives its data"
    assert any(his.call_id in k for k in index) and any(elsewhere.call_id in k for k in index)
    callee = pseudonym(h, CALLEE)  # the centre's own line is indexed too, for his call only now
    assert any(his.call_id in k and callee in k for k in index)


async def test_a_held_call_is_reported_and_kept(h: Harness) -> None:
    number = new_number()
    kept, gone = await archived_call(h, number), await archived_call(h, number)
    await h.command(
        {
            "type": "legal_hold.place", "event_id": str(uuid.uuid4()), "call_id": kept.call_id,
            "requested_by": "legal@acme", "requested_at": format_rfc3339(h.clock.now()),
            "reason": "dispute 2026-44",
        }
    )  # fmt: skip

    answer = await ask(h, "erase", number)

    assert answer["held_calls"] == [kept.call_id]
    assert (answer["calls"], answer["recordings"], answer["metadata"]) == (1, 1, 1)
    assert keys(h, h.settings.recordings_bucket, kept) and keys(h, h.settings.metadata_bucket, kept)
    assert keys(h, h.settings.metadata_bucket, gone) == []


async def test_an_objecting_subjects_recordings_are_erased_and_the_next_one_rejected(h: Harness) -> None:
    number = new_number()
    before = await archived_call(h, number)

    answer = await ask(h, "object", number)

    assert answer["type"] == "subject.objected"
    assert (answer["calls"], answer["recordings"], answer["metadata"]) == (1, 1, 0)
    assert keys(h, h.settings.recordings_bucket, before) == []
    assert keys(h, h.settings.metadata_bucket, before), "an objection is to recording, not to call records"
    (proof,) = h.lifecycle(before.call_id, "recording.deleted")
    assert proof["reason"] == "objection"

    after = CallScript(call_id="c-after-objection", caller=number, start=h.clock.now())
    h.upload(after.staging_key, after.audio)
    await h.send(after.started(), after.disclosure(), after.stored(), after.ended())
    (rejected,) = h.lifecycle(after.call_id, "recording.rejected")
    assert rejected["reason"] == "objected" and rejected["source_deleted"] is True
    assert "recording.archived" not in h.types(after.call_id)
    await archived_call(h, new_number())  # someone else's call goes on being archived


async def test_an_erasure_a_month_on_finds_the_metadata_left_and_proves_it_once(h: Harness) -> None:
    number = new_number()
    call = await archived_call(h, number)
    await h.advance(days=31)  # the recording's month is up: the purger took it
    (purged,) = h.lifecycle(call.call_id, "recording.deleted")
    assert purged["reason"] == "retention_elapsed"

    answer = await ask(h, "erase", number)

    assert (answer["calls"], answer["recordings"], answer["metadata"]) == (1, 0, 1)
    assert len(h.lifecycle(call.call_id, "recording.deleted")) == 1, "a deletion is proven once"
    (erased,) = h.lifecycle(call.call_id, "metadata.deleted")
    assert erased["reason"] == "erasure_request"
    assert (
        datetime.fromisoformat(erased["deleted_at"]) == h.clock.now()
    )  # the harness's clock, not the wall's
