"""Subject requests' deadlines, the export's view of a call, and the replay of requests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from callvault.contract.fields import format_rfc3339
from callvault.rules.audit_replay import replay
from callvault.rules.subject_export import subject_view
from callvault.rules.subject_requests import (
    ExtensionRefused,
    RequestRecord,
    RequestStatus,
    days_left,
    due_at,
    extend,
    is_overdue,
    open_requests,
)

BRUSSELS = ZoneInfo("Europe/Brussels")


def record(received: datetime, **fields: Any) -> RequestRecord:
    return RequestRecord(
        request_id=fields.pop("request_id", str(uuid.uuid4())),
        kind="erase",
        subject="p" * 64,
        tenant="acme",
        received_at=received,
        due_at=due_at(received, BRUSSELS),
        requested_by="dpo",
        reason="letter",
        **fields,
    )


def test_the_deadline_is_one_calendar_month_clamped_to_the_months_end() -> None:
    received = datetime(2027, 1, 31, 9, 0, tzinfo=UTC)  # 10:00 in Brussels
    assert due_at(received, BRUSSELS) == datetime(2027, 2, 28, 9, 0, tzinfo=UTC)
    # Across the change to summer time the local hour is kept.
    assert due_at(datetime(2027, 3, 15, 9, 0, tzinfo=UTC), BRUSSELS) == datetime(
        2027, 4, 15, 8, 0, tzinfo=UTC
    )


def test_an_extension_gives_three_months_from_receipt_once() -> None:
    r = record(datetime(2026, 11, 30, 12, 0, tzinfo=UTC))
    longer = extend(r, "numerous requests", "dpo", BRUSSELS)
    assert longer.due_at == datetime(2027, 2, 28, 12, 0, tzinfo=UTC)
    assert longer.extended_reason == "numerous requests" and longer.extended_by == "dpo"
    with pytest.raises(ExtensionRefused, match="already extended"):
        extend(longer, "again", "dpo", BRUSSELS)
    with pytest.raises(ExtensionRefused, match="already fulfilled"):
        extend(r.model_copy(update={"status": RequestStatus.FULFILLED}), "late", "dpo", BRUSSELS)


def test_open_requests_nearest_deadline_first_and_overdue_ones_say_so() -> None:
    now = datetime(2026, 12, 20, tzinfo=UTC)
    old = record(datetime(2026, 11, 1, tzinfo=UTC))
    new = record(datetime(2026, 12, 1, tzinfo=UTC))
    done = record(datetime(2026, 10, 1, tzinfo=UTC), status=RequestStatus.FULFILLED)
    assert open_requests([new, done, old]) == [old, new]
    assert is_overdue(old, now) and not is_overdue(new, now) and not is_overdue(done, now)
    assert days_left(old, now) == pytest.approx(-19, abs=0.1)
    assert days_left(new, now) == pytest.approx(12, abs=0.1)


def test_the_export_shows_the_subjects_side_of_a_call_and_nobody_elses_pseudonym() -> None:
    doc = {"call_id": "c1", "participants": {"caller": "p" * 64, "callee": "q" * 64}, "agent_id": "a7"}
    view = subject_view(doc, "p" * 64)
    assert view["participants"] == {"subject_was": ["caller"]} and view["agent_id"] == "a7"
    assert "q" * 64 not in str(view)
    assert doc["participants"]["callee"] == "q" * 64, "the archived document is not changed"


# -- the replay ---------------------------------------------------------------------------------

RECEIVED = datetime(2026, 9, 1, 10, 0, tzinfo=UTC)
DUE = due_at(RECEIVED, BRUSSELS)


def _req(type_: str, at: datetime, request_id: str, **fields: Any) -> dict[str, Any]:
    return {"type": type_, "event_id": str(uuid.uuid4()), "subject": "p" * 64, "tenant": "acme",
            "request_id": request_id, "occurred_at": format_rfc3339(at), **fields}  # fmt: skip


def _received(request_id: str) -> dict[str, Any]:
    return _req("subject.request_received", RECEIVED, request_id, kind="erase",
                received_at=format_rfc3339(RECEIVED), due_at=format_rfc3339(DUE))  # fmt: skip


def test_replay_flags_an_unanswered_request_past_its_deadline_and_a_late_answer() -> None:
    events = [
        _received("open"),
        _received("late"),
        _req("subject.erased", DUE + timedelta(days=2), "late"),
        _received("on-time"),
        _req("subject.erased", RECEIVED + timedelta(minutes=1), "on-time"),
        _received("extended"),
        _req(
            "subject.request_extended", RECEIVED, "extended", due_at=format_rfc3339(DUE + timedelta(days=59))
        ),
        # The subject told of it at once (without this, `extension_not_notified`: test_subject_identity...).
        _req("subject.extension_notified", RECEIVED, "extended", notified_on=format_rfc3339(RECEIVED)),
    ]
    result = replay(events, as_of=DUE + timedelta(days=10), tolerance=timedelta(minutes=5))
    rules = sorted((v.rule, v.detail.split()[2]) for v in result.violations)
    assert rules == [("subject_request_late", "late"), ("subject_request_overdue", "open")]
    status = {r["request_id"]: r["status"] for r in result.subject_requests}
    assert status == {"open": "overdue", "late": "late", "on-time": "fulfilled", "extended": "open"}
    extended = next(r for r in result.subject_requests if r["request_id"] == "extended")
    assert extended["days_left"] == pytest.approx(49, abs=0.1)


def test_an_erasure_before_the_retention_date_is_not_an_early_deletion() -> None:
    start = datetime(2026, 9, 1, tzinfo=UTC)
    due = start + timedelta(days=30)

    def story(call: str, reason: str) -> list[dict[str, Any]]:
        key = f"acme/2026/09/01/{call}.json"
        base = {"call_id": call, "tenant": "acme"}
        return [
            {**base, "type": "metadata.archived", "event_id": str(uuid.uuid4()), "object": {"key": key},
             "occurred_at": format_rfc3339(start), "expires_at": format_rfc3339(due)},
            {**base, "type": "metadata.deleted", "event_id": str(uuid.uuid4()), "object": {"key": key},
             "occurred_at": format_rfc3339(start + timedelta(days=3)), "reason": reason,
             "deleted_at": format_rfc3339(start + timedelta(days=3))},
        ]  # fmt: skip

    result = replay(
        story("erased", "erasure_request") + story("purged", "retention_elapsed"),
        as_of=due + timedelta(days=1),
        tolerance=timedelta(minutes=5),
    )
    assert [(v.rule, v.call_id) for v in result.violations] == [("deleted_early", "purged")]
