"""Card data never archived: the outcome of payment calls through the worker's logic in memory."""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta
from typing import Any

import pytest

from callvault.contract.fields import format_rfc3339
from callvault.rules.audit_replay import replay
from callvault.settings import Settings
from callvault.simulation.audio import make_wav
from callvault.testing import Harness
from tests.integration.helpers import CallScript
from tests.unit.test_subjects_in_memory import keys, new_number


@pytest.fixture
async def h() -> Any:
    async with Harness() as harness:
        yield harness


def event(call: CallScript, type_: str, after_s: float, **fields: Any) -> dict[str, Any]:
    """An event `after_s` seconds into the recording."""
    return {
        "type": type_, "event_id": str(uuid.uuid4()), "call_id": call.call_id, "tenant": call.tenant,
        "occurred_at": format_rfc3339(call.recording_start + timedelta(seconds=after_s)), **fields,
    }  # fmt: skip


def paused(call: CallScript, s: float) -> dict[str, Any]:
    return event(call, "recording.paused", s, mode="silence")


def resumed(call: CallScript, s: float) -> dict[str, Any]:
    return event(call, "recording.resumed", s, mode="silence")


def payment(call: CallScript, start: float, end: float | None) -> list[dict[str, Any]]:
    out = [event(call, "payment.started", start, payment_id="pay-1")]
    return out + ([event(call, "payment.ended", end, payment_id="pay-1")] if end is not None else [])


def recording(*silent: tuple[float, float], seconds: float = 30.0, marker_hz: float | None = None) -> bytes:
    """The call's 30 s of audio, silent (down to a line's noise floor) in these spans of seconds."""
    return make_wav(int(uuid.uuid4().int % 10_000), seconds, silent, marker_hz)


# case: (audio, pause mode, marker tone declared on the pause, expected outcome)
CASES: dict[str, tuple[bytes, str, float | None, str]] = {
    "no payment": (recording(), "silence", None, "archived"),
    "clean": (recording((0, 25)), "silence", None, "archived"),
    "resume forgotten": (recording((0, 30)), "silence", None, "archived"),
    "pause late": (recording((0.5, 25)), "silence", None, "card_data_exposed"),
    "no pause at all": (recording(), "silence", None, "card_data_exposed"),
    "end never comes": (recording((0, 25)), "silence", None, "card_data_exposed"),
    "pause claimed, audio speech": (recording(), "silence", None, "pause_not_silent"),
    "speech leaks at the pause's end": (recording((0, 21)), "silence", None, "pause_not_silent"),
    "the declared marker tone": (recording((0, 25), marker_hz=1000), "silence", 1000.0, "archived"),
    "a tone not declared": (recording((0, 25), marker_hz=1000), "silence", None, "pause_not_silent"),
    "skip: the span left out": (recording(seconds=5.0), "skip", None, "archived"),
    "skip: the span still there": (recording(), "skip", None, "pause_not_silent"),
}


def timeline(case: str, c: CallScript, mode: str, marker: float | None) -> list[dict[str, Any]]:
    pause = event(c, "recording.paused", -5, mode=mode, **({"marker_tone_hz": marker} if marker else {}))
    resume = event(c, "recording.resumed", 25, mode=mode)
    return {
        "no payment": [],
        "resume forgotten": [pause, *payment(c, -2, 20)],
        "pause late": [*payment(c, -2, 20), paused(c, 0.5), resumed(c, 25)],  # half a second in
        "no pause at all": payment(c, -2, 20),
        "end never comes": [pause, *payment(c, -2, None), resume],
    }.get(case, [pause, *payment(c, -2, 20), resume])


def outcome(h: Harness, call: CallScript) -> str:
    if "recording.archived" in h.types(call.call_id):
        return "archived"
    rejected = h.lifecycle(call.call_id, "recording.rejected")
    return str(rejected[0]["reason"]) if rejected else "pending"


@pytest.mark.parametrize("case", list(CASES))
async def test_payment_outcomes(h: Harness, case: str) -> None:
    audio, mode, marker, expected = CASES[case]
    call = CallScript(
        call_id=f"c-{uuid.uuid4().hex[:10]}", caller=new_number(), start=h.clock.now(), audio=audio
    )
    h.upload(call.staging_key, call.audio)
    await h.send(
        call.started(), call.disclosure(), *timeline(case, call, mode, marker), call.stored(), call.ended()
    )
    await h.advance(minutes=6)  # past the grace: every verdict is final
    assert outcome(h, call) == expected
    if expected != "archived":
        assert keys(h, h.settings.staging_bucket, call) == [], "the source is deleted at once"
        assert keys(h, h.settings.recordings_bucket, call) == []
        (rejected,) = h.lifecycle(call.call_id, "recording.rejected")
        assert "card data" in rejected["detail"]
        assert "payment.secured" not in h.types(call.call_id)
        (meta,) = h.lifecycle(call.call_id, "metadata.archived")  # the call is recorded, its audio not
    elif case != "no payment":
        (secured,) = h.lifecycle(call.call_id, "payment.secured")
        assert secured["audio_checked"] and len(secured["windows"]) == 1 and len(secured["pauses"]) == 1
        if mode == "silence":
            assert secured["loudest_paused_dbfs"] < h.settings.pause_silence_dbfs
    else:
        assert "payment.secured" not in h.types(call.call_id)


async def test_a_not_silent_pause_says_how_loud_it_was(h: Harness) -> None:
    audio, mode, _, _ = CASES["pause claimed, audio speech"]
    call = CallScript(
        call_id=f"c-{uuid.uuid4().hex[:10]}", caller=new_number(), start=h.clock.now(), audio=audio
    )
    h.upload(call.staging_key, call.audio)
    await h.send(call.started(), call.disclosure(), *timeline("clean", call, mode, None), call.stored())
    (rejected,) = h.lifecycle(call.call_id, "recording.rejected")
    assert rejected["reason"] == "pause_not_silent"
    loud = float(rejected["detail"].split("peaks at ")[1].split(" dBFS")[0])
    assert -30 < loud < 0, rejected["detail"]  # the tone the simulator writes is about -14 dBFS


async def test_a_format_not_measured_is_judged_by_its_events_and_says_so(h: Harness) -> None:
    call = CallScript(
        call_id=f"c-{uuid.uuid4().hex[:10]}", caller=new_number(), start=h.clock.now(), audio=recording()
    )
    h.upload(call.staging_key, call.audio)
    stored = {**call.stored(), "content_type": "audio/mpeg"}
    await h.send(call.started(), call.disclosure(), *timeline("clean", call, "silence", None), stored)
    (secured,) = h.lifecycle(call.call_id, "payment.secured")
    assert secured["audio_checked"] is False and "audio/mpeg" in secured["detail"]
    assert secured.get("loudest_paused_dbfs") is None
    assert "recording.archived" in h.types(call.call_id)


async def test_a_client_that_forbids_payments_gets_a_paused_payment_call_rejected(h: Harness) -> None:
    await h.set_policy("acme", payments="forbidden", reason="no payments on recorded lines")
    (changed,) = h.lifecycle(type_="policy.changed")
    calls = []
    for case in ("clean", "no payment"):
        audio = CASES[case][0]
        call = CallScript(
            call_id=f"c-{uuid.uuid4().hex[:10]}", caller=new_number(), start=h.clock.now(), audio=audio
        )
        h.upload(call.staging_key, call.audio)
        await h.send(call.started(), call.disclosure(), *timeline(case, call, "silence", None), call.stored())
        calls.append(call)
    assert outcome(h, calls[0]) == "card_data_exposed"
    assert "forbids payments" in h.lifecycle(calls[0].call_id, "recording.rejected")[0]["detail"]
    assert outcome(h, calls[1]) == "archived", "a call with no payment is not touched by the rule"
    assert changed["changes"]["payments"] == "forbidden"


async def test_a_late_payment_event_erases_an_archived_recording(h: Harness) -> None:
    call = CallScript(call_id=f"c-{uuid.uuid4().hex[:10]}", caller=new_number(), start=h.clock.now())
    h.upload(call.staging_key, call.audio)
    await h.send(call.started(), call.disclosure(), call.stored(), call.ended())
    assert outcome(h, call) == "archived"
    await h.send(*payment(call, 0.2, 0.6))  # the platform's payment events arrive late, with no pause
    (proof,) = h.lifecycle(call.call_id, "recording.deleted")
    assert proof["reason"] == "card_data_exposed"
    assert keys(h, h.settings.recordings_bucket, call) == []


async def test_a_payment_event_with_a_card_number_is_a_dead_letter_with_its_digits_redacted(
    h: Harness,
) -> None:
    call = CallScript(call_id=f"c-{uuid.uuid4().hex[:10]}", caller=new_number(), start=h.clock.now())
    card = "4111111111111111"
    await h.send({**event(call, "payment.started", 0), "payment_id": f"card-{card}"})
    (dead,) = h.dead_letters
    assert "13 or more digits" in dead.error and card not in dead.error
    kept = base64.b64decode(dead.value or "") + base64.b64decode(
        dead.key or ""
    )  # as the dead letter holds them
    assert b"card-" in kept and card.encode() not in kept, kept


async def test_the_audit_replay_counts_payment_calls_per_tenant_and_judges_their_evidence_again(
    h: Harness,
) -> None:
    for case in ("clean", "pause late", "pause claimed, audio speech", "no payment"):
        audio, mode, marker, _ = CASES[case]
        call = CallScript(
            call_id=f"c-{uuid.uuid4().hex[:10]}", caller=new_number(), start=h.clock.now(), audio=audio
        )
        h.upload(call.staging_key, call.audio)
        await h.send(call.started(), call.disclosure(), *timeline(case, call, mode, marker), call.stored())
    late = CallScript(call_id=f"c-{uuid.uuid4().hex[:10]}", caller=new_number(), start=h.clock.now())
    h.upload(late.staging_key, late.audio)
    await h.send(late.started(), late.disclosure(), late.stored(), *payment(late, 0.2, 0.6))
    events = h.lifecycle()
    result = replay(events, h.clock.now(), timedelta(minutes=5), h.settings.policy_defaults)
    assert [v.rule for v in result.violations] == []
    assert dict(result.payments_by_tenant["acme"]) == {
        "secured": 1,
        "rejected_card_data_exposed": 1,
        "rejected_pause_not_silent": 1,
        "erased_card_data_exposed": 1,
    }
    # The evidence judged again: a payment.secured whose window ends as its pause does, without the margin
    # (a forged or mistaken proof), is found, and so is one whose paused audio was loud.
    (secured,) = [e for e in events if e["type"] == "payment.secured"]
    resumed_at = secured["pauses"][0]["ended_at"]
    early = {**secured, "windows": [{**secured["windows"][0], "ended_at": resumed_at}]}
    loud = {**secured, "loudest_paused_dbfs": -12.5}
    for forged, said in ((early, "not inside a recording pause"), (loud, "-12.5 dBFS")):
        others = [e for e in events if e["event_id"] != secured["event_id"]]
        found = replay([*others, forged], h.clock.now(), timedelta(minutes=5), h.settings.policy_defaults)
        (violation,) = found.violations
        assert violation.rule == "payment_not_secured" and said in violation.detail, violation.detail


@pytest.mark.parametrize(
    ("case", "proof"), [("clean", "payment.secured"), ("pause claimed, audio speech", "recording.deleted")]
)
async def test_payment_events_after_the_archive_get_the_archived_audio_heard(
    h: Harness, case: str, proof: str
) -> None:
    audio, mode, marker, _ = CASES[case]
    call = CallScript(
        call_id=f"c-{uuid.uuid4().hex[:10]}", caller=new_number(), start=h.clock.now(), audio=audio
    )
    h.upload(call.staging_key, call.audio)
    pause, *pay, resume = timeline("clean", call, mode, marker)
    await h.send(call.started(), call.disclosure(), pause, resume, call.stored())
    assert outcome(h, call) == "archived" and "payment.secured" not in h.types(call.call_id)
    await h.send(*pay)  # the platform's payment events arrive after the archive
    (event,) = h.lifecycle(call.call_id, proof)
    if proof == "recording.deleted":
        assert event["reason"] == "card_data_exposed"
        assert keys(h, h.settings.recordings_bucket, call) == []
    else:
        assert event["audio_checked"] and event["loudest_paused_dbfs"] < -50
        await h.send(*[{**e, "event_id": str(uuid.uuid4())} for e in pay])  # said again: proven once
        assert len(h.lifecycle(call.call_id, proof)) == 1


async def test_a_late_payment_whose_end_never_comes_is_waited_for_one_grace_then_erases(h: Harness) -> None:
    audio, mode, marker, _ = CASES["clean"]
    call = CallScript(
        call_id=f"c-{uuid.uuid4().hex[:10]}", caller=new_number(), start=h.clock.now(), audio=audio
    )
    h.upload(call.staging_key, call.audio)
    pause, started, _, resume = timeline("clean", call, mode, marker)
    await h.send(call.started(), call.disclosure(), pause, resume, call.stored(), started)
    assert outcome(h, call) == "archived" and "recording.deleted" not in h.types(call.call_id)
    await h.advance(minutes=6)  # one grace later, with no payment.ended: the window runs to the end
    (deleted,) = h.lifecycle(call.call_id, "recording.deleted")
    assert deleted["reason"] == "card_data_exposed"


@pytest.mark.parametrize("encryption", ["on", "off"])
@pytest.mark.parametrize("case", ["clean", "pause claimed, audio speech"])
async def test_a_payment_calls_source_is_read_once_where_it_is_sealed(encryption: str, case: str) -> None:
    """Issue 28's cost: sealed, the source is read whole anyway, so its pauses are heard from those bytes
    (one GET of the source, no ranged reads); unsealed (a store-side copy), by range as before. The
    verdict is the same either way."""
    settings = Settings(encryption=encryption, encryption_off_reason="the unsealed path, heard by range")
    async with Harness(settings) as h:
        audio, mode, marker, expected = CASES[case]
        call = CallScript(
            call_id=f"c-{uuid.uuid4().hex[:10]}", caller=new_number(), start=h.clock.now(), audio=audio
        )
        h.upload(call.staging_key, call.audio)
        reads: list[dict[str, Any]] = []

        def seen(params: dict[str, Any], **_: Any) -> None:
            if params.get("Bucket") == h.settings.staging_bucket:
                reads.append(params)

        h.s3.meta.events.register("provide-client-params.s3.GetObject", seen)
        events = timeline(case, call, mode, marker)
        await h.send(call.started(), call.disclosure(), *events, call.stored(), call.ended())
        await h.advance(minutes=6)
        assert outcome(h, call) == expected
        ranged = [r for r in reads if "Range" in r]
        if encryption == "on":
            assert len(reads) == 1 and not ranged, reads
        else:
            assert len(ranged) == 2 and len(reads) == 2, reads  # the header, then the paused span
