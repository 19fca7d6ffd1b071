"""The subject index's two layouts: one entry per call naming every subject, and the older entry per subject.

Entries written before 2026-12-07 (`{tenant}/{pseudonym}/{call_id}.json`) are still found by a lookup and
still deleted with their call's data; new ones (`{tenant}/calls/{call_id}/{pseudonyms}.json`) are one PUT
whoever the call names.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from callvault.storage import subject_index
from callvault.storage.subject_index import (
    INDEX_PREFIX,
    IndexEntry,
    calls_of,
    drop_subjects,
    entry_key,
    parse_key,
    put_entries,
    remove_entries,
)
from callvault.testing import Harness

CALLER, CALLEE, AGENT = "a" * 64, "b" * 64, "c" * 64
TAGS = {"retention-class": "metadata"}


@pytest.fixture
async def h() -> Any:
    async with Harness() as harness:
        yield harness


def entry(call_id: str, *subjects: str, minutes: int = 0) -> IndexEntry:
    started = datetime(2026, 3, 2, 9, 0, tzinfo=UTC) + timedelta(minutes=minutes)
    return IndexEntry(
        call_id=call_id,
        tenant="acme",
        subjects=list(subjects),
        objects={"metadata": f"acme/2026/03/02/{call_id}.json"},
        call_started_at=started,
        expires_at=started + timedelta(days=183),
    )


def index(h: Harness) -> list[str]:
    return sorted(k for k in h.objects(h.settings.metadata_bucket) if k.startswith(INDEX_PREFIX))


def old_layout(h: Harness, e: IndexEntry) -> None:
    """An entry per subject, as callvault wrote them before 2026-12-07."""
    for subject in e.subjects:
        h.s3.put_object(
            Bucket=h.settings.metadata_bucket,
            Key=f"{INDEX_PREFIX}{e.tenant}/{subject}/{e.call_id}.json",
            Body=e.model_dump_json().encode(),
        )


def test_a_key_names_its_call_and_subjects_in_either_layout() -> None:
    key = entry_key("acme", [AGENT, CALLER, CALLER], "c-1")
    assert key == f"{INDEX_PREFIX}acme/calls/c-1/{CALLER}.{AGENT}.json"
    assert parse_key(key) == ("c-1", frozenset({CALLER, AGENT}))
    assert parse_key(f"{INDEX_PREFIX}acme/{CALLER}/c-1.json") == ("c-1", frozenset({CALLER}))
    assert parse_key(f"{INDEX_PREFIX}acme/calls/c-1/") is None
    assert parse_key("acme/2026/03/02/c-1.json") is None, "a metadata document is no entry"
    with pytest.raises(ValueError, match="no subjects"):
        entry_key("acme", [], "c-1")


def test_one_entry_per_call_is_found_by_each_of_its_subjects_only(h: Harness) -> None:
    bucket = h.settings.metadata_bucket
    put_entries(h.s3, bucket, entry("c-1", CALLER, CALLEE, AGENT), TAGS)
    put_entries(h.s3, bucket, entry("c-2", CALLEE, AGENT, minutes=5), TAGS)
    assert len(index(h)) == 2
    assert [e.call_id for e in calls_of(h.s3, bucket, "acme", CALLER)] == ["c-1"]
    assert [e.call_id for e in calls_of(h.s3, bucket, "acme", AGENT)] == ["c-1", "c-2"], "oldest first"
    assert calls_of(h.s3, bucket, "acme", "d" * 64) == []
    assert calls_of(h.s3, bucket, "other", CALLER) == [], "never another tenant's"


def test_entries_of_the_older_layout_are_found_and_go_with_their_call(h: Harness) -> None:
    bucket = h.settings.metadata_bucket
    old_layout(h, entry("c-old", CALLER, AGENT))
    put_entries(h.s3, bucket, entry("c-old", CALLER, AGENT), TAGS)  # rewritten since, in the new layout
    put_entries(h.s3, bucket, entry("c-new", CALLER, minutes=5), TAGS)
    assert [e.call_id for e in calls_of(h.s3, bucket, "acme", CALLER)] == ["c-old", "c-new"], "once each"

    removed = remove_entries(h.s3, bucket, "acme", [CALLER, AGENT], "c-old")

    assert removed == 3 and index(h) == [entry_key("acme", [CALLER], "c-new")]


def test_dropping_a_subject_keeps_the_call_for_the_others(h: Harness) -> None:
    bucket = h.settings.metadata_bucket
    put_entries(h.s3, bucket, entry("c-1", CALLER, CALLEE, AGENT), TAGS)
    old_layout(h, entry("c-1", AGENT))

    drop_subjects(h.s3, bucket, "acme", [AGENT], "c-1")

    assert index(h) == [entry_key("acme", [CALLER, CALLEE], "c-1")]
    assert calls_of(h.s3, bucket, "acme", AGENT) == []
    (kept,) = calls_of(h.s3, bucket, "acme", CALLEE)
    assert sorted(kept.subjects) == sorted([CALLER, CALLEE])
    tags = h.s3.get_object_tagging(Bucket=bucket, Key=index(h)[0])["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == TAGS, "the rewritten entry keeps the metadata's tags"


def test_a_rectified_participant_moves_without_a_moment_unindexed(h: Harness) -> None:
    """As subject_rewrites does it: the new participant's entry first, then the old one dropped."""
    bucket = h.settings.metadata_bucket
    put_entries(h.s3, bucket, entry("c-1", CALLER, AGENT), TAGS)
    put_entries(h.s3, bucket, entry("c-1", CALLEE, AGENT), TAGS)

    drop_subjects(h.s3, bucket, "acme", [CALLER], "c-1")

    assert index(h) == [entry_key("acme", [CALLEE, AGENT], "c-1")], "no third entry written for the agent"


def test_a_long_lookup_says_how_far_it_is_and_never_whom_it_looks_for(
    h: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    bucket = h.settings.metadata_bucket
    for i in range(5):
        put_entries(h.s3, bucket, entry(f"c-{i}", CALLER, AGENT, minutes=i), TAGS)
    monkeypatch.setattr(subject_index, "PROGRESS_EVERY", 2)

    with caplog.at_level(logging.INFO, logger="callvault.subjects"):
        assert len(calls_of(h.s3, bucket, "acme", CALLER)) == 5

    said = [r.getMessage() for r in caplog.records]
    assert [m.split(": ")[1].split(" in ")[0] for m in said] == [
        "2 index entries read",
        "4 index entries read",
        "all 5 index entries read",
    ], said
    assert not any(CALLER in m or AGENT in m for m in said)
