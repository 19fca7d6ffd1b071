"""The replay's rules: each planted violation is found with its evidence; a clean story has none."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from callvault.contract.fields import format_rfc3339
from callvault.rules.audit_replay import replay

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
DUE = T0 + timedelta(days=31)
TOLERANCE = timedelta(minutes=5)


def _event(kind: str, at: datetime, call: str = "c1", **fields: Any) -> dict[str, Any]:
    return {"type": kind, "event_id": str(uuid.uuid4()), "call_id": call, "tenant": "acme",
            "occurred_at": format_rfc3339(at), **fields}  # fmt: skip


def _story(
    call: str = "c1", *, disclosed: bool = True, deleted_after: timedelta | None = timedelta(seconds=4)
):
    rec = str(uuid.uuid4())
    key = f"acme/2026/03/01/{call}.wav"
    events = []
    if disclosed:
        events.append(_event("disclosure.verified", T0, call, recording_event_id=rec,
                             played_at=format_rfc3339(T0 - timedelta(seconds=5)),
                             recording_started_at=format_rfc3339(T0)))  # fmt: skip
    events.append(_event("recording.archived", T0, call, recording_event_id=rec, object={"key": key},
                         recording_started_at=format_rfc3339(T0),
                         expires_at=format_rfc3339(DUE)))  # fmt: skip
    if deleted_after is not None:
        gone = DUE + deleted_after
        events.append(_event("recording.deleted", gone, call, object={"key": key}, due_at=format_rfc3339(DUE),
                             deleted_at=format_rfc3339(gone)))  # fmt: skip
    return events


def _rules(events: list[dict[str, Any]], as_of: datetime = DUE + timedelta(days=2)) -> list[str]:
    return [v.rule for v in replay(events, as_of, TOLERANCE).violations]


def test_a_clean_story_has_no_violation_and_duplicates_count_once() -> None:
    events = _story() + _story("c2")
    result = replay(events + events[:2], DUE + timedelta(days=2), TOLERANCE)
    assert result.violations == []
    assert result.duplicates == 2 and result.compliance_rate("acme") == 1.0


def test_an_archive_without_disclosure_is_found_with_its_evidence() -> None:
    events = _story(disclosed=False)
    result = replay(events, DUE + timedelta(days=2), TOLERANCE)
    [violation] = result.violations
    assert violation.rule == "archived_without_disclosure"
    assert violation.evidence == (events[0]["event_id"],)


def test_a_late_deletion_is_found() -> None:
    assert _rules(_story(deleted_after=timedelta(hours=2))) == ["late_deletion"]


def test_a_hold_over_the_whole_overdue_time_excuses_lateness() -> None:
    events = _story(deleted_after=timedelta(days=1))
    placed = _event("legal_hold.placed", DUE - timedelta(days=3))
    released = _event("legal_hold.released", DUE + timedelta(hours=23, minutes=58))
    assert _rules([*events[:2], placed, released, events[2]]) == []


def test_a_deletion_during_a_hold_is_found() -> None:
    events = _story()
    placed = _event("legal_hold.placed", DUE - timedelta(days=1))
    assert _rules([*events[:2], placed, events[2]]) == ["deleted_during_hold"]


def test_another_tenants_hold_on_the_same_id_excuses_nothing() -> None:
    """A call is (tenant, call_id): beta's hold on its c1 says nothing of acme's c1."""
    events = _story(deleted_after=None)
    beta_hold = {**_event("legal_hold.placed", DUE - timedelta(days=1)), "tenant": "beta"}
    assert _rules([*events, beta_hold]) == ["not_deleted"]


def test_an_object_left_past_due_is_found_unless_held() -> None:
    events = _story(deleted_after=None)
    assert _rules(events) == ["not_deleted"]
    assert _rules([*events, _event("legal_hold.placed", DUE - timedelta(days=1))]) == []


def test_an_access_after_deletion_is_found() -> None:
    events = _story()
    access = _event(
        "recording.accessed", DUE + timedelta(days=1), accessed_by="coach", role="qa", purpose="qa"
    )
    assert _rules([*events, access]) == ["access_after_deletion"]


def test_reading_metadata_after_the_recording_is_deleted_is_allowed() -> None:
    events = _story()
    read = _event(
        "recording.accessed", DUE + timedelta(days=1), accessed_by="coach", role="qa", purpose="qa",
        what="metadata",
    )  # fmt: skip
    assert _rules([*events, read]) == []


def test_an_access_by_another_tenant_or_an_unentitled_role_is_found() -> None:
    events = _story(deleted_after=None)[:2]
    ok = {"accessed_by": "coach", "purpose": "qa", "granted_tenants": ["acme"]}
    before = DUE - timedelta(days=1)
    fine = _event("recording.accessed", before, role="qa", **ok)
    other = _event("recording.accessed", before, role="qa", **{**ok, "granted_tenants": ["globex"]})
    listened = _event("recording.accessed", before, role="auditor", what="audio", **ok)
    found = replay([*events, fine, other, listened], as_of=before, tolerance=timedelta(minutes=10))
    outside = [v for v in found.violations if v.rule == "access_outside_rights"]
    assert [v.evidence for v in outside] == [(other["event_id"],), (listened["event_id"],)]
    assert "globex" in outside[0].detail and "auditor" in outside[1].detail


def _policy_changed(version: int, effective: datetime, recording: str) -> dict[str, Any]:
    return {
        "type": "policy.changed", "event_id": str(uuid.uuid4()), "tenant": "acme",
        "occurred_at": format_rfc3339(effective), "version": version, "changes": {"recording": recording},
        "changed_by": "dpo", "reason": "contract", "effective_at": format_rfc3339(effective),
        "policy": {"tenant_rules": {"terms": {"recording": recording}}, "queues": {}},
    }  # fmt: skip


def _policy_rules(events: list[dict[str, Any]], as_of: datetime) -> list[str]:
    from callvault.settings import Settings

    return [v.rule for v in replay(events, as_of, TOLERANCE, Settings().policy_defaults).violations]


def test_an_object_deleted_late_under_a_shortened_policy_is_found() -> None:
    """Archived under the defaults (due in a month); a change on day 10 to 7 days makes it due then."""
    change_at = T0 + timedelta(days=10)
    events = _story(deleted_after=None)
    shortened = _policy_changed(1, change_at, "P7D")
    gone = change_at + timedelta(days=2)  # two days after the change made it due
    deletion = _event("recording.deleted", gone, object={"key": "acme/2026/03/01/c1.wav"},
                      due_at=format_rfc3339(DUE), deleted_at=format_rfc3339(gone))  # fmt: skip

    assert _policy_rules([*events, shortened, deletion], DUE + timedelta(days=2)) == ["late_deletion"]
    on_time = {**deletion, "deleted_at": format_rfc3339(change_at + timedelta(seconds=30))}
    assert _policy_rules([*events, shortened, on_time], DUE + timedelta(days=2)) == []


def test_an_object_deleted_early_under_its_own_policy_is_found() -> None:
    v1 = _policy_changed(1, T0 - timedelta(days=1), "P14D")
    events = _story(deleted_after=None)
    events[1] = {**events[1], "policy_version": 1, "expires_at": format_rfc3339(T0 + timedelta(days=14))}
    gone = T0 + timedelta(days=9)
    deletion = _event("recording.deleted", gone, object={"key": "acme/2026/03/01/c1.wav"},
                      due_at=format_rfc3339(T0 + timedelta(days=14)), deleted_at=format_rfc3339(gone),
                      reason="retention_elapsed")  # fmt: skip

    assert _policy_rules([v1, *events, deletion], T0 + timedelta(days=20)) == ["deleted_early"]


def test_an_archive_naming_a_policy_version_the_log_never_stated_is_found() -> None:
    events = _story()
    events[1] = {**events[1], "policy_version": 4}
    assert _policy_rules(events, DUE + timedelta(days=2)) == ["unknown_policy_version"]
