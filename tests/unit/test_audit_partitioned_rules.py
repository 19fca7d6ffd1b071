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

from callvault.audit.spill import SpilledSeen, SpilledStories
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


def _partitioned(events: list[dict[str, Any]], shares: int, scratch: Path) -> ReplayResult:
    folded, stories = [], []
    for i, part in enumerate(_split(events, shares)):
        calls = SpilledStories(scratch / f"calls-{i}.sqlite", keep=3)
        folded.append(fold(part, calls, SpilledSeen(scratch / f"seen-{i}.sqlite", batch=5)))
        calls.flush()
        stories.append(calls)
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
    plans, requests, repeats, forgeries, allowing = log
    events = [e for n, plan in enumerate(plans) for e in _call_events(n, plan)]
    events += [e for n, answered in enumerate(requests) for e in _request(n, answered)]
    events = [_policy(t, 7, ["ma-rabat"]) for t in allowing] + events
    events += [dict(events[i % len(events)]) for i in repeats]
    # Forged under a real id and key (a forger who picks another key lands on another partition, where the
    # event is read as new and checked on its own merits: see the docs' known edges).
    events += [{**events[i % len(events)], "recording_event_id": str(uuid.uuid4())} for i in forgeries]

    whole = replay(events, AS_OF, TOLERANCE, DEFAULTS)
    with tempfile.TemporaryDirectory() as scratch:
        split = _partitioned(events, shares, Path(scratch))

    assert _as_dict(split) == _as_dict(whole)
    if any(p["deletion"] == "late" and not p["held"] for p in plans):
        assert any(v.rule == "late_deletion" for v in whole.violations), "the planted violations are found"
