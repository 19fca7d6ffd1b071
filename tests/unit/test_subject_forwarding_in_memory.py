"""Controller or processor, per client: a request on a processor tenant's calls is passed to the client
and carried out only on its instruction; on a controller tenant's, callvault answers it. Through the
worker's command handler in memory, and the replay of what it wrote."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from callvault.contract.commands import SubjectExecute
from callvault.rules.audit_replay import replay
from callvault.rules.client_policy import PolicyRefused
from callvault.rules.subject_requests import RequestStatus, is_overdue
from callvault.storage.subject_requests import get_request
from callvault.testing import Harness
from tests.unit.test_subject_identity_in_memory import filed, of_request, verified
from tests.unit.test_subjects_in_memory import archived_call, keys, new_number

TOLERANCE = timedelta(minutes=10)
CONTACT = "privacy@acme.example, ticket queue DPA-7"


@pytest.fixture
async def h() -> Any:
    async with Harness() as harness:
        yield harness


def request_rules(events: list[dict[str, Any]], as_of: Any) -> list[str]:
    """What the replay finds of the subject requests (their findings name no call)."""
    return [v.rule for v in replay(events, as_of, TOLERANCE).violations if not v.call_id]


def instruction(h: Harness, request_id: str) -> SubjectExecute:
    return SubjectExecute(
        event_id=uuid.uuid4(), requested_by="dpo@outsourcer", requested_at=h.clock.now(),
        reason="client ticket DPA-7-311", request_id=request_id, tenant="acme",
        instructed_by="acme privacy office, ticket DPA-7-311",
    )  # fmt: skip


async def test_a_processor_tenants_request_is_forwarded_then_carried_out_on_instruction(h: Harness) -> None:
    her = new_number()
    call = await archived_call(h, her)
    version = await h.set_role("acme", "processor", CONTACT)
    assert (version.role, version.contact) == ("processor", CONTACT)
    command = filed(h, "erase", her, identity_pending=False)
    rid = str(command.event_id)

    await h.command(command)

    assert [e["type"] for e in of_request(h, rid)] == ["subject.request_received", "subject.forwarded"]
    forwarded = of_request(h, rid)[1]
    assert forwarded["contact"] == CONTACT and forwarded["kind"] == "erase"
    assert keys(h, h.settings.recordings_bucket, call), "not erased: the client decides"
    record = get_request(h.s3, h.settings.metadata_bucket, "acme", rid)
    assert record is not None and record.status is RequestStatus.FORWARDED
    assert not is_overdue(record, h.clock.now() + timedelta(days=60)), "the deadline is the client's"
    as_of = h.clock.now() + timedelta(days=60)
    assert request_rules(h.events, as_of) == []
    (shown,) = replay(h.events, as_of, TOLERANCE).subject_requests
    assert shown["status"] == "forwarded" and shown["forwarded_to"] == CONTACT

    await h.command(command)  # redelivered: forwarded again, not carried out
    assert [e["type"] for e in of_request(h, rid)][-1] == "subject.forwarded"

    await h.advance(days=3)
    await h.command(instruction(h, rid))

    erased = of_request(h, rid)[-1]
    assert erased["type"] == "subject.erased" and erased["instructed_by"].startswith("acme privacy office")
    assert keys(h, h.settings.recordings_bucket, call) == []
    assert request_rules(h.events, h.clock.now()) == []

    # The same story with the answer not naming an instruction: carried out on callvault's own say.
    forged = [{**e, "instructed_by": None} if e is erased else e for e in h.events]
    assert request_rules(forged, h.clock.now()) == ["forwarded_executed_without_instruction"]


async def test_a_controller_tenants_request_is_answered_and_cannot_be_instructed(h: Harness) -> None:
    command = filed(h, "restrict", new_number(), identity_pending=False)
    await h.command(command)
    assert [e["type"] for e in of_request(h, str(command.event_id))][-1] == "subject.restricted"
    await h.command(instruction(h, str(command.event_id)))
    assert "was not forwarded to a client" in h.dead_letters[-1].error


async def test_a_request_received_before_the_tenant_became_a_processor_stays_callvaults(h: Harness) -> None:
    command = filed(h, "access", new_number(), identity_pending=True)
    await h.command(command)  # waits for its identity check, received while acme was a controller
    await h.advance(hours=1)
    await h.set_role("acme", "processor", CONTACT)
    await h.command(verified(h, str(command.event_id)))
    assert [e["type"] for e in of_request(h, str(command.event_id))][-1] == "subject.access_fulfilled"


async def test_a_processor_needs_a_contact_and_the_role_is_a_policy_version(h: Harness) -> None:
    with pytest.raises(PolicyRefused, match="give --contact"):
        await h.set_role("acme", "processor")
    await h.set_role("acme", "processor", CONTACT)
    changed = [e for e in h.events if e["type"] == "policy.changed"][-1]
    assert changed["policy"]["role"] == "processor" and changed["policy"]["contact"] == CONTACT
    later = await h.set_policy("acme", recording="P14D")  # a term change keeps the role
    assert (later.role, later.contact) == ("processor", CONTACT)
    back = await h.set_role("acme", "controller")
    assert back.role == "controller"
