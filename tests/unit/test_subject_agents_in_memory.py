"""Agents are data subjects too: an agent, named by their id, gets access to their calls, erasure of what
the company may erase (their id in the calls' metadata; the recordings keep their term), restriction and
objection; their id is indexed only as a pseudonym. Through the worker in memory."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from typing import Any

import pytest

from callvault.api.views import is_restricted
from callvault.rules.pseudonym import agent_pseudonym
from callvault.storage.subject_flags import SubjectFlag, flagged_subjects
from callvault.storage.subject_index import INDEX_PREFIX
from callvault.stream.subject_client import BadRequest, subject_command
from callvault.testing import Harness
from tests.integration.helpers import CALLEE, indexed_subjects
from tests.unit.test_subject_identity_in_memory import of_request
from tests.unit.test_subjects_in_memory import archived_call, keys, new_number, pseudonym

AGENT = "agent-7"  # the agent tests.integration.helpers.CallScript names


@pytest.fixture
async def h() -> Any:
    async with Harness() as harness:
        yield harness


def as_agent(h: Harness, kind: str, agent: str = AGENT) -> Any:
    return subject_command(
        h.settings, kind, "", "acme", command_id=uuid.uuid4(), requested_by="dpo@acme",
        reason=f"agent's {kind} request", verified_by="HR", received_at=None, now=h.clock.now(), agent=agent,
    )  # fmt: skip


def pseudonym_of(h: Harness, agent: str = AGENT) -> str:
    return agent_pseudonym(h.settings.pseudonym_key.get_secret_value().encode(), "acme", agent)


def metadata(h: Harness, call: Any) -> dict[str, Any]:
    key = f"acme/{call.start:%Y/%m/%d}/{call.call_id}.json"
    return json.loads(h.read(h.settings.metadata_bucket, key))


async def test_an_agent_is_indexed_by_pseudonym_and_gets_access_to_their_calls(h: Harness) -> None:
    call = await archived_call(h, new_number())
    index = [
        k for k in h.objects(h.settings.metadata_bucket) if k.startswith(INDEX_PREFIX) and call.call_id in k
    ]
    assert any(pseudonym_of(h) in k for k in index) and not any(AGENT in k for k in index)
    command = as_agent(h, "access")
    await h.command(command)
    answer = of_request(h, str(command.event_id))[-1]
    assert answer["type"] == "subject.access_fulfilled" and answer["calls"] == 1
    assert AGENT not in json.dumps([e for e in h.events if e["type"].startswith("subject.")]), (
        "only the pseudonym"
    )
    exported = h.s3.get_object(Bucket=h.settings.exports_bucket, Key=f"acme/{answer['request_id']}.zip")
    with zipfile.ZipFile(io.BytesIO(exported["Body"].read())) as archive:
        doc = json.loads(archive.read(f"calls/{call.call_id}.json"))
    assert doc["participants"] == {"subject_was": ["agent"]} and "agent_pseudonym" not in doc


async def test_an_agents_erasure_removes_their_id_and_keeps_the_recording(h: Harness) -> None:
    call = await archived_call(h, new_number())
    assert metadata(h, call)["agent_id"] == AGENT
    command = as_agent(h, "erase")
    await h.command(command)
    answer = of_request(h, str(command.event_id))[-1]
    assert answer["type"] == "subject.erased" and (answer["calls"], answer["metadata"]) == (1, 1)
    doc = metadata(h, call)
    assert (
        doc["agent_id"] is None
        and "agent_pseudonym" not in doc
        and doc["rectifications"][0]["kind"] == "erased"
    )
    assert keys(h, h.settings.recordings_bucket, call), "the recording follows its own term"
    assert "recording.deleted" not in h.types(call.call_id)
    index = [
        k for k in h.objects(h.settings.metadata_bucket) if k.startswith(INDEX_PREFIX) and call.call_id in k
    ]
    assert not any(pseudonym_of(h) in k for k in index)
    assert indexed_subjects(index, call.call_id) == {pseudonym(h, call.caller), pseudonym(h, CALLEE)}, (
        "the call's other subjects still find it"
    )


async def test_an_agents_restriction_and_objection_cover_their_calls(h: Harness) -> None:
    call = await archived_call(h, new_number())
    await h.command(as_agent(h, "restrict"))
    restricted = flagged_subjects(h.s3, h.settings.metadata_bucket, SubjectFlag.RESTRICTED, "acme")
    assert is_restricted(metadata(h, call), frozenset(restricted))
    await h.command(as_agent(h, "object"))
    assert keys(h, h.settings.recordings_bucket, call), "what is archived keeps its term"
    later = await archived_call_refused(h)
    assert later["reason"] == "objected"


async def archived_call_refused(h: Harness) -> dict[str, Any]:
    from tests.integration.helpers import CallScript

    call = CallScript(
        call_id=f"c-{uuid.uuid4().hex[:10]}", tenant="acme", caller=new_number(), start=h.clock.now()
    )
    h.upload(call.staging_key, call.audio)
    await h.send(call.started(), call.disclosure(), call.stored(), call.ended())
    (rejected,) = h.lifecycle(call.call_id, "recording.rejected")
    return rejected


def test_an_agent_is_named_in_place_of_a_number_and_not_for_a_rectification() -> None:
    from datetime import UTC, datetime

    from callvault.settings import Settings

    with pytest.raises(BadRequest, match="in place of a number"):
        subject_command(
            Settings(), "erase", "+32470000001", "acme", command_id=uuid.uuid4(), requested_by="dpo",
            reason="r", verified_by=None, received_at=None, now=datetime.now(UTC), agent="agent-1",
        )  # fmt: skip
