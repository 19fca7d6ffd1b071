"""Dependent data goes with what it depends on: a call's subject-index entries with its metadata.

The entry (`_callvault/subject-index/{tenant}/calls/{call_id}/{pseudonyms}.json`)
names the call's pseudonyms and keys; an entry left behind after its metadata's
deletion is proven would keep personal data past its term.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import pytest

from callvault.settings import Settings
from callvault.storage.errors import StorageFault
from callvault.storage.subject_index import INDEX_PREFIX
from callvault.stream import deletion
from callvault.testing import Harness
from tests.integration.helpers import CallScript, indexed_subjects


def index_of(h: Harness, call_id: str) -> list[str]:
    return [k for k in h.objects(h.settings.metadata_bucket) if k.startswith(INDEX_PREFIX) and call_id in k]


def indexed(h: Harness, call_id: str) -> set[str]:
    return indexed_subjects(h.objects(h.settings.metadata_bucket), call_id)


@pytest.fixture
async def h() -> Any:
    # A short metadata term; between listings (every 10 minutes) passes work from what the last one saw.
    settings = Settings(metadata_retention="PT2H", recording_retention="PT1H", purge_rescan_s=600)
    async with Harness(settings) as harness:
        yield harness


async def test_index_entries_written_after_the_listing_go_with_the_metadata(h: Harness) -> None:
    """`call.started` (which names the participants) comes after the purger listed the document."""
    call = CallScript(call_id="c-late-start", start=h.clock.now())
    h.upload(call.staging_key, call.audio)
    await h.send(call.disclosure(), call.stored(), call.ended())
    await h.advance(minutes=6)  # past the disclosure grace: metadata written, with no participant yet
    assert "metadata.archived" in h.types(call.call_id) and not index_of(h, call.call_id)
    await h.advance(minutes=10)  # a listing sees that document

    await h.send(call.started())  # the document is rewritten naming both participants; they are indexed
    assert len(indexed(h, call.call_id)) == 3  # the caller, the callee and the agent

    await h.advance(hours=1, minutes=50)  # due: the first pass works from the listing of that document

    assert "metadata.deleted" in h.types(call.call_id)
    assert index_of(h, call.call_id) == [], "the index outlived the metadata it points to"


async def _archived_then_rewritten_thin(h: Harness, call_id: str) -> CallScript:
    """A call archived with both participants, then a late event after the worker forgot it.

    The late `call.ended` (past `settled_state_ttl`, P1D) starts a new state that
    knows no participant, and its metadata version names no one: only the earlier
    version says whose index entries go with the document.
    """
    call = CallScript(call_id=call_id, start=h.clock.now())
    h.upload(call.staging_key, call.audio)
    await h.send(call.started(), call.disclosure(), call.stored(), call.ended())
    await h.advance(minutes=6)
    assert len(indexed(h, call.call_id)) == 3  # the caller, the callee and the agent
    await h.advance(days=2)
    late = {**call.ended(), "event_id": str(uuid.uuid4())}
    await h.send(late)
    await h.advance(minutes=6)
    assert len(h.lifecycle(call.call_id, "metadata.archived")) == 2, "the document was rewritten"
    return call


async def test_entries_go_with_metadata_rewritten_without_its_participants() -> None:
    # On main before the fix: metadata.deleted was emitted and both entries stayed.
    async with Harness(Settings()) as h:
        call = await _archived_then_rewritten_thin(h, "c-thin-rewrite")

        await h.advance(days=190)  # past six months from the call's start

        assert "metadata.deleted" in h.types(call.call_id)
        assert index_of(h, call.call_id) == [], "the index outlived the metadata it points to"


async def test_a_crash_before_the_entries_go_is_finished_by_the_next_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The document deleted, then a kill before its entries: no proof yet; the next pass finishes."""
    async with Harness(Settings(deletion_in_flight_s=30)) as h:
        call = await _archived_then_rewritten_thin(h, "c-crash-between")
        real_remove = deletion.remove_entries
        crashes: list[tuple[Any, ...]] = []

        def crashing(*args: Any) -> int:
            crashes.append(args)
            raise StorageFault("killed between the document and its index entries")

        monkeypatch.setattr(deletion, "remove_entries", crashing)
        with contextlib.suppress(StorageFault):  # the runner gives up: the pass ends like a kill
            await h.advance(days=190)
        assert crashes, "the pass reached the index entries"
        assert "metadata.deleted" not in h.types(call.call_id), "no proof while its entries remain"
        assert len(indexed(h, call.call_id)) == 3  # the caller, the callee and the agent
        monkeypatch.setattr(deletion, "remove_entries", real_remove)  # the worker restarted

        await h.advance(minutes=1)  # the journal entry is older than deletion_in_flight_s now

        assert len(h.lifecycle(call.call_id, "metadata.deleted")) == 1
        assert index_of(h, call.call_id) == []
