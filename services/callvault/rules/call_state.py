"""One call's facts, folded from its events in any order, and what to do next.

The worker keeps a `CallState` per call in a changelogged table. `apply_fact`
folds an event in (ignoring a repeated `event_id`); `next_step` says what the
recording's outcome is, or until when to wait. Both are pure: the worker passes
`now` and does the I/O the step names.

State lives in a Kafka changelog, so it holds no phone number: `call.started`
enters as `StartFacts`, participants already pseudonymized.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from callvault.contract.call_events import (
    AfterStart,
    CallEnded,
    DisclosurePlayed,
    PaymentEnded,
    PaymentStarted,
    RecordingObjected,
    RecordingPaused,
    RecordingResumed,
    RecordingStored,
)
from callvault.contract.fields import CallId, Tenant, Timestamp
from callvault.rules.disclosure import (
    DisclosureDetail,
    DisclosureFact,
    DisclosureVerdict,
    disclosure_verdict,
)
from callvault.rules.pause_audio import PausedPart
from callvault.rules.payments import PaymentVerdict, Span, judge, pause_spans, payment_windows
from callvault.rules.retention import RetentionClass, RetentionPolicy

SEEN_IDS_KEPT = 256


class StartFacts(BaseModel):
    """`call.started` without personal data: participants as HMAC pseudonyms."""

    model_config = ConfigDict(frozen=True)

    type: Literal["call.started"] = "call.started"
    event_id: str
    call_id: CallId
    tenant: Tenant
    occurred_at: Timestamp
    direction: Literal["inbound", "outbound"]
    caller: str
    callee: str
    agent_id: str
    language: str
    queue: str | None = None
    # The agent as a data subject (`rules.pseudonym.agent_pseudonym`): indexed, and checked against
    # restrictions and objections, like the participants. Absent from states written before.
    agent: str | None = None


CallFact = Annotated[StartFacts | AfterStart, Field(discriminator="type")]


class Outcome(StrEnum):
    ARCHIVED = "archived"
    DISCLOSURE_MISSING = "disclosure_missing"
    OBJECTED = "objected"
    CHECKSUM_MISMATCH = "checksum_mismatch"
    SOURCE_MISSING = "source_missing"
    RETENTION_ELAPSED = "retention_elapsed"
    SOURCE_UNREADABLE = "source_unreadable"
    RECORDING_NOT_ALLOWED = "recording_not_allowed"
    CARD_DATA_EXPOSED = "card_data_exposed"  # additive (2026-12-06): a payment outside a pause
    PAUSE_NOT_SILENT = "pause_not_silent"  # additive (2026-12-06): a paused span of the audio is not silent


# A producer may fix these by uploading again and sending a new `recording.stored`.
RETRYABLE_OUTCOMES = frozenset({Outcome.CHECKSUM_MISMATCH, Outcome.SOURCE_MISSING, Outcome.SOURCE_UNREADABLE})


class CallState(BaseModel):
    model_config = ConfigDict(frozen=True)

    call_id: CallId
    tenant: Tenant
    seen_event_ids: tuple[str, ...] = ()
    started: StartFacts | None = None
    ended: CallEnded | None = None
    disclosures: tuple[DisclosurePlayed, ...] = ()
    objected: RecordingObjected | None = None
    # Additive (2026-12-06): the recording's pauses and the call's payment windows (`rules.payments`).
    pauses: tuple[RecordingPaused | RecordingResumed, ...] = ()
    payments: tuple[PaymentStarted | PaymentEnded, ...] = ()
    recording: RecordingStored | None = None
    recording_seen_at: Timestamp | None = None
    recording_outcome: Outcome | None = None
    recording_decided_at: Timestamp | None = None
    source_checks: int = 0
    source_retry_at: Timestamp | None = None
    metadata_sha256: str | None = None
    metadata_key: str | None = None
    settled_at: Timestamp | None = None
    recording_erased_at: Timestamp | None = None  # an objection after archiving erased it
    # Additive (2026-12-06): `payment.secured` was emitted for the archived recording (its audio heard).
    payment_proven: bool = False
    # Additive (2026-12-06): when the newest payment event arrived; a late payment's end is waited for
    # one grace from then, as a disclosure is.
    payment_seen_at: Timestamp | None = None
    # The due dates written into the archived objects' tags, and the client-policy versions
    # that gave them: a rewrite of the metadata may only bring its date earlier.
    recording_expires_at: Timestamp | None = None
    recording_policy_version: int | None = None
    metadata_expires_at: Timestamp | None = None
    metadata_policy_version: int | None = None

    @property
    def queue(self) -> str | None:
        """The queue `call.started` named; None until it arrives (the tenant's terms apply then)."""
        return self.started.queue if self.started is not None else None

    @property
    def recording_pending(self) -> bool:
        return self.recording is not None and self.recording_outcome is None

    @property
    def participants(self) -> tuple[str, ...]:
        """The participants' pseudonyms, once `call.started` has named them."""
        if self.started is None:
            return ()
        return tuple(sorted({self.started.caller, self.started.callee}))

    @property
    def subjects(self) -> tuple[str, ...]:
        """Everyone the call's data is about, by pseudonym: the participants, and the agent."""
        agent = self.started.agent if self.started is not None else None
        return tuple(sorted({*self.participants, *([agent] if agent else [])}))

    @property
    def recording_final(self) -> bool:
        return self.recording_outcome is not None and self.recording_outcome not in RETRYABLE_OUTCOMES

    def disclosure_facts(self) -> list[DisclosureFact]:
        return [
            DisclosureFact(str(d.event_id), d.occurred_at, d.completed, d.prompt_id) for d in self.disclosures
        ]

    def verdict(self) -> DisclosureVerdict:
        assert self.recording is not None
        return disclosure_verdict(self.disclosure_facts(), self.recording.recording_started_at)

    def call_started_at(self) -> datetime | None:
        """The call's start: from `call.started`, else the best other witness."""
        if self.started is not None:
            return self.started.occurred_at
        if self.recording is not None:
            return self.recording.recording_started_at
        if self.ended is not None:
            return self.ended.occurred_at - timedelta(seconds=self.ended.duration_s)
        return None


class TenantConflict(ValueError):
    """An event names a call that belongs to another tenant: it must not join it."""


def apply_fact(state: CallState | None, fact: CallFact, now: datetime) -> tuple[CallState, bool]:
    """Fold one event into the call's state. Returns the state and whether anything changed."""
    if state is None:
        state = CallState(call_id=fact.call_id, tenant=fact.tenant)
    elif fact.tenant != state.tenant:
        raise TenantConflict(
            f"call_id {fact.call_id!r} belongs to tenant {state.tenant!r}; "
            f"an event of tenant {fact.tenant!r} cannot join it"
        )
    event_id = str(fact.event_id)
    if event_id in state.seen_event_ids:
        return state, False
    seen = (*state.seen_event_ids, event_id)[-SEEN_IDS_KEPT:]
    update: dict[str, object] = {"seen_event_ids": seen}
    match fact:
        case StartFacts():
            if state.started is None:
                update["started"] = fact
        case DisclosurePlayed():
            update["disclosures"] = (*state.disclosures, fact)
        case CallEnded():
            if state.ended is None:
                update["ended"] = fact
        case RecordingObjected():
            if state.objected is None:
                update["objected"] = fact
        case RecordingStored():
            update.update(_take_recording(state, fact, now))
        case RecordingPaused() | RecordingResumed():
            update["pauses"] = (*state.pauses, fact)
        case PaymentStarted() | PaymentEnded():
            update["payments"] = (*state.payments, fact)
            update["payment_seen_at"] = now
    return state.model_copy(update=update), True


def _take_recording(state: CallState, fact: RecordingStored, now: datetime) -> dict[str, object]:
    if state.recording is None:
        return {"recording": fact, "recording_seen_at": now}
    if state.recording_final:
        return {}  # decided for good; a late copy of the event changes nothing
    # Pending, or a retryable failure the producer is answering with a new upload.
    return {
        "recording": fact,
        "recording_seen_at": state.recording_seen_at if state.recording_pending else now,
        "recording_outcome": None,
        "recording_decided_at": None,
        "source_checks": 0,
        "source_retry_at": None,
    }


@dataclass(frozen=True, slots=True)
class Archive:
    """Copy the recording: it is compliant and within retention."""

    evidence: DisclosureFact
    expires_at: datetime
    # The card-data verdict when the recording spans a payment: its paused audio is measured before the
    # copy (`rules.pause_audio`), and `payment.secured` proves it after.
    payments: PaymentVerdict | None = None


@dataclass(frozen=True, slots=True)
class Reject:
    """Archive nothing of the recording; delete its source (the reasons here all do)."""

    reason: Outcome
    detail: str
    verdict: DisclosureDetail | None = None


@dataclass(frozen=True, slots=True)
class Wait:
    until: datetime


@dataclass(frozen=True, slots=True)
class Nothing:
    pass


RecordingStep = Archive | Reject | Wait | Nothing


def next_recording_step(
    state: CallState,
    now: datetime,
    policy: RetentionPolicy,
    grace: timedelta,
    subject_objected: bool = False,
    recording_allowed: bool = True,
    payment_margin: timedelta = timedelta(seconds=2),
    payments_forbidden: bool = False,
    judged: datetime | None = None,
) -> RecordingStep:
    """The outcome of a pending recording, in the order the contract's table implies.

    `judged`: the time the grace is judged at (when the message being processed reached Kafka;
    `stream.processor.judged_at`), no later than `now`; None: `now`. Retention and source
    retries stay on the clock: a recording is never archived past its retention by a backlog.

    `subject_objected`: a participant has objected through a subject request
    (`subject.object`), which covers every later call of theirs.
    `recording_allowed`: False when the tenant's client policy (or its queue's rule) forbids recording.
    `payments_forbidden`: the client policy says `payments: forbidden`: any payment window rejects it.
    """
    if not state.recording_pending:
        return Nothing()
    rec = state.recording
    assert rec is not None and state.recording_seen_at is not None
    if state.source_retry_at is not None and now < state.source_retry_at:
        return Wait(state.source_retry_at)
    if state.objected is not None:
        return Reject(Outcome.OBJECTED, "the participant objected to the recording")
    if subject_objected:
        return Reject(Outcome.OBJECTED, "a participant objected to being recorded (subject request)")
    if not recording_allowed:
        return Reject(
            Outcome.RECORDING_NOT_ALLOWED,
            f"the client policy of tenant {state.tenant!r} does not allow recording its calls",
        )
    expires = policy.expires_at(RetentionClass.RECORDING, rec.recording_started_at)
    if now >= expires:
        return Reject(
            Outcome.RETENTION_ELAPSED,
            f"the recording began {rec.recording_started_at:%Y-%m-%d} and its retention "
            f"ended at {expires:%Y-%m-%dT%H:%M:%SZ}, before it reached callvault",
        )
    verdict = state.verdict()
    grace_ends = state.recording_seen_at + grace
    judged = now if judged is None else min(judged, now)
    if verdict.compliant:
        assert verdict.evidence is not None
        paid = payment_verdict(state, payment_margin, judged, grace_ends)
        if paid.state == "waiting":
            assert paid.until is not None
            return Wait(paid.until)
        if paid.state == "exposed":
            return Reject(Outcome.CARD_DATA_EXPOSED, paid.detail)
        if paid.state == "secured" and payments_forbidden:
            return Reject(
                Outcome.CARD_DATA_EXPOSED,
                f"the client policy of tenant {state.tenant!r} forbids payments in recorded calls, "
                "paused or not",
            )
        return Archive(verdict.evidence, expires, paid if paid.state == "secured" else None)
    if judged < grace_ends:
        return Wait(grace_ends)
    return Reject(Outcome.DISCLOSURE_MISSING, _missing_sentence(verdict.detail), verdict.detail)


def _missing_sentence(detail: DisclosureDetail) -> str:
    return {
        DisclosureDetail.NONE: "no recording disclosure was reported for the call",
        DisclosureDetail.INCOMPLETE: "the recording disclosure was interrupted before it ended",
        DisclosureDetail.AFTER_START: "the recording disclosure began after the recording had started",
    }.get(detail, "no compliant recording disclosure")


def source_retry_at(checks_done: int, now: datetime, retries: int, backoff: timedelta) -> datetime | None:
    """When to look for a missing source again (doubling backoff), or None to give up."""
    if checks_done > retries:
        return None
    return now + backoff * (2 ** (checks_done - 1))


def metadata_ready(state: CallState, now: datetime, grace: timedelta) -> bool:
    """Metadata is written once, when the call has said what it will say.

    That is once the recording's outcome is final (or the call ended with none),
    and both its start and its end are known; a missing `call.started` or
    `call.ended` is waited for one grace period, then the best witness is used.
    """
    since = _metadata_wait_since(state)
    if since is None:
        return False
    if state.started is not None and state.ended is not None:
        return True
    return now >= since + grace


def _metadata_wait_since(state: CallState) -> datetime | None:
    """From when the metadata could be written, or None while the recording is undecided."""
    if state.recording is not None:
        return state.recording_decided_at if state.recording_final else None
    return state.ended.occurred_at if state.ended is not None else None


def evict_at(state: CallState, policy: RetentionPolicy, ttl: timedelta) -> datetime | None:
    """When the worker may forget the call.

    A settled call is kept `ttl` longer to absorb late duplicates. An unsettled one
    (a recording that never came, a failed upload never resent) is kept until its
    recording could no longer be archived anyway: the recording retention from the
    call's start.
    """
    if state.settled_at is not None:
        return state.settled_at + ttl
    started = state.call_started_at()
    if started is None:
        return None
    return policy.expires_at(RetentionClass.RECORDING, started)


def wake_at(
    state: CallState,
    now: datetime,
    policy: RetentionPolicy,
    grace: timedelta,
    ttl: timedelta,
    recording_allowed: bool = True,
    payment_margin: timedelta = timedelta(seconds=2),
    judged: datetime | None = None,
) -> datetime | None:
    """The next moment the call needs the worker's attention without any new event.

    `judged`: the time the message just processed was judged at (`next_recording_step`), so that
    what it left waiting gets a wake-up. Judged by the clock instead, a grace that had passed
    meanwhile gave no moment at all: a worker reading a backlog left such a call waiting for a
    wake-up that never came (seen in `tests/faults/test_killed_worker.py`: calls whose disclosure
    was missing never rejected). A moment already past is due as soon as the input is read up to it.
    """
    moments: list[datetime] = []
    judged = now if judged is None else min(judged, now)
    step = next_recording_step(
        state,
        now,
        policy,
        grace,
        recording_allowed=recording_allowed,
        payment_margin=payment_margin,
        judged=judged,
    )
    if isinstance(step, Wait):
        moments.append(step.until)
    since = _metadata_wait_since(state)
    if state.metadata_sha256 is None and since is not None:
        moments.append(since + grace)
    forget = evict_at(state, policy, ttl)
    if forget is not None:
        moments.append(forget)
    late = late_payment_wait(state, payment_margin, judged, grace)
    if late is not None:
        moments.append(late)
    return min(moments) if moments else None


def payment_verdict(
    state: CallState, margin: timedelta, now: datetime, wait_until: datetime, *, ended: bool = False
) -> PaymentVerdict:
    """The card-data verdict of the call's recording (`rules.payments`); an event's place in the recording
    is its `offset_ms` where the platform gave one, else when it happened. `ended`: judge a payment not
    ended yet as running to the recording's end (after the archive, there is nothing left to wait for)."""
    rec = state.recording
    assert rec is not None
    start, end = rec.recording_started_at, rec.recording_ended_at

    def placed(event: RecordingPaused | RecordingResumed) -> datetime:
        if event.offset_ms is None:
            return event.occurred_at
        return start + timedelta(milliseconds=event.offset_ms)

    spans = pause_spans([(placed(p), isinstance(p, RecordingPaused)) for p in state.pauses], end)
    windows = payment_windows(
        [(p.occurred_at, isinstance(p, PaymentStarted), p.payment_id) for p in state.payments]
    )
    if ended:
        windows = tuple(w if w.end is not None else Span(w.start, max(w.start, end)) for w in windows)
    return judge(spans, windows, margin=margin, recording=Span(start, end), now=now, wait_until=wait_until)


def paused_parts(state: CallState) -> list[PausedPart]:
    """The call's pauses as they lie in the audio (`rules.pause_audio`), in order; a pause never resumed
    runs to the recording's end. A skip-mode pause leaves its span out of the audio, so what follows it
    sits earlier in the audio than on the clock."""
    rec = state.recording
    assert rec is not None
    start = rec.recording_started_at
    recording_ms = _ms(rec.recording_ended_at - start)

    def at_ms(event: RecordingPaused | RecordingResumed) -> int:
        return event.offset_ms if event.offset_ms is not None else _ms(event.occurred_at - start)

    ordered = sorted(state.pauses, key=lambda e: (at_ms(e), isinstance(e, RecordingResumed)))
    parts: list[PausedPart] = []
    opened: RecordingPaused | None = None
    for event in ordered:
        if isinstance(event, RecordingPaused) and opened is None:
            opened = event
        elif isinstance(event, RecordingResumed) and opened is not None:
            parts.append(_part(opened, at_ms(opened), at_ms(event), True))
            opened = None
    if opened is not None:
        parts.append(_part(opened, at_ms(opened), max(at_ms(opened), recording_ms), False))
    placed: list[PausedPart] = []
    skipped = 0
    for part in parts:  # clock milliseconds to audio milliseconds
        placed.append(replace(part, start_ms=part.start_ms - skipped, end_ms=part.end_ms - skipped))
        if part.mode == "skip":  # only what lay inside the recording was left out of it
            skipped += max(0, min(part.end_ms, recording_ms) - max(part.start_ms, 0))
    return placed


def _part(paused: RecordingPaused, start_ms: int, end_ms: int, resumed: bool) -> PausedPart:
    return PausedPart(start_ms, end_ms, paused.mode, paused.marker_tone_hz, start_ms, end_ms, resumed)


def _ms(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1000)


def _late_payment_verdict(
    state: CallState, margin: timedelta, now: datetime, grace: timedelta
) -> PaymentVerdict | None:
    """The card-data verdict of payment events that came after the archive; None when there is none to
    judge. A window whose end has not come is waited for one grace from the newest payment event, then
    runs to the recording's end (callvault fails closed)."""
    if state.recording_outcome is not Outcome.ARCHIVED or state.recording_erased_at is not None:
        return None
    if not state.payments:
        return None
    wait_until = (state.payment_seen_at or now) + grace
    return payment_verdict(state, margin, now, wait_until, ended=now >= wait_until)


def card_data_erases_recording(state: CallState, margin: timedelta, now: datetime, grace: timedelta) -> bool:
    """A payment event arriving after the archive shows card data in the recording: it must go now."""
    verdict = _late_payment_verdict(state, margin, now, grace)
    return verdict is not None and verdict.state == "exposed"


def late_payment_to_prove(state: CallState, margin: timedelta, now: datetime, grace: timedelta) -> bool:
    """Payment events came after the archive and put every window inside a pause: the archived audio
    must still be heard and the payment proven (`payment.secured`), as it would have been before."""
    if state.payment_proven:
        return False
    verdict = _late_payment_verdict(state, margin, now, grace)
    return verdict is not None and verdict.state == "secured"


def late_payment_wait(
    state: CallState, margin: timedelta, now: datetime, grace: timedelta
) -> datetime | None:
    """When to judge late payment events again: a window's end is still awaited."""
    verdict = _late_payment_verdict(state, margin, now, grace)
    return verdict.until if verdict is not None and verdict.state == "waiting" else None


def objection_erases_recording(state: CallState) -> bool:
    """A participant objected after the recording was archived: it must go now, not at its date."""
    return (
        state.objected is not None
        and state.recording_outcome is Outcome.ARCHIVED
        and state.recording_erased_at is None
    )


def is_settled(state: CallState) -> bool:
    """Nothing more is expected: the recording decided for good and the metadata written."""
    return state.metadata_sha256 is not None and (state.recording is None or state.recording_final)
