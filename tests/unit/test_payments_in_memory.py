"""Card data never archived: the outcome of payment calls through the worker's logic in memory."""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta
from typing import Any

import pytest

from callvault.contract.fields import format_rfc3339
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


def outcome(h: Harness, call: CallScript) -> str:
    if "recording.archived" in h.types(call.call_id):
        return "archived"
    rejected = h.lifecycle(call.call_id, "recording.rejected")
    return str(rejected[0]["reason"]) if rejected else "pending"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("no payment", "archived"),
        ("clean", "archived"),
        ("resume forgotten", "archived"),
        ("pause late", "card_data_exposed"),
        ("no pause at all", "card_data_exposed"),
        ("end never comes", "card_data_exposed"),
    ],
)
async def test_payment_outcomes(h: Harness, case: str, expected: str) -> None:
    def timeline(c: CallScript) -> list[dict[str, Any]]:
        return {
            "no payment": [],
            "clean": [paused(c, -5), *payment(c, -2, 20), resumed(c, 25)],
            "resume forgotten": [paused(c, -5), *payment(c, -2, 20)],
            "pause late": [*payment(c, -2, 20), paused(c, 0.5), resumed(c, 25)],  # half a second in
            "no pause at all": payment(c, -2, 20),
            "end never comes": [paused(c, -5), *payment(c, -2, None), resumed(c, 25)],
        }[case]

    call = CallScript(call_id=f"c-{uuid.uuid4().hex[:10]}", caller=new_number(), start=h.clock.now())
    h.upload(call.staging_key, call.audio)
    await h.send(call.started(), call.disclosure(), *timeline(call), call.stored(), call.ended())
    await h.advance(minutes=6)  # past the grace: every verdict is final
    assert outcome(h, call) == expected
    if expected == "card_data_exposed":
        assert keys(h, h.settings.staging_bucket, call) == [], "the source is deleted at once"
        assert keys(h, h.settings.recordings_bucket, call) == []
        (rejected,) = h.lifecycle(call.call_id, "recording.rejected")
        assert "card data" in rejected["detail"]


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
