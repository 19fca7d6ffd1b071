"""What to simulate: a deterministic list of calls, their events and the outcome each should get.

Pure: seed, options and `now` in, plan out. The publisher does the I/O. Each
call carries the outcome the contract promises for it, so the demo and tests
compare what callvault did with what it had to do.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from callvault.contract.fields import format_rfc3339
from callvault.rules.retention import RetentionClass, RetentionPolicy
from callvault.simulation.audio import make_wav

SCENARIOS = (
    "compliant",
    "late_disclosure",  # compliant, but its disclosure event arrives after the recording's
    "missing",
    "after_start",
    "objected",
    "checksum_mismatch",
    *(f"payment_{kind}" for kind in ("clean", "resume_forgotten", "pause_late", "not_silent", "late_events")),
)
# Each payment call's outcome under the contract (issue 28); `payment_late_events` sends its payment events
# after the recording's, so the archived audio is heard then.
PAYMENT_OUTCOMES = {
    "payment_clean": "archived",
    "payment_resume_forgotten": "archived",
    "payment_pause_late": "card_data_exposed",
    "payment_not_silent": "pause_not_silent",
    "payment_late_events": "archived",
}
PAYMENT_SECONDS = 12.0  # a payment call's recording: pause at 2 s, payment 4.5-8 s, resume at 10.5 s


@dataclass(frozen=True)
class TrafficOptions:
    calls: int = 100
    tenants: tuple[str, ...] = ("acme", "globex")
    missing: float = 0.1
    late: float = 0.1
    after_start: float = 0.05
    objected: float = 0.03
    mismatch: float = 0.0
    payments: float = 0.0  # share of calls taking a payment, spread over the payment scenarios
    duplicates: float = 0.05
    backdate_months: int = 0
    backdated: float = 0.1
    audio_seconds: float = 3.0
    seed: int = 1
    staging_bucket: str = "callvault-staging"
    run_id: str = ""


@dataclass
class SimulatedCall:
    call_id: str
    tenant: str
    scenario: str
    started_at: datetime
    expected: str  # "archived" or a rejection reason
    audio: bytes
    staging_key: str
    events: list[dict[str, Any]] = field(default_factory=list)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _phone(rng: random.Random) -> str:
    return "+32" + str(rng.randrange(400_000_000, 499_999_999))


def _scenario(rng: random.Random, opts: TrafficOptions) -> str:
    roll = rng.random()
    if roll < opts.payments:
        return rng.choice(sorted(PAYMENT_OUTCOMES))
    roll -= opts.payments
    for name, share in (
        ("missing", opts.missing),
        ("late_disclosure", opts.late),
        ("after_start", opts.after_start),
        ("objected", opts.objected),
        ("checksum_mismatch", opts.mismatch),
    ):
        if roll < share:
            return name
        roll -= share
    return "compliant"


def plan_traffic(
    opts: TrafficOptions,
    now: datetime,
    policy: RetentionPolicy,
    by_tenant: Mapping[str, RetentionPolicy] | None = None,
) -> list[SimulatedCall]:
    """The calls to send, each with the outcome callvault must give it.

    `by_tenant`: the terms of tenants with a client policy (the others have `policy`'s)."""
    rng = random.Random(opts.seed)
    run = opts.run_id or hashlib.sha1(f"{opts.seed}{now.isoformat()}".encode()).hexdigest()[:8]
    calls = []
    for n in range(opts.calls):
        scenario = _scenario(rng, opts)
        tenant = opts.tenants[n % len(opts.tenants)]
        call_id = f"sim-{run}-{n:06d}"
        paying = scenario in PAYMENT_OUTCOMES  # its recording is as long as its audio, at least 12 s
        talk_s = int(max(PAYMENT_SECONDS, opts.audio_seconds)) if paying else 20 + rng.randrange(0, 400)
        if opts.backdate_months and rng.random() < opts.backdated:
            started = now - timedelta(days=rng.uniform(1, 31 * opts.backdate_months))
        else:
            started = now - timedelta(seconds=talk_s + 10)
        terms = (by_tenant or {}).get(tenant, policy)
        calls.append(_call(rng, opts, call_id, tenant, scenario, started, talk_s, now, terms))
    return calls


def _call(
    rng: random.Random,
    opts: TrafficOptions,
    call_id: str,
    tenant: str,
    scenario: str,
    started: datetime,
    talk_s: int,
    now: datetime,
    policy: RetentionPolicy,
) -> SimulatedCall:
    ts = format_rfc3339
    rec_start = started + timedelta(seconds=6)
    rec_end = rec_start + timedelta(seconds=talk_s)
    if scenario in PAYMENT_OUTCOMES:
        audio = make_wav(rng.getrandbits(32), talk_s, _payment_silence(scenario, talk_s))
    else:
        audio = make_wav(rng.getrandbits(32), opts.audio_seconds)
    key = f"{tenant}/{call_id}.wav"
    sha = hashlib.sha256(audio).hexdigest()
    if scenario == "checksum_mismatch":
        sha = hashlib.sha256(audio + b"x").hexdigest()
    base = {"call_id": call_id, "tenant": tenant}
    started_ev = {
        **base, "type": "call.started", "event_id": _uuid(rng), "occurred_at": ts(started),
        "direction": rng.choice(["inbound", "outbound"]), "caller": _phone(rng),
        "callee": _phone(rng), "agent_id": f"agent-{rng.randrange(1, 40):03d}", "language": "nl-BE",
    }  # fmt: skip
    played_at = rec_start + timedelta(seconds=3) if scenario == "after_start" else started
    disclosure = {
        **base, "type": "disclosure.played", "event_id": _uuid(rng), "occurred_at": ts(played_at),
        "prompt_id": "rec-notice-nl-v2", "language": "nl-BE", "completed": True, "duration_ms": 4200,
    }  # fmt: skip
    stored = {
        **base, "type": "recording.stored", "event_id": _uuid(rng), "occurred_at": ts(rec_end),
        "source_uri": f"s3://{opts.staging_bucket}/{key}", "sha256": sha, "size_bytes": len(audio),
        "content_type": "audio/wav", "recording_started_at": ts(rec_start),
        "recording_ended_at": ts(rec_end),
    }  # fmt: skip
    ended = {
        **base, "type": "call.ended", "event_id": _uuid(rng),
        "occurred_at": ts(rec_end + timedelta(seconds=2)), "duration_s": float(talk_s + 8),
    }  # fmt: skip
    objection = {**base, "type": "recording.objected", "event_id": _uuid(rng), "occurred_at": ts(started)}
    events: list[dict[str, Any]] = [started_ev]
    if scenario == "late_disclosure":
        events += [stored, disclosure, ended]
    elif scenario == "missing":
        events += [stored, ended]
    else:
        events += [disclosure, stored, ended]
    if scenario == "objected":
        events.insert(1, objection)
    if scenario in PAYMENT_OUTCOMES:
        pay = _payment_events(rng, scenario, base, rec_start)
        late = scenario == "payment_late_events"  # its payment events come after the recording's
        events[1:1] = [e for e in pay if not late or e["type"].startswith("recording.")]
        events += [e for e in pay if late and e["type"].startswith("payment.")]
    if rng.random() < opts.duplicates:
        events.append(dict(rng.choice(events)))
    return SimulatedCall(
        call_id=call_id,
        tenant=tenant,
        scenario=scenario,
        started_at=started,
        expected=_expected(scenario, rec_start, now, policy),
        audio=audio,
        staging_key=key,
        events=events,
    )


def _payment_silence(scenario: str, seconds: float) -> list[tuple[float, float]]:
    """Where the audio of a payment call is silent (seconds): its pause, unless the pause was not kept."""
    return {
        "payment_not_silent": [],
        "payment_resume_forgotten": [(2.0, seconds)],
        "payment_pause_late": [(5.0, 10.5)],
    }.get(scenario, [(2.0, 10.5)])


def _payment_events(
    rng: random.Random, scenario: str, base: dict[str, str], rec_start: datetime
) -> list[dict[str, Any]]:
    """The pause and payment events of a payment call, at seconds into its recording."""

    def at(kind: str, s: float, **fields: Any) -> dict[str, Any]:
        when = format_rfc3339(rec_start + timedelta(seconds=s))
        return {**base, "type": kind, "event_id": _uuid(rng), "occurred_at": when, **fields}

    pause_at = 5.0 if scenario == "payment_pause_late" else 2.0
    out = [at("recording.paused", pause_at, mode="silence", offset_ms=int(pause_at * 1000))]
    if scenario != "payment_resume_forgotten":
        out.append(at("recording.resumed", 10.5, mode="silence", offset_ms=10_500))
    payment_id = f"pay-{rng.randrange(10**6):06d}"
    return out + [
        at("payment.started", 4.5, payment_id=payment_id),
        at("payment.ended", 8.0, payment_id=payment_id),
    ]


def _expected(scenario: str, rec_start: datetime, now: datetime, policy: RetentionPolicy) -> str:
    if scenario == "objected":
        return "objected"
    if policy.has_elapsed(RetentionClass.RECORDING, rec_start, now):
        return "retention_elapsed"
    return {
        "compliant": "archived",
        "late_disclosure": "archived",
        "missing": "disclosure_missing",
        "after_start": "disclosure_missing",
        "checksum_mismatch": "checksum_mismatch",
        **PAYMENT_OUTCOMES,
    }[scenario]
