"""Rectification (GDPR art. 16): a call's metadata corrected or completed at the subject's request, the
old value out of QA's reach and in the audit trail only as a pseudonym; through the worker's command
handler in memory, `audit verify-store`'s comparison and the replay."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest

from callvault.rules.audit_replay import replay
from callvault.rules.subject_requests import new_record
from callvault.storage.subject_index import INDEX_PREFIX
from callvault.storage.subject_requests import put_request
from callvault.stream.subject_client import BadRequest, subject_command, with_values
from callvault.testing import Harness
from tests.integration.helpers import indexed_subjects
from tests.unit.test_audit_not_fooled_in_memory import verify_store
from tests.unit.test_subject_identity_in_memory import of_request
from tests.unit.test_subjects_in_memory import CALLEE, archived_call, ask, new_number, pseudonym

TOLERANCE = timedelta(minutes=10)


@pytest.fixture
async def h() -> Any:
    async with Harness() as harness:
        yield harness


def rectify(h: Harness, number: str, call_id: str, field: str, **what: str) -> Any:
    asked = {
        "call_id": call_id,
        "field": field,
        "value": what.get("value"),
        "statement": what.get("statement"),
    }
    return subject_command(
        h.settings, "rectify", number, "acme", command_id=uuid.uuid4(), requested_by="dpo@acme",
        reason="letter: that was not my line", verified_by="desk", received_at=None, now=h.clock.now(),
        rectify=asked,
    ), asked  # fmt: skip


async def filed(h: Harness, made: tuple[Any, dict[str, Any]]) -> Any:
    """As `callvault subject rectify` files it: the values in the registry, the command signing them."""
    command, asked = made
    record = new_record(command, h.settings.zone, h.settings.identity_check)
    put_request(h.s3, h.settings.metadata_bucket, with_values(h.settings, record, asked))
    await h.command(command)
    return command


def document(h: Harness, call: Any) -> tuple[dict[str, Any], list[str]]:
    """The call's metadata as the API reads it (the current version), and every version the bucket holds."""
    key = f"acme/{call.start:%Y/%m/%d}/{call.call_id}.json"
    doc = json.loads(h.read(h.settings.metadata_bucket, key))
    listed = h.s3.list_object_versions(Bucket=h.settings.metadata_bucket, Prefix=key).get("Versions", [])
    return doc, [v["VersionId"] for v in listed]


async def test_a_wrong_participant_is_corrected_and_the_index_follows(h: Harness) -> None:
    her, right = new_number(), new_number()
    call = await archived_call(h, her)
    before, _ = document(h, call)
    await ask(h, "access", her)  # an export made before: its recipient must be told
    command = await filed(h, rectify(h, her, call.call_id, "participants.callee", value=right))

    answer = of_request(h, str(command.event_id))[-1]
    assert answer["type"] == "subject.rectified" and answer["field"] == "participants.callee"
    doc, versions = document(h, call)
    assert doc["participants"]["callee"] == pseudonym(h, right) and doc["participants"][
        "caller"
    ] == pseudonym(h, her)
    assert versions == [answer["document_version"]], "the version with the old value is gone"
    assert (
        doc["rectifications"][0]["field"] == "participants.callee"
        and "statement" not in doc["rectifications"][0]
    )
    assert answer["previous_digest"] and pseudonym(h, CALLEE) not in json.dumps(answer), (
        "no previous value in clear"
    )
    assert len(answer["recipients"]) == 1
    index = [
        k for k in h.objects(h.settings.metadata_bucket) if k.startswith(INDEX_PREFIX) and call.call_id in k
    ]
    assert len(index) == 1, "one entry for the call, whom it names rewritten"
    assert indexed_subjects(index, call.call_id) == {pseudonym(h, her), pseudonym(h, right)}
    assert doc["disclosure"] == before["disclosure"] and doc["recording"] == before["recording"]
    assert [f.rule for f in verify_store(h)] == [], "the log names the new version"
    assert [v.rule for v in replay(h.events, h.clock.now(), TOLERANCE).violations] == []


async def test_a_completion_adds_the_statement_and_changes_nothing(h: Harness) -> None:
    her = new_number()
    call = await archived_call(h, her)
    before, _ = document(h, call)
    command = await filed(
        h, rectify(h, her, call.call_id, "language", statement="The call was in Dutch, not French.")
    )
    doc, _ = document(h, call)
    assert doc["language"] == before["language"]
    assert doc["rectifications"][0]["statement"] == "The call was in Dutch, not French."
    answer = of_request(h, str(command.event_id))[-1]
    assert answer["statement_added"] is True and answer.get("previous_digest") is None
    assert "Dutch" not in json.dumps(h.events), (
        "the statement is not in the audit log, command.accepted included"
    )


async def test_what_may_not_be_rectified_is_refused_with_a_sentence(h: Harness) -> None:
    her, stranger = new_number(), new_number()
    call = await archived_call(h, her)
    await filed(h, rectify(h, stranger, call.call_id, "agent_id", value="agent-9"))
    assert "of this subject is kept" in h.dead_letters[-1].error, "another's call: as if it did not exist"
    await filed(h, rectify(h, her, "c-never", "agent_id", value="agent-9"))
    assert "nothing to rectify" in h.dead_letters[-1].error
    command, asked = rectify(h, her, call.call_id, "agent_id", value="agent-9")
    await filed(h, (command, {**asked, "value": "agent-666"}))  # the registry changed after signing
    assert "is not the one its command signs" in h.dead_letters[-1].error
    with pytest.raises(BadRequest, match="field: Input should be .participants.caller"):
        rectify(h, her, call.call_id, "disclosure.verdict", value="verified")
    with pytest.raises(BadRequest, match="E.164"):
        rectify(h, her, call.call_id, "participants.caller", value="not a number")


async def test_the_replay_flags_a_rectification_no_request_shows(h: Harness) -> None:
    her = new_number()
    call = await archived_call(h, her)
    await filed(h, rectify(h, her, call.call_id, "agent_id", value="agent-9"))
    without = [e for e in h.events if e["type"] != "subject.request_received"]
    rules = [v.rule for v in replay(without, h.clock.now(), TOLERANCE).violations]
    assert rules == ["rectification_without_request"]


async def test_a_document_stored_before_sealing_is_rewritten_under_the_clients_own_key() -> None:
    """A client that brought its own key: a rewrite of a document archived unsealed (before sealing was on)
    is sealed under that key, as a new document would be, not under callvault's key for the client."""
    from callvault.settings import Settings
    from callvault.storage.sealing import Keyring
    from callvault.storage.tenant_keys import make_kms_client

    async with Harness(Settings(encryption="off", encryption_off_reason="archived before issue 29")) as h:
        her = new_number()
        call = await archived_call(h, her)
        kms = make_kms_client(h.settings)
        own = str(kms.create_key(Description="acme's own key")["KeyMetadata"]["Arn"])
        await h.set_kms_key("acme", own)
        h.commands.subjects.keyring = Keyring(kms)  # sealing turned on since the call was archived
        await filed(h, rectify(h, her, call.call_id, "language", statement="The call was in Dutch."))
        rewritten = h.lifecycle(type_="metadata.archived")[-1]
        assert rewritten["call_id"] == call.call_id and rewritten["key_id"] == own, rewritten.get("key_id")
        doc, versions = document(h, call)
        assert doc["rectifications"][0]["statement"] == "The call was in Dutch." and len(versions) == 1
