"""Dependent data goes with what it depends on: a call's subject-index entries with its metadata.

The entries (`_callvault/subject-index/{tenant}/{pseudonym}/{call_id}.json`) name
the call's pseudonyms and keys; an entry left behind after its metadata's
deletion is proven would keep personal data past its term.
"""

from __future__ import annotations

from typing import Any

import pytest

from callvault.settings import Settings
from callvault.storage.subject_index import INDEX_PREFIX
from callvault.testing import Harness
from tests.integration.helpers import CallScript


def index_of(h: Harness, call_id: str) -> list[str]:
    return [k for k in h.objects(h.settings.metadata_bucket) if k.startswith(INDEX_PREFIX) and call_id in k]


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
    assert len(index_of(h, call.call_id)) == 2

    await h.advance(hours=1, minutes=50)  # due: the first pass works from the listing of that document

    assert "metadata.deleted" in h.types(call.call_id)
    assert index_of(h, call.call_id) == [], "the index outlived the metadata it points to"
