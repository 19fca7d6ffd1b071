"""A replay split by partition and merged gives the report one process gives (issue 18, item 1).

A property over generated logs with planted violations: calls of several
tenants (archived with or without a disclosure, deleted on time, late, early
or never, held, accessed by the right and the wrong roles, from sites a policy
allows or not), policy changes keyed by tenant, subject requests keyed by
subject, repeats and forged events under a real id. The log is split the way
`lifecycle` is (by its key), each share folded on its own (on disk, as
`audit.partitioned` does, with a tiny memory allowance so stories really go to
disk and come back), checked against the joined policy history, and merged.
"""

from __future__ import annotations

import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callvault.audit.spill import SpilledSeen, SpilledStories, first_copies_elsewhere
from callvault.contract.fields import format_rfc3339
from callvault.rules.audit_replay import (
    ReplayResult,
    canonical,
    check_calls,
    check_requests,
    fold,
    merge_requests,
    merge_results,
    policy_history,
    replay,
)
from callvault.settings import Settings

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
AS_OF = T0 + timedelta(days=70)
TOLERANCE = timedelta(minutes=10)
DEFAULTS = Settings().policy_defaults  # the controller's own terms: a month, six months
TENANTS = ("acme", "globex", "initech")


def _ev(type_: str, at: datetime, tenant: str, call: str | None = None, **fields: Any) -> dict[str, Any]:
    event = {"type": type_, "event_id": str(uuid.uuid4()), "tenant": tenant,
             "occurred_at": format_rfc3339(at), **fields}  # fmt: skip
    if call is not None:
        event["call_id"] = call
    return event


call_plans = st.fixed_dictionaries(
    {
        "tenant": st.sampled_from(TENANTS),
        "disclosed": st.booleans(),
        "late_disclosure": st.booleans(),
        "deletion": st.sampled_from(["on_time", "late", "early", "never"]),
        "held": st.booleans(),
        "access": st.sampled_from(["none", "qa", "auditor_audio", "other_tenant", "from_morocco"]),
        "offset_h": st.integers(0, 48),
        "version": st.sampled_from([None, 1, 7]),
    }
)


def _call_events(n: int, plan: dict[str, Any]) -> list[dict[str, Any]]:
    tenant, call = plan["tenant"], f"c-{n}"
    start = T0 + timedelta(hours=plan["offset_h"])
    due = start + timedelta(days=31)
    rec, key = str(uuid.uuid4()), f"{tenant}/2026/03/01/{call}.wav"
    played = start + timedelta(seconds=9 if plan["late_disclosure"] else -5)
    events = []
    if plan["disclosed"]:
        events.append(_ev("disclosure.verified", start, tenant, call, recording_event_id=rec,
                          played_at=format_rfc3339(played),
                          recording_started_at=format_rfc3339(start)))  # fmt: skip
    events.append(_ev("recording.archived", start, tenant, call, recording_event_id=rec,
                      object={"bucket": "rec", "key": key}, recording_started_at=format_rfc3339(start),
                      expires_at=format_rfc3339(due), policy_version=plan["version"]))  # fmt: skip
    if plan["held"]:
        events.append(_ev("legal_hold.placed", start + timedelta(days=1), tenant, call))
    if plan["access"] != "none":
        role, what, granted, site = "qa", "audio", [tenant], ("be-machelen", "BE")
        if plan["access"] == "auditor_audio":
            role = "auditor"
        elif plan["access"] == "other_tenant":
            granted = ["somebody-else"]
        elif plan["access"] == "from_morocco":
            site = ("ma-rabat", "MA")
        events.append(_ev("recording.accessed", start + timedelta(days=2), tenant, call, role=role, what=what,
                          accessed_by="coach", granted_tenants=granted, site=site[0],
                          site_country=site[1]))  # fmt: skip
    gone = {"on_time": due + timedelta(seconds=5), "late": due + timedelta(days=2),
            "early": due - timedelta(days=3), "never": None}[plan["deletion"]]  # fmt: skip
    if gone is not None:
        events.append(_ev("recording.deleted", gone, tenant, call, object={"bucket": "rec", "key": key},
                          due_at=format_rfc3339(due), deleted_at=format_rfc3339(gone),
                          reason="retention_elapsed"))  # fmt: skip
    return events


def _policy(tenant: str, version: int, sites: list[str]) -> dict[str, Any]:
    return _ev("policy.changed", T0 - timedelta(days=1), tenant, version=version, changes={"sites": sites},
               changed_by="dpo", reason="contract", effective_at=format_rfc3339(T0 - timedelta(days=1)),
               policy={"tenant_rules": {}, "queues": {}, "allowed_sites": sites})  # fmt: skip


def _request(n: int, answered: bool) -> list[dict[str, Any]]:
    rid, subject = f"r-{n}", f"subject-{n}"
    received = T0 + timedelta(days=n)
    events = [
        _ev(
            "subject.request_received",
            received,
            "acme",
            request_id=rid,
            subject=subject,
            kind="erase",
            received_at=format_rfc3339(received),
            due_at=format_rfc3339(received + timedelta(days=30)),
        )
    ]
    if answered:
        events.append(
            _ev("subject.erased", received + timedelta(days=40), "acme", request_id=rid, subject=subject)
        )
    return events  # fmt: skip


logs = st.tuples(
    st.lists(call_plans, min_size=1, max_size=25),
    st.lists(st.booleans(), max_size=4),  # subject requests, answered or not
    st.lists(st.integers(0, 1000), max_size=4),  # events repeated as they were
    st.lists(st.integers(0, 1000), max_size=3),  # events forged under a real id
    st.lists(st.integers(0, 1000), max_size=3),  # events forged under a real id, keyed elsewhere
    st.lists(st.sampled_from(TENANTS), max_size=3, unique=True),  # tenants that allow ma-rabat
)


def _key(event: dict[str, Any]) -> str:
    """`lifecycle`'s key (stream.bus.lifecycle_key): the call, else the subject, else the tenant."""
    return str(event.get("call_id") or event.get("subject") or event.get("tenant"))


def _split(events: list[dict[str, Any]], shares: int) -> list[list[dict[str, Any]]]:
    parts: list[list[dict[str, Any]]] = [[] for _ in range(shares)]
    for event in events:
        parts[sum(_key(event).encode()) % shares].append(event)
    return parts


def _fold_part(part: list[dict[str, Any]], i: int, scratch: Path, elsewhere: dict[str, bytes]) -> Any:
    calls = SpilledStories(scratch / f"calls-{i}.sqlite", keep=3)
    seen = SpilledSeen(scratch / f"seen-{i}.sqlite", batch=5)
    seen.rank = i  # the share's partition: the order one process reads them in
    folded = fold(part, calls, seen, elsewhere)
    calls.flush()
    seen.close()
    return folded, calls


def _partitioned(parts: list[list[dict[str, Any]]], scratch: Path) -> ReplayResult:
    """As `audit.partitioned` does: each share folded apart, the ids in several shares found, those
    shares folded again, then checked against the joined policies and merged."""
    done = [_fold_part(part, i, scratch, {}) for i, part in enumerate(parts)]
    elsewhere = first_copies_elsewhere([scratch / f"seen-{i}.sqlite" for i in range(len(parts))])
    for i, ids in enumerate(elsewhere):
        if ids:
            done[i][1].close()
            for name in (f"calls-{i}.sqlite", f"seen-{i}.sqlite"):
                (scratch / name).unlink()
            done[i] = _fold_part(parts[i], i, scratch, ids)
    folded, stories = [d[0] for d in done], [d[1] for d in done]
    history = policy_history(f.policies for f in folded)
    parts = [
        check_calls(f.result, s, history, AS_OF, TOLERANCE, DEFAULTS)
        for f, s in zip(folded, stories, strict=True)
    ]
    merged = merge_results(parts)
    merged.policy_history = history
    check_requests(merge_requests(f.requests for f in folded), AS_OF, merged)
    return canonical(merged)


def _as_dict(result: ReplayResult) -> dict[str, Any]:
    return {
        "events": result.events, "duplicates": result.duplicates, "violations": result.violations,
        "outcomes_by_tenant": {t: dict(c) for t, c in result.outcomes_by_tenant.items() if c},
        "outcomes_by_day": {d: dict(c) for d, c in result.outcomes_by_day.items() if c},
        "lateness": dict(result.lateness_histogram), "requests": result.subject_requests,
        "sites": dict(result.accesses_by_site), "policies": result.policy_history,
        "lateness_log2": dict(result.lateness_log2), "on_time": result.deletions_on_time,
        "roles": dict(result.accesses_by_role), "purposes": dict(result.accesses_by_purpose),
    }  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(logs, st.integers(2, 4))
def test_partition_replays_merged_give_the_report_of_one_replay(log: tuple[Any, ...], shares: int) -> None:
    plans, requests, repeats, forgeries, keyed_elsewhere, allowing = log
    events = [e for n, plan in enumerate(plans) for e in _call_events(n, plan)]
    events += [e for n, answered in enumerate(requests) for e in _request(n, answered)]
    events = [_policy(t, 7, ["ma-rabat"]) for t in allowing] + events
    events += [dict(events[i % len(events)]) for i in repeats]
    # Forged under a real id and key (the same partition), and under a real id with another key: on
    # another partition, where a share reading it alone would take it as new (issue 31, item 3).
    events += [{**events[i % len(events)], "recording_event_id": str(uuid.uuid4())} for i in forgeries]
    parts = _split(events, shares)
    keyed = 0
    for n, i in enumerate(keyed_elsewhere):
        forged = {**events[i % len(events)], "recording_event_id": str(uuid.uuid4())}
        home = next(k for k, part in enumerate(parts) for e in part if e["event_id"] == forged["event_id"])
        if home < shares - 1:  # a later partition than its call's (an earlier one: the test below)
            parts[home + 1 + n % (shares - 1 - home)].append(forged)
            keyed += 1

    whole = replay([e for part in parts for e in part], AS_OF, TOLERANCE, DEFAULTS)  # by partition
    with tempfile.TemporaryDirectory() as scratch:
        split = _partitioned(parts, Path(scratch))

    assert _as_dict(split) == _as_dict(whole)
    if keyed:
        assert any(v.rule == "conflicting_event" for v in whole.violations), "the forgery is found"
    if any(p["deletion"] == "late" and not p["held"] for p in plans):
        assert any(v.rule == "late_deletion" for v in whole.violations), "the planted violations are found"


def test_a_forgery_keyed_onto_an_earlier_partition_is_found_by_both_replays(tmp_path: Path) -> None:
    """One process takes the first copy in partition order as the event: here the forged one, so the
    call's own copy is the conflict; the split replay keeps the call's copy in its story. Both report
    the id as `conflicting_event` (the known edge: which copy the story keeps differs)."""
    events = _call_events(0, {"tenant": "acme", "disclosed": True, "late_disclosure": False,
                              "deletion": "on_time", "held": False, "access": "none", "offset_h": 0,
                              "version": None})  # fmt: skip
    deleted = next(e for e in events if e["type"] == "recording.deleted")
    forged = {**deleted, "reason": "objection", "deleted_at": deleted["due_at"]}
    parts = [[forged], events]  # the forgery on partition 0, the call on partition 1
    whole = replay([e for part in parts for e in part], AS_OF, TOLERANCE, DEFAULTS)
    split = _partitioned(parts, tmp_path)
    for result in (whole, split):
        conflicts = [v for v in result.violations if v.rule == "conflicting_event"]
        assert [v.evidence for v in conflicts] == [(deleted["event_id"],)], result.violations
