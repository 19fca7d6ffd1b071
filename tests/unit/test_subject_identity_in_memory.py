"""The identity-check clock: a request filed before the requester's identity was checked waits, its
month running from the check; an extension is proven told to the subject. Through the worker's command
handler in memory, and the replay of what it wrote."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from callvault.contract.commands import SubjectExtend, SubjectVerifyIdentity
from callvault.rules.audit_replay import replay
from callvault.rules.subject_requests import new_record
from callvault.storage.subject_requests import get_request, put_request
from callvault.stream.subject_client import subject_command
from callvault.testing import Harness
from tests.unit.test_subjects_in_memory import archived_call, keys, new_number

TOLERANCE = timedelta(minutes=10)


@pytest.fixture
async def h() -> Any:
    async with Harness() as harness:
        yield harness


def filed(h: Harness, kind: str, number: str, *, identity_pending: bool) -> Any:
    return subject_command(
        h.settings, kind, number, "acme", command_id=uuid.uuid4(), requested_by="dpo@acme",
        reason=f"{kind} request by letter", verified_by=None, received_at=None, now=h.clock.now(),
        identity_pending=identity_pending,
    )  # fmt: skip


def verified(h: Harness, request_id: str, by: str = "front desk") -> SubjectVerifyIdentity:
    return SubjectVerifyIdentity(
        event_id=uuid.uuid4(), requested_by="dpo@acme", requested_at=h.clock.now(), reason="passport seen",
        request_id=request_id, tenant="acme", verified_by=by,
    )  # fmt: skip


def of_request(h: Harness, request_id: str) -> list[dict[str, Any]]:
    return [e for e in h.events if e.get("request_id") == request_id]


def rules(h: Harness, as_of: datetime, events: list[dict[str, Any]] | None = None) -> list[str]:
    found = replay(h.events if events is None else events, as_of, TOLERANCE).violations
    return [v.rule for v in found]


async def test_a_request_with_its_identity_pending_waits_and_its_month_runs_from_the_check(
    h: Harness,
) -> None:
    her = new_number()
    call = await archived_call(h, her)
    command = filed(h, "erase", her, identity_pending=True)
    received = h.clock.now()
    rid = str(command.event_id)

    await h.command(command)

    (got,) = of_request(h, rid)
    assert got["type"] == "subject.request_received" and got["identity_pending"] is True
    assert got["due_at"] == "2026-04-02T08:00:00Z", "the check is due a month after receipt (in Brussels)"
    assert keys(h, h.settings.recordings_bucket, call), "nothing is erased before the identity is checked"

    await h.advance(days=20)
    checked_at = h.clock.now()
    await h.command(verified(h, rid))

    told = [e["type"] for e in of_request(h, rid)]
    assert told == ["subject.request_received", "subject.identity_verified", "subject.erased"]
    check = of_request(h, rid)[1]
    assert check["verified_by"] == "front desk" and check["due_at"] == "2026-04-22T08:00:00Z"
    assert keys(h, h.settings.recordings_bucket, call) == []
    record = get_request(h.s3, h.settings.metadata_bucket, "acme", rid)
    assert (
        record is not None
        and record.identity_verified_at == checked_at
        and record.verified_by == "front desk"
    )

    # The replay counts the month from the check: unanswered 35 days after receipt is not overdue...
    unanswered = [e for e in h.events if e.get("type") != "subject.erased"]
    assert "subject_request_overdue" not in rules(h, received + timedelta(days=35), unanswered)
    # ... and 31 days after the check it is, by that deadline.
    late = replay(unanswered, checked_at + timedelta(days=31), TOLERANCE).violations
    (overdue,) = [v for v in late if v.rule == "subject_request_overdue"]
    assert "2026-04-22" in overdue.detail
    assert rules(h, checked_at + timedelta(days=31)) == [], "answered at once after the check"


async def test_an_identity_check_left_lying_is_overdue_and_a_second_check_is_refused(h: Harness) -> None:
    command = filed(h, "access", new_number(), identity_pending=True)
    rid = str(command.event_id)
    await h.command(command)
    record = get_request(h.s3, h.settings.metadata_bucket, "acme", rid)
    assert record is not None and record.awaiting_identity

    assert rules(h, h.clock.now() + timedelta(days=30)) == []
    assert rules(h, h.clock.now() + timedelta(days=32)) == ["identity_check_overdue"]

    await h.command(verified(h, rid))
    assert [e["type"] for e in of_request(h, rid)][-1] == "subject.access_fulfilled"
    before = len(h.dead_letters)
    await h.command(verified(h, rid, by="someone else"))
    assert len(h.dead_letters) == before + 1
    assert "was verified already" in h.dead_letters[-1].error


async def test_a_request_filed_without_a_pending_check_cannot_be_checked_later(h: Harness) -> None:
    command = filed(h, "restrict", new_number(), identity_pending=False)
    await h.command(command)
    await h.command(verified(h, str(command.event_id)))
    assert "was not filed with its identity pending" in h.dead_letters[-1].error


async def test_an_extension_says_when_the_subject_was_told_and_the_replay_flags_one_that_does_not(
    h: Harness,
) -> None:
    command = filed(h, "access", new_number(), identity_pending=False)
    rid = str(command.event_id)
    # Recorded and received, not yet carried out (as while a worker is busy): an open request to extend.
    put_request(
        h.s3, h.settings.metadata_bucket, new_record(command, h.settings.zone, h.settings.identity_check)
    )
    await h.advance(days=10)
    told = h.clock.now() - timedelta(days=1)
    extension = SubjectExtend(
        event_id=uuid.uuid4(), requested_by="dpo@acme", requested_at=h.clock.now(),
        reason="hundreds of calls to gather", request_id=rid, tenant="acme", notified_on=told,
    )  # fmt: skip
    await h.command(extension)

    kinds = [e["type"] for e in of_request(h, rid)]
    assert kinds == ["subject.request_extended", "subject.extension_notified"]
    notice = of_request(h, rid)[1]
    assert notice["due_at"] == "2026-06-02T08:00:00Z" and notice["notified_on"].startswith("2026-03-11")

    received = {
        "type": "subject.request_received", "event_id": str(uuid.uuid4()), "request_id": rid,
        "tenant": "acme", "subject": command.subject, "kind": "access", "occurred_at": "2026-03-02T09:00:00Z",
        "received_at": "2026-03-02T09:00:00Z", "due_at": "2026-04-02T08:00:00Z",
    }  # fmt: skip
    as_of = h.clock.now()
    assert rules(h, as_of, [received, *h.events]) == []
    silent = [e for e in h.events if e["type"] != "subject.extension_notified"]
    assert rules(h, as_of, [received, *silent]) == ["extension_not_notified"]
    late_notice = [{**e, "notified_on": "2026-04-10T09:00:00Z"} if e is notice else e for e in h.events]
    assert rules(h, as_of, [received, *late_notice]) == ["extension_not_notified"], "told after the month"
