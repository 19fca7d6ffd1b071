"""Commands that prove who sent them (issue 26, item 4), on the in-memory harness.

The harness's worker trusts one key, its own issuer's (`h.settings.command_keys`),
and `h.command` signs with it as the CLI would. A forgery is sent with
`sign=False` or signed by a key the worker does not know. Each forgery must
change nothing (the call is deleted on time, as if the command had never come),
be set aside as a dead letter with a sentence, and leave `command.refused` with
who it claimed to be and why.

On main before this issue (0926656) the harness had no signatures: the unsigned
hold, the hold signed by a stranger and the replayed hold were each carried out
(`legal_hold.placed`, and the call outlived its month).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from callvault.contract.fields import format_rfc3339
from callvault.rules.command_signature import new_identity, sign_document
from callvault.storage.subject_requests import get_request, put_request
from callvault.testing import Harness
from tests.integration.helpers import CallScript
from tests.unit.test_subjects_in_memory import new_number

CALL_ID = "c-signed-1"


@pytest.fixture
async def h() -> Any:
    async with Harness() as harness:
        yield harness


async def archived(h: Harness, call_id: str = CALL_ID, caller: str | None = None) -> CallScript:
    call = CallScript(call_id=call_id, tenant="acme", start=h.clock.now(), caller=caller or new_number())
    h.upload(call.staging_key, call.audio)
    await h.send(call.started(), call.disclosure(), call.stored(), call.ended())
    assert "recording.archived" in h.types(call_id)
    return call


def hold(h: Harness, kind: str = "place", **fields: Any) -> dict[str, Any]:
    return {
        "type": f"legal_hold.{kind}", "event_id": str(uuid.uuid4()), "call_id": CALL_ID, "tenant": "acme",
        "requested_by": "legal@acme", "requested_at": format_rfc3339(h.clock.now()), "reason": "dispute 26",
        **fields,
    }  # fmt: skip


def refusals(h: Harness) -> list[dict[str, Any]]:
    return [e for e in h.events if e["type"] == "command.refused"]


async def assert_deleted_on_time(h: Harness) -> None:
    """Nothing held the call: its recording goes when its month is up."""
    await h.advance(days=31)
    assert "recording.deleted" in h.types(CALL_ID)
    assert not [k for k in h.objects(h.settings.recordings_bucket) if CALL_ID in k]


async def test_a_signed_hold_is_carried_out_and_names_the_verified_signer(h: Harness) -> None:
    await archived(h)
    await h.command(hold(h))  # claims legal@acme; signed by the harness's issuer
    (placed,) = h.lifecycle(CALL_ID, "legal_hold.placed")
    assert placed["requested_by"] == "harness", "who signed, not what the sender wrote"
    assert refusals(h) == [] and h.dead_letters == []
    await h.advance(days=40)
    assert "recording.deleted" not in h.types(CALL_ID)


async def test_an_unsigned_command_changes_nothing_and_is_refused(h: Harness) -> None:
    await archived(h)
    command = hold(h)
    await h.command(command, sign=False)
    assert h.lifecycle(CALL_ID, "legal_hold.placed") == []
    (refused,) = refusals(h)
    assert refused["reason"] == "unsigned" and refused["command_id"] == command["event_id"]
    assert refused.get("claimed_signer") is None
    (letter,) = h.dead_letters
    assert "not signed" in letter.error and "CALLVAULT_COMMAND_SIGNING_KEY" in letter.error
    await assert_deleted_on_time(h)


async def test_a_command_signed_by_an_unknown_key_changes_nothing(h: Harness) -> None:
    await archived(h)
    stranger = new_identity("dpo-mallory")
    await h.command(sign_document(hold(h), stranger))
    (refused,) = refusals(h)
    assert (refused["reason"], refused["claimed_signer"]) == ("unknown_key", "dpo-mallory")
    (letter,) = h.dead_letters
    assert "'dpo-mallory', a key this worker does not know" in letter.error
    assert "CALLVAULT_COMMAND_KEYS names: harness" in letter.error
    await assert_deleted_on_time(h)


async def test_a_known_name_with_another_key_or_a_changed_command_is_a_bad_signature(h: Harness) -> None:
    await archived(h)
    impostor = new_identity("harness")  # the trusted name, not the trusted key
    await h.command(sign_document(hold(h), impostor))
    signed = sign_document(hold(h), h.settings.command_identity())
    await h.command({**signed, "tenant": "beta"})  # changed after it was signed
    assert [r["reason"] for r in refusals(h)] == ["bad_signature", "bad_signature"]
    assert all("does not verify under the key of 'harness'" in d.error for d in h.dead_letters)
    assert h.lifecycle(CALL_ID, "legal_hold.placed") == []
    await assert_deleted_on_time(h)


async def test_a_replayed_command_changes_nothing_and_a_redelivery_is_carried_out_again(h: Harness) -> None:
    await archived(h)
    place = sign_document(hold(h), h.settings.command_identity())
    first = await h.command(place)
    await h.command(place, at=first)  # Kafka delivering it again after a crash: the same answer
    assert len(h.lifecycle(CALL_ID, "legal_hold.placed")) == 2 and refusals(h) == []
    assert len({e["event_id"] for e in h.lifecycle(CALL_ID, "legal_hold.placed")}) == 1
    await h.command(hold(h, "release", reason="settled"))
    await h.command(place)  # the same signed bytes again, elsewhere on the topic: a replay
    (refused,) = refusals(h)
    assert (refused["reason"], refused["claimed_signer"]) == ("replayed", "harness")
    assert f"at partition {first.partition}, offset {first.offset}" in h.dead_letters[-1].error
    assert len(h.lifecycle(CALL_ID, "legal_hold.placed")) == 2, "the hold was not placed again"
    await assert_deleted_on_time(h)


async def test_a_command_older_than_the_window_is_refused_but_its_redelivery_is_not(h: Harness) -> None:
    await archived(h)
    place = sign_document(hold(h), h.settings.command_identity())
    taken = await h.command(place)
    await h.command(hold(h, requested_at=format_rfc3339(h.clock.now() - timedelta(minutes=16))))
    await h.command(hold(h, requested_at=format_rfc3339(h.clock.now() + timedelta(minutes=16))))
    assert [r["reason"] for r in refusals(h)] == ["too_old", "too_old"]
    assert "more than 15 minutes ago (CALLVAULT_COMMAND_MAX_AGE)" in h.dead_letters[0].error
    assert "ahead of the worker's clock" in h.dead_letters[1].error
    h.clock.advance(timedelta(hours=2))  # the worker was down; Kafka delivers the first hold again
    await h.command(place, at=taken)
    assert len(h.dead_letters) == 2, "a redelivery is judged by where it was first taken, not by its age"
    assert len(h.lifecycle(CALL_ID, "legal_hold.placed")) == 2


async def test_an_unsigned_erasure_erases_nothing(h: Harness) -> None:
    number = new_number()
    call = await archived(h, caller=number)
    from callvault.stream.subject_client import subject_command

    command = subject_command(
        h.settings, "erase", number, "acme", command_id=uuid.uuid4(), requested_by="dpo", reason="e-mail",
        verified_by="desk", received_at=None, now=h.clock.now(),
    )  # fmt: skip
    await h.command(command, sign=False)
    assert [r["reason"] for r in refusals(h)] == ["unsigned"]
    assert not [e for e in h.events if e["type"] == "subject.erased"]
    assert [k for k in h.objects(h.settings.recordings_bucket) if call.call_id in k]


async def test_the_request_record_follows_the_signed_command_not_what_was_filed(h: Harness) -> None:
    number = new_number()
    await archived(h, caller=number)
    from callvault.stream.subject_client import subject_command

    command = subject_command(
        h.settings, "restrict", number, "acme", command_id=uuid.uuid4(), requested_by="dpo@acme",
        reason="e-mail", verified_by="desk", received_at=None, now=h.clock.now(), on_behalf_of="anna",
    )  # fmt: skip
    from callvault.rules.subject_requests import new_record

    filed = new_record(command, h.settings.zone, h.settings.identity_check).model_copy(
        update={"kind": "erase"}
    )  # changed in the bucket
    put_request(h.s3, h.settings.metadata_bucket, filed)
    await h.command(command)
    assert "another kind or subject than the signed command" in h.dead_letters[-1].error
    assert not [e for e in h.events if e["type"] == "subject.erased"]

    honest = command.model_copy(update={"event_id": uuid.uuid4()})
    put_request(
        h.s3, h.settings.metadata_bucket, new_record(honest, h.settings.zone, h.settings.identity_check)
    )
    await h.command(honest)
    (received,) = [e for e in h.events if e["type"] == "subject.request_received" and
                   e["request_id"] == str(honest.event_id)]  # fmt: skip
    assert (received["requested_by"], received["on_behalf_of"]) == ("harness", "anna")
    record = get_request(h.s3, h.settings.metadata_bucket, "acme", str(honest.event_id))
    assert record is not None and record.requested_by == "harness"


async def test_the_replay_ties_each_hold_to_a_command_an_auditor_verifies(h: Harness) -> None:
    """Issue 26: the worker's events named the verified signer, but nothing in the log let an auditor
    check it again, so a `legal_hold.released` written straight to `lifecycle` passed the replay (on
    main: no finding). Now the worker proves each command it takes with `command.accepted`, the
    command as sent, and the replay checks its signature with the public keys."""
    from callvault.rules.audit_replay import replay

    await archived(h)
    placed = hold(h)
    await h.command(placed)
    (accepted,) = [e for e in h.events if e["type"] == "command.accepted"]
    assert accepted["command_id"] == placed["event_id"] and accepted["command"]["signature"]
    keys = h.settings.trusted_command_keys

    def unverified(events: list[dict[str, Any]]) -> list[tuple[str, ...]]:
        found = replay(
            events, h.clock.now(), timedelta(minutes=5), h.settings.policy_defaults, command_keys=keys
        )
        return [v.evidence for v in found.violations if v.rule == "unverified_command_effect"]

    assert unverified(h.lifecycle()) == []
    forged = {
        **next(e for e in h.lifecycle() if e["type"] == "legal_hold.placed"), "type": "legal_hold.released",
        "event_id": str(uuid.uuid4()), "command_id": str(uuid.uuid4()), "requested_by": "dpo",
    }  # fmt: skip
    assert unverified([*h.lifecycle(), forged]) == [(forged["event_id"],)], "no command proves it"
    tampered = {**accepted, "command": {**accepted["command"], "reason": "another reason"}}
    rest = [e for e in h.lifecycle() if e["type"] != "command.accepted"]
    (found,) = unverified([*rest, tampered])
    assert found == (next(e for e in rest if e["type"] == "legal_hold.placed")["event_id"],), "bad signature"
    stranger = {new_identity("dpo").name: new_identity("dpo").public_key}
    without = replay(h.lifecycle(), h.clock.now(), timedelta(minutes=5), h.settings.policy_defaults,
                     command_keys=stranger)  # fmt: skip
    assert [v.rule for v in without.violations] == ["unverified_command_effect"], "keys the auditor holds"
