"""Replaying the audit log: each call's story rebuilt, every rule checked. Pure.

The input is lifecycle events (dicts, as on the topic) in log order; the output
is a list of violations, each with the event ids that prove it, and the totals
a report shows. A repeated event (same `event_id`, same facts: a redelivery, or a
proof re-sent after a crash) counts once. Two events with one `event_id` and
different facts are a `conflicting_event`: one of them is forged or corrupted, and
the replay cannot tell which, so it folds the first and flags the second rather
than hide what the second says.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from callvault.rules import audit_commands
from callvault.rules.access import ALL_TENANTS, PERMISSIONS, Role, Want
from callvault.rules.client_policy import (
    Dated,
    Defaults,
    PolicyVersion,
    allowed_sites_at,
    redated_from_archive,
)
from callvault.rules.data_classes import DataClass, archived_events, data_classes, deleted_events, generation
from callvault.rules.payments import Span, judge, pause_spans
from callvault.rules.sites import in_eea

LATENESS_BUCKETS_S = (10, 60, 600, 3600, 86400)  # upper bounds of the histogram's bars
# What a repeat of an event may say anew: the instant it was written, and a deletion proof re-sent
# after a crash claims the later instant (which can only overstate lateness).
# What a repeat may restate: a re-sent proof's instants, and what its worker knew of the policy then.
RESTATED = frozenset({"occurred_at", "deleted_at", "lateness_s", "versions_deleted", "policy_known"})


@dataclass(frozen=True, slots=True)
class Violation:
    rule: str
    call_id: str
    tenant: str
    detail: str
    evidence: tuple[str, ...]  # event ids


@dataclass
class _Call:
    tenant: str
    verified: dict[str, dict[str, Any]] = field(default_factory=dict)  # recording_event_id -> event
    archived: dict[str, dict[str, Any]] = field(default_factory=dict)  # object key -> event
    deleted: dict[str, dict[str, Any]] = field(default_factory=dict)  # object key -> event
    holds: list[tuple[datetime, datetime | None, str]] = field(default_factory=list)  # from, to, event id
    accesses: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)  # deletion.refused: a late deletion's cause
    payments: list[dict[str, Any]] = field(default_factory=list)  # payment.secured: judged again


@dataclass
class ReplayResult:
    events: int = 0
    duplicates: int = 0
    violations: list[Violation] = field(default_factory=list)
    outcomes_by_tenant: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    outcomes_by_day: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    lateness_histogram: Counter[str] = field(default_factory=Counter)
    # Deletions by how late, in powers of two of seconds (bucket k: up to 2**k s), for the p99.
    lateness_log2: Counter[int] = field(default_factory=Counter)
    deletions_on_time: int = 0  # within the tolerance (or kept by holds the whole time)
    subject_requests: list[dict[str, Any]] = field(default_factory=list)  # each with its status at as_of
    policy_history: dict[str, list[PolicyVersion]] = field(default_factory=dict)  # tenant -> versions
    accesses_by_site: Counter[str] = field(default_factory=Counter)  # "{site} ({country})", "no site"
    accesses_by_role: Counter[str] = field(default_factory=Counter)
    accesses_by_purpose: Counter[str] = field(default_factory=Counter)  # the purpose as declared, cut short
    contract_ends: list[dict[str, Any]] = field(default_factory=list)  # tenant.returned/erased/enabled
    # Payment calls by what became of them (`PAYMENT_OUTCOMES`), per tenant (issue 28).
    payments_by_tenant: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def compliance_rate(self, tenant: str) -> float:
        """Share of the tenant's calls with no violation."""
        calls = self.outcomes_by_tenant[tenant]["calls"]
        bad = len({v.call_id for v in self.violations if v.tenant == tenant and v.call_id})
        return 1.0 if calls == 0 else (calls - bad) / calls


CallRef = tuple[str, str]  # (tenant, call_id): two clients may share an id
Seen = Literal["new", "duplicate", "conflict"]


class CallStories(Protocol):
    """Where a replay keeps each call's story while the log is read (in memory, or spilled to disk)."""

    def get(self, ref: CallRef) -> _Call | None: ...

    def put(self, ref: CallRef, call: _Call) -> None: ...

    def stories(self) -> Iterator[tuple[CallRef, _Call]]:
        """Every call once the log is read, in a deterministic order (by tenant, then call id)."""
        ...


class SeenEvents(Protocol):
    """The event ids read so far, each with the digest of its facts."""

    def note(self, event_id: str, digest: bytes) -> Seen: ...


class MemoryStories:
    def __init__(self) -> None:
        self._calls: dict[CallRef, _Call] = {}

    def get(self, ref: CallRef) -> _Call | None:
        return self._calls.get(ref)

    def put(self, ref: CallRef, call: _Call) -> None:
        self._calls[ref] = call

    def stories(self) -> Iterator[tuple[CallRef, _Call]]:
        for ref in sorted(self._calls):
            yield ref, self._calls[ref]


class MemorySeen:
    def __init__(self) -> None:
        self._digests: dict[str, bytes] = {}

    def note(self, event_id: str, digest: bytes) -> Seen:
        first = self._digests.setdefault(event_id, digest)
        if first is digest:
            return "new"
        return "duplicate" if first == digest else "conflict"


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _bucket(lateness: float) -> str:
    for bound in LATENESS_BUCKETS_S:
        if lateness <= bound:
            return f"<= {bound} s"
    return f"> {LATENESS_BUCKETS_S[-1]} s"


def _held_throughout(
    holds: list[tuple[datetime, datetime | None, str]], start: datetime, end: datetime
) -> bool:
    """Whether one hold, or holds end to end, covered the whole of [start, end]."""
    reached = start
    for begin, finish, _ in sorted(holds, key=lambda h: h[0]):
        if begin > reached:
            break
        if finish is None or finish >= end:
            return True
        reached = max(reached, finish)
    return reached >= end


def _hold_at(holds: list[tuple[datetime, datetime | None, str]], moment: datetime) -> str | None:
    for begin, finish, event_id in holds:
        if begin <= moment and (finish is None or moment < finish):
            return event_id
    return None


# What the checks read of the kinds of event no data class declares: a call's story keeps only
# these (and each class's archived and deleted events, `_tables`), not whole events, so a replay's
# memory grows with calls, not with the log's bytes.
_KEPT_OTHER = {
    "disclosure.verified": ("event_id", "played_at"),
    "deletion.refused": ("event_id", "key", "due_at", "answer", "first_refused_at", "passes"),
    "payment.secured": (
        "event_id",
        "recording_started_at",
        "recording_ended_at",
        "pauses",
        "windows",
        "margin_s",
        "audio_checked",
        "loudest_paused_dbfs",
        "silence_threshold_dbfs",
    ),
    "recording.accessed": (
        "event_id",
        "occurred_at",
        "what",
        "role",
        "accessed_by",
        "granted_tenants",
        "site",
        "site_country",
    ),
}
_KEPT_ARCHIVED = ("expires_at", "policy_version", "policy_known", "queue")
_KEPT_DELETED = ("type", "event_id", "deleted_at", "reason")


# The facts of an event that the checks rely on: the fields its kind keeps (less what a repeat may
# restate), what it is about, and for kinds no call keeps, what requests, policies and holds are read by.
# Two events under one id that differ here would tell the audit different stories.
_ABOUT = ("type", "tenant", "call_id", "object", "recording_event_id", "disclosure_event_id")
_OTHER_FACTS = _ABOUT + ("request_id", "kind", "received_at", "due_at", "version", "effective_at", "policy")


@dataclass(frozen=True, slots=True)
class _Tables:
    """What the replay reads of each event type, derived from the data-class registry."""

    archived: dict[str, DataClass]  # event type -> class
    deleted: dict[str, DataClass]
    kept: dict[str, tuple[str, ...]]
    facts: dict[str, tuple[str, ...]]


@functools.lru_cache(maxsize=4)
def _tables_of(_generation: int) -> _Tables:  # the registry's state, by its change count
    kept = dict(_KEPT_OTHER)
    for c in data_classes():
        base = ("type", "event_id", "occurred_at", *c.archived_facts, c.counts_from)
        kept[c.archived_event] = base + _KEPT_ARCHIVED
        kept[c.deleted_event] = _KEPT_DELETED
    facts = {kind: _ABOUT + tuple(f for f in names if f not in RESTATED) for kind, names in kept.items()}
    return _Tables(archived_events(), deleted_events(), kept, facts)


def _tables() -> _Tables:
    return _tables_of(generation())


def facts_digest(event: dict[str, Any]) -> bytes:
    """A short digest of what an event states that the audit relies on (see `_FACTS`).

    The `repr` of the facts in a fixed order: a repeat is the same bytes as written
    (the archive keeps them verbatim), so its nested objects keep their key order;
    it costs a third of a canonical JSON dump, on every event of the log.
    """
    names = _tables().facts.get(str(event.get("type")), _OTHER_FACTS)
    return hashlib.blake2b(repr([event.get(name) for name in names]).encode(), digest_size=12).digest()


def _slim(event: dict[str, Any], kind: str) -> dict[str, Any]:
    return {name: event[name] for name in _tables().kept[kind] if name in event}


def replay(
    events: Iterable[dict[str, Any]],
    as_of: datetime,
    tolerance: timedelta,
    defaults: Defaults | None = None,
    *,
    stories: CallStories | None = None,
    seen: SeenEvents | None = None,
    command_keys: Mapping[str, str] | None = None,
) -> ReplayResult:
    """`defaults`: the controller's own terms (settings), which a client policy's silent classes keep;
    without them an object's date is checked against its archive event alone. `stories` and `seen`:
    where calls and event ids are kept while the log is read (by default in memory; `audit.spill`
    keeps them on disk, so memory stops growing with the log).

    The same as `fold`, then `check_calls` with the policies it found, then
    `check_requests`: a replay split by partition runs those steps apart and
    `merge_results` joins them into this very result. `command_keys`: the public keys commands are
    signed with (`CALLVAULT_COMMAND_KEYS`); with them, holds and subject requests no verified command
    caused are found (`check_commands`)."""
    calls = stories if stories is not None else MemoryStories()
    folded = fold(events, calls, seen if seen is not None else MemorySeen())
    history = policy_history([folded.policies])
    result = check_calls(folded.result, calls, history, as_of, tolerance, defaults)
    check_requests(folded.requests, as_of, result)
    check_commands(folded.commands, command_keys, result)
    return canonical(result)


def check_commands(
    commands: audit_commands.Commands, keys: Mapping[str, str] | None, result: ReplayResult
) -> None:
    """Flag what no verified command caused (`rules.audit_commands`); nothing without the keys."""
    if keys is None:
        return
    for call_id, tenant, detail, evidence in audit_commands.unverified(commands, keys):
        result.violations.append(Violation("unverified_command_effect", call_id, tenant, detail, evidence))


@dataclass
class Folded:
    """One share of the log read: its totals so far, the policy versions and requests it holds.

    The calls' own checks wait for `check_calls`: they need the policy versions of
    every share (a tenant's policy changes are keyed by tenant, its calls by call).
    """

    result: ReplayResult = field(default_factory=ReplayResult)
    policies: dict[str, dict[int, PolicyVersion]] = field(default_factory=dict)
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    commands: audit_commands.Commands = field(default_factory=dict)  # what verified commands caused


def fold(
    events: Iterable[dict[str, Any]],
    calls: CallStories,
    ids: SeenEvents,
    first_elsewhere: Mapping[str, bytes] | None = None,
) -> Folded:
    """Each event once, into its call's story (or a request's, or the policies).

    `first_elsewhere`: ids whose first copy another share of the log holds, with its facts' digest
    (`audit.spill.first_copies_elsewhere`): every copy here is then a repeat or a conflict, as it is
    for one process reading the whole log."""
    folded = Folded()
    result, policies, requests = folded.result, folded.policies, folded.requests
    tables = _tables()
    elsewhere = first_elsewhere or {}
    for event in events:
        event_id = str(event.get("event_id"))
        digest = facts_digest(event)
        first = elsewhere.get(event_id)
        if first is not None:
            verdict: Seen = "duplicate" if first == digest else "conflict"
        else:
            verdict = ids.note(event_id, digest)
        if verdict == "duplicate":
            result.duplicates += 1
            continue
        if verdict == "conflict":
            result.violations.append(_conflict(event, event_id))
            continue
        result.events += 1
        call_id, kind = event.get("call_id"), str(event.get("type"))
        audit_commands.note(folded.commands, event, kind)
        if kind.startswith("subject.") and event.get("request_id"):  # a request's, even naming a call
            _follow_request(requests, event, kind)
            continue
        if not call_id:
            if kind.startswith("subject."):  # subject-rights events name a request, not a call
                _follow_request(requests, event, kind)
            elif kind.startswith("tenant."):
                result.contract_ends.append(
                    {
                        k: event.get(k)
                        for k in (
                            "type",
                            "tenant",
                            "occurred_at",
                            "reason",
                            "destination",
                            "counts",
                            "held_calls",
                            "manifest_sha256",
                            "key_id",
                            "deletion_date",
                        )
                        if k in event
                    }  # fmt: skip
                )
            elif kind == "policy.changed":
                version = _policy_version(event)
                if version is not None:
                    policies.setdefault(version.tenant, {})[version.version] = version
            continue
        tenant = str(event.get("tenant"))
        ref = (tenant, str(call_id))
        call = calls.get(ref)
        if call is None:
            call = _Call(tenant)
            calls.put(ref, call)
        if kind == "disclosure.verified":
            call.verified[str(event["recording_event_id"])] = _slim(event, kind)
        elif kind in tables.archived:
            call.archived[event["object"]["key"]] = _slim(event, kind)
        elif kind in tables.deleted:
            call.deleted[event["object"]["key"]] = _slim(event, kind)
        elif kind == "legal_hold.placed":
            call.holds.append((_at(event["occurred_at"]), None, event_id))
        elif kind == "legal_hold.released":
            open_holds = [i for i, h in enumerate(call.holds) if h[1] is None]
            if open_holds:
                begin, _, placed_id = call.holds[open_holds[-1]]
                call.holds[open_holds[-1]] = (begin, _at(event["occurred_at"]), placed_id)
        elif kind == "deletion.refused":
            call.refused.append(_slim(event, kind))
        elif kind == "payment.secured":
            call.payments.append(_slim(event, kind))
        elif kind == "recording.accessed":
            call.accesses.append(_slim(event, kind))
            result.accesses_by_role[str(event.get("role"))] += 1
            result.accesses_by_purpose[str(event.get("purpose") or "not stated")[:60]] += 1
        if kind in {"recording.archived", "recording.rejected"}:
            outcome = "archived" if kind == "recording.archived" else str(event.get("reason"))
            result.outcomes_by_tenant[call.tenant][outcome] += 1
            result.outcomes_by_day[str(event["occurred_at"])[:10]][outcome] += 1
        payment = payment_outcome(kind, event.get("reason"))
        if payment is not None:
            result.payments_by_tenant[call.tenant][payment] += 1
    return folded


def policy_history(shares: Iterable[dict[str, dict[int, PolicyVersion]]]) -> dict[str, list[PolicyVersion]]:
    """Every tenant's policy versions in order, from the versions each share of the log holds."""
    merged: dict[str, dict[int, PolicyVersion]] = {}
    for share in shares:
        for tenant, versions in share.items():
            merged.setdefault(tenant, {}).update(versions)
    return {t: [v for _, v in sorted(vs.items())] for t, vs in sorted(merged.items())}


def check_calls(
    result: ReplayResult,
    calls: CallStories,
    history: dict[str, list[PolicyVersion]],
    as_of: datetime,
    tolerance: timedelta,
    defaults: Defaults | None,
) -> ReplayResult:
    """Every call's rules, with the whole log's policy history; into `result`, which it returns."""
    result.policy_history = history
    for (_, call_id), call in calls.stories():
        result.outcomes_by_tenant[call.tenant]["calls"] += 1
        versions = history.get(call.tenant, [])
        result.violations.extend(_check(call_id, call, as_of, tolerance, result, versions, defaults))
    return result


def check_requests(requests: dict[str, dict[str, Any]], as_of: datetime, result: ReplayResult) -> None:
    for request_id in sorted(requests):
        _check_request(requests[request_id], as_of, result)


def merge_requests(shares: Iterable[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Requests from several shares (a request's events share its subject's key, so one share each)."""
    merged: dict[str, dict[str, Any]] = {}
    for share in shares:
        for request_id, request in share.items():
            merged.setdefault(request_id, {}).update(request)
    return merged


def _violation_order(v: Violation) -> tuple[str, str, str, tuple[str, ...]]:
    # A call's violations keep the order its checks found them in (the sort is stable, and one share
    # holds all of a call's story); those of no call (requests, conflicts of requests or policies) come
    # from several shares, so they are ordered by what they say.
    # A conflict is found while the log is read, before any call is checked: first, ordered by what it
    # names (copies of one id may sit in several shares, read in any order).
    if v.call_id and v.rule == "conflicting_event":
        return (v.tenant, v.call_id, "0", v.evidence)
    return (v.tenant, v.call_id, "1", ()) if v.call_id else (v.tenant, "", v.rule, v.evidence)


def canonical(result: ReplayResult) -> ReplayResult:
    """The order a report lists things in, whatever order the shares were read in.

    Violations by tenant and call, and within a call in the order its checks
    found them (a stable sort: one share holds all of a call's story).
    """
    result.violations.sort(key=_violation_order)
    result.subject_requests.sort(key=lambda r: str(r.get("request_id")))
    # By instant and tenant, stable: one tenant's contract-end events share its key, so their partition,
    # and keep the order they were written in (returned, then erased).
    result.contract_ends.sort(key=lambda e: (str(e.get("occurred_at")), str(e.get("tenant"))))
    return result


def merge_results(parts: Iterable[ReplayResult]) -> ReplayResult:
    """Partial results (one per share of partitions) joined into the one a single replay gives."""
    merged = ReplayResult()
    for part in parts:
        merged.events += part.events
        merged.duplicates += part.duplicates
        merged.violations.extend(part.violations)
        for tenant, counts in part.outcomes_by_tenant.items():
            merged.outcomes_by_tenant[tenant].update(counts)
        for day, counts in part.outcomes_by_day.items():
            merged.outcomes_by_day[day].update(counts)
        merged.lateness_histogram.update(part.lateness_histogram)
        merged.lateness_log2.update(part.lateness_log2)
        merged.deletions_on_time += part.deletions_on_time
        merged.accesses_by_role.update(part.accesses_by_role)
        merged.accesses_by_purpose.update(part.accesses_by_purpose)
        merged.subject_requests.extend(part.subject_requests)
        merged.accesses_by_site.update(part.accesses_by_site)
        merged.contract_ends.extend(part.contract_ends)
        for tenant, counts in part.payments_by_tenant.items():
            merged.payments_by_tenant[tenant].update(counts)
        merged.policy_history = part.policy_history or merged.policy_history
    return canonical(merged)


def _conflict(event: dict[str, Any], event_id: str) -> Violation:
    kind = str(event.get("type"))
    detail = (
        f"two events share the event_id {event_id} but state different facts (the second is a {kind}): "
        "one of them is forged or corrupted"
    )
    return Violation("conflicting_event", str(event.get("call_id") or ""), str(event.get("tenant")), detail,
                     (event_id,))  # fmt: skip


def _follow_request(requests: dict[str, dict[str, Any]], event: dict[str, Any], kind: str) -> None:
    """A request's story: received (with its deadline), maybe its identity checked and its deadline
    extended (the subject told), answered."""
    request = requests.setdefault(str(event.get("request_id")), {"request_id": str(event.get("request_id"))})
    request.setdefault("tenant", str(event.get("tenant")))
    if kind == "subject.request_received":
        names = ("kind", "received_at", "due_at", "event_id", "identity_pending")
        request.update({name: event.get(name) for name in names})
    elif kind == "subject.identity_verified":
        request.update(verified_at=event.get("verified_at"), verified_due_at=event.get("due_at"))
    elif kind == "subject.request_extended":
        request.update(extended_due_at=event.get("due_at"), extended_id=event.get("event_id"))
    elif kind == "subject.extension_notified":
        request["notified_on"] = event.get("notified_on")
    elif kind == "subject.forwarded":
        request["forwarded_to"] = event.get("contact")
    elif kind not in {"subject.export_deleted", "subject.export_accessed"} and "answered_at" not in request:
        request["answered_at"], request["answer_id"] = event.get("occurred_at"), event.get("event_id")
        request["instructed_by"] = event.get("instructed_by")
        if kind == "subject.rectified":
            request["rectified_call"] = event.get("call_id")


def _check_forwarded(request: dict[str, Any], result: ReplayResult) -> None:
    """A request passed to the client (the controller): its deadline is the client's; carried out only on
    the client's instruction, which the answer names."""
    rid, tenant, answered = request["request_id"], request["tenant"], request.get("answered_at")
    status = "forwarded"
    if answered is not None:
        status = "executed on instruction"
        if not request.get("instructed_by"):
            status = "executed without instruction"
            detail = (
                f"{request.get('kind')} request {rid} was forwarded to {request['forwarded_to']} and "
                "carried out with no instruction from the client"
            )
            evidence = (str(request.get("event_id") or rid), str(request.get("answer_id")))
            result.violations.append(
                Violation("forwarded_executed_without_instruction", "", tenant, detail, evidence)
            )
    result.subject_requests.append(
        {
            **{k: request.get(k) for k in ("request_id", "tenant", "kind", "received_at")},
            "due_at": None,
            "answered_at": answered,
            "status": status,
            "days_left": None,
            "forwarded_to": request["forwarded_to"],
        }  # fmt: skip
    )


def _notified_in_time(request: dict[str, Any]) -> bool:
    """Whether the subject was told of the extension within the month the request first had."""
    told = request.get("notified_on")
    first_due = request.get("verified_due_at") or request.get("due_at")
    return told is not None and (first_due is None or _at(told) <= _at(first_due))


def _check_request(request: dict[str, Any], as_of: datetime, result: ReplayResult) -> None:
    """An unanswered request past its deadline is overdue; one answered after it was late. The deadline
    counts from the identity check where the request waited for one (until then, the check is due)."""
    rid, tenant = request["request_id"], request["tenant"]
    if "due_at" not in request:
        if request.get("rectified_call") is not None:  # a change of the data, on no request the log shows
            detail = (
                f"call {request['rectified_call']}'s metadata was rectified for request {rid}, which the log "
            )
            detail += "never shows received"
            result.violations.append(
                Violation("rectification_without_request", str(request["rectified_call"]), tenant, detail,
                          (str(request.get("answer_id")),))
            )  # fmt: skip
        return  # otherwise answered, but received before this log began (or outside the filters)
    if request.get("forwarded_to") is not None:
        _check_forwarded(request, result)
        return
    waiting = bool(request.get("identity_pending")) and request.get("verified_at") is None
    due = _at(request.get("extended_due_at") or request.get("verified_due_at") or request["due_at"])
    answered = request.get("answered_at")
    status = "fulfilled" if answered else ("identity pending" if waiting else "open")
    if request.get("extended_due_at") and not _notified_in_time(request):
        detail = (
            f"{request['kind']} request {rid} was extended to {format_due(due)} and the subject was not told "
            "within the first month"
            + (f" (told {request['notified_on']})" if request.get("notified_on") else "")
        )
        evidence = (str(request.get("extended_id") or request["event_id"]),)
        result.violations.append(Violation("extension_not_notified", "", tenant, detail, evidence))
    if waiting and answered is None and as_of > due:
        status = "identity check overdue"
        detail = f"{request['kind']} request {rid} waits for an identity check due {format_due(due)}"
        result.violations.append(
            Violation("identity_check_overdue", "", tenant, detail, (request["event_id"],))
        )
    elif answered is None and as_of > due:
        status = "overdue"
        detail = f"{request['kind']} request {rid} was due {format_due(due)} and is not answered"
        result.violations.append(
            Violation("subject_request_overdue", "", tenant, detail, (request["event_id"],))
        )
    elif answered is not None and _at(answered) > due:
        status = "late"
        detail = f"{request['kind']} request {rid} was due {format_due(due)} and answered {answered}"
        evidence = (request["event_id"], str(request["answer_id"]))
        result.violations.append(Violation("subject_request_late", "", tenant, detail, evidence))
    days = (due - as_of).total_seconds() / 86400
    result.subject_requests.append(
        {
            **{k: request.get(k) for k in ("request_id", "tenant", "kind", "received_at")},
            "due_at": format_due(due),
            "answered_at": answered,
            "status": status,
            "days_left": round(days, 2) if answered is None else None,
        }  # fmt: skip
    )


# What a payment call became, as the report counts it: by the kind of event and its reason.
PAYMENT_OUTCOMES = {
    ("payment.secured", None): "secured",
    ("recording.rejected", "card_data_exposed"): "rejected_card_data_exposed",
    ("recording.rejected", "pause_not_silent"): "rejected_pause_not_silent",
    ("recording.deleted", "card_data_exposed"): "erased_card_data_exposed",
}


def payment_outcome(kind: str, reason: object) -> str | None:
    return PAYMENT_OUTCOMES.get((kind, None if kind == "payment.secured" else str(reason)))


def _payment_exposed(secured: dict[str, Any]) -> str | None:
    """Why a `payment.secured` does not prove what it says (the rule judged again from its own
    spans, margin and measurement), or None."""
    try:
        recording = Span(_at(secured["recording_started_at"]), _at(secured["recording_ended_at"]))
        pauses = pause_spans(
            [
                (_at(p[end]), end == "started_at")
                for p in secured["pauses"]
                for end in ("started_at", "ended_at")
            ],
            recording.end or recording.start,
        )
        windows = tuple(Span(_at(w["started_at"]), _at(w["ended_at"])) for w in secured["windows"])
        margin = timedelta(seconds=float(secured["margin_s"]))
    except (KeyError, TypeError, ValueError) as exc:
        return f"the payment evidence cannot be read: {exc}"
    verdict = judge(pauses, windows, margin=margin, recording=recording, now=recording.start,
                    wait_until=recording.start)  # fmt: skip
    if verdict.state == "exposed":
        return f"the recording was archived, yet its own payment evidence says: {verdict.detail}"
    loudest, threshold = secured.get("loudest_paused_dbfs"), secured.get("silence_threshold_dbfs")
    if (
        secured.get("audio_checked")
        and loudest is not None
        and threshold is not None
        and loudest >= threshold
    ):
        return (
            f"the recording was archived with a paused span at {loudest} dBFS, at or above {threshold} dBFS"
        )
    return None


def format_due(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _outside_rights(access: dict[str, Any], tenant: str) -> str | None:
    """Why this access exceeded the grant it was made under; None when it did not."""
    who = f"{access.get('accessed_by')} ({access.get('role')})"
    try:
        role = Role(access.get("role"))
    except ValueError:
        return f"{who} accessed the call with a role callvault does not grant"
    if Want(access.get("what", "audio")) not in PERMISSIONS[role]:
        return f"{who} read the call's {access.get('what')}, which the role {role.value} may not"
    granted = access.get("granted_tenants")
    if granted is not None and ALL_TENANTS not in granted and tenant not in granted:
        return f"{who} accessed a call of tenant {tenant!r} with a token for {', '.join(granted)}"
    return None


def _policy_version(event: dict[str, Any]) -> PolicyVersion | None:
    """The version a `policy.changed` event states; None for one that does not parse (flagged apart)."""
    try:
        policy = event.get("policy") or {}
        return PolicyVersion(
            tenant=event["tenant"], version=event["version"], effective_at=event["effective_at"],
            changed_at=event["occurred_at"], changed_by=event.get("changed_by", ""),
            reason=event.get("reason", ""),
            tenant_rules=policy.get("tenant_rules", {}), queues=policy.get("queues", {}),
            allowed_sites=policy.get("allowed_sites", []),
            role=policy.get("role", "controller"), contact=policy.get("contact"),
            change=event.get("changes", {}),
        )  # fmt: skip
    except (KeyError, ValueError):
        return None


def _due(
    archived: dict[str, Any], history: list[PolicyVersion], defaults: Defaults | None, as_of: datetime
) -> tuple[datetime, int | None]:
    """The object's due date by the policy versions in force since its archive (see rules.client_policy)."""
    tagged = Dated(_at(archived["expires_at"]), archived.get("policy_version"))
    kind = _tables().archived[archived["type"]]
    started = archived.get(kind.counts_from)
    if defaults is None or not history or started is None or "occurred_at" not in archived:
        return tagged
    return redated_from_archive(
        tagged, kind.name, _at(started), _at(archived["occurred_at"]), archived.get("queue"), history,
        defaults, as_of, known=archived.get("policy_known"),
    )  # fmt: skip


def _erased_by_access(tables: _Tables, what: str) -> set[str]:
    """The deletions after which an access of `what` must not happen: of the classes served as it,
    or, for what no class is served as (a search, an export), the metadata's."""
    served = {kind for kind, c in tables.deleted.items() if c.served_as == what}
    return served or {kind for kind, c in tables.deleted.items() if c.served_as == "metadata"}


def _check(
    call_id: str,
    call: _Call,
    as_of: datetime,
    tolerance: timedelta,
    result: ReplayResult,
    history: list[PolicyVersion],
    defaults: Defaults | None,
) -> list[Violation]:
    found: list[Violation] = []
    known_versions = {v.version for v in history}

    def flag(rule: str, detail: str, *evidence: str) -> None:
        found.append(Violation(rule, call_id, call.tenant, detail, tuple(evidence)))

    for secured in call.payments:
        exposed = _payment_exposed(secured)
        if exposed is not None:
            flag("payment_not_secured", exposed, secured["event_id"])
    for refusal in call.refused:
        flag("deletion_refused", f"the store refused to delete {refusal['key']} (due {refusal['due_at']}) "
             f"from {refusal['first_refused_at']}: {refusal['answer']}", refusal["event_id"])  # fmt: skip
    tables = _tables()
    for key, archived in call.archived.items():
        kind = tables.archived[archived["type"]]
        if kind.needs_disclosure:  # its archived event names the recording event the disclosure verified
            verified = call.verified.get(str(archived["recording_event_id"]))
            if verified is None:
                flag("archived_without_disclosure", f"{key} was archived with no disclosure.verified",
                     archived["event_id"])  # fmt: skip
            elif _at(verified["played_at"]) > _at(archived[kind.counts_from]):
                flag("disclosure_after_start", f"the disclosure of {key} began after the recording",
                     archived["event_id"], verified["event_id"])  # fmt: skip
        named = archived.get("policy_version")
        if named is not None and named not in known_versions:
            flag("unknown_policy_version", f"{key} was dated by version {named} of {call.tenant}'s policy, "
                 "which no policy.changed in the log states", archived["event_id"])  # fmt: skip
        due, _ = _due(archived, history, defaults, as_of)
        deleted = call.deleted.get(key)
        if deleted is None:
            if as_of > due + tolerance and not _held_throughout(call.holds, due, as_of):
                flag("not_deleted", f"{key} was due at {archived['expires_at']} and no deletion is logged",
                     archived["event_id"])  # fmt: skip
            continue
        deleted_at = _at(deleted["deleted_at"])
        lateness = (deleted_at - due).total_seconds()
        result.lateness_histogram[_bucket(max(0.0, lateness))] += 1
        result.lateness_log2[max(0, math.ceil(math.log2(max(1.0, lateness))))] += 1
        # An erasure or an objection deletes before the date on purpose; only retention may not.
        if deleted_at < due and deleted.get("reason", "retention_elapsed") == "retention_elapsed":
            flag("deleted_early", f"{key} was deleted {-lateness:.0f} s before its date", deleted["event_id"])
        if lateness > tolerance.total_seconds() and not _held_throughout(
            call.holds, due, deleted_at - tolerance
        ):
            detail = f"{key} was deleted {lateness:.0f} s after its date with no hold covering it"
            flag("late_deletion", detail, archived["event_id"], deleted["event_id"])
        else:
            result.deletions_on_time += 1
        hold = _hold_at(call.holds, deleted_at)
        if hold is not None:
            flag("deleted_during_hold", f"{key} was deleted while a legal hold was in force",
                 hold, deleted["event_id"])  # fmt: skip
    for access in call.accesses:
        when = _at(access["occurred_at"])
        # Audio after the recording's deletion, or anything else after the metadata's.
        erased = _erased_by_access(tables, str(access.get("what", "audio")))
        gone = [d for d in call.deleted.values() if d["type"] in erased and _at(d["deleted_at"]) <= when]
        if gone:
            what = access.get("what", "audio")
            flag("access_after_deletion", f"the call's {what} was accessed after its deletion",
                 gone[0]["event_id"], access["event_id"])  # fmt: skip
        outside = _outside_rights(access, call.tenant)
        if outside is not None:
            flag("access_outside_rights", outside, access["event_id"])
        site, country = access.get("site"), access.get("site_country")
        result.accesses_by_site[f"{site} ({country})" if site else "no site"] += 1
        if site and country and not in_eea(country) and site not in allowed_sites_at(history, when):
            flag("access_from_site_not_allowed", f"{access.get('accessed_by')} read the call's "
                 f"{access.get('what', 'audio')} from {site} ({country}), outside the EEA, which tenant "
                 f"{call.tenant!r} did not allow then", access["event_id"])  # fmt: skip
    return found
