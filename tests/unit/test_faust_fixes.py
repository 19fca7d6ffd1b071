"""The consumer fix: a message read ahead of a seek is held back and the partition sought again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from faust.types import TP

from callvault.stream import faust_fixes

CALLS = TP("callvault.internal.calls", 0)
CHANGELOG = TP("callvault-worker-call-state-changelog", 0)


@dataclass
class Msg:
    offset: int


class FakeConsumer:
    """What `_getmany` touches: the batches a fetch returns, and the seeks it makes."""

    def __init__(self, *batches: list[tuple[TP, int]]) -> None:
        self.batches = list(batches)
        self.sought: list[tuple[TP, int]] = []
        self.committed: dict[TP, int | None] = {}  # what seek_to_committed finds

    async def earliest_offsets(self, *partitions: TP) -> dict[TP, int]:
        return dict.fromkeys(partitions, 0)


@pytest.fixture(autouse=True)
def fake_faust(monkeypatch: pytest.MonkeyPatch) -> None:
    async def getmany(self: FakeConsumer, timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        for tp, offset in self.batches.pop(0):
            yield tp, Msg(offset)

    async def seek(self: FakeConsumer, tp: TP, offset: int) -> None:
        self.sought.append((tp, offset))

    async def seek_to_committed(self: FakeConsumer) -> dict[TP, int | None]:
        return dict(self.committed)

    monkeypatch.setattr(faust_fixes, "_original_getmany", getmany)
    monkeypatch.setattr(faust_fixes, "_original_seek_to_committed", seek_to_committed)
    monkeypatch.setattr(faust_fixes, "_original_seek", seek)


async def fetch(consumer: FakeConsumer) -> list[tuple[str, int]]:
    return [(tp.topic, m.offset) async for tp, m in faust_fixes._getmany(consumer, 1.0)]


async def test_a_read_ahead_after_a_seek_is_held_back_and_the_partition_sought_again() -> None:
    consumer = FakeConsumer([(CALLS, 505), (CALLS, 506)], [(CALLS, 474), (CALLS, 475)], [(CALLS, 476)])
    await faust_fixes._seek(consumer, CALLS, 474)
    assert await fetch(consumer) == []  # 474..504 would have been marked done, unread
    assert consumer.sought == [(CALLS, 474), (CALLS, 474)]
    assert await fetch(consumer) == [(CALLS.topic, 474), (CALLS.topic, 475)]
    assert await fetch(consumer) == [(CALLS.topic, 476)]


async def test_a_real_gap_goes_on_after_one_more_look() -> None:
    consumer = FakeConsumer([(CALLS, 12)], [(CALLS, 12), (CALLS, 13)])
    await faust_fixes._seek(consumer, CALLS, 10)
    assert await fetch(consumer) == []
    assert await fetch(consumer) == [(CALLS.topic, 12), (CALLS.topic, 13)]  # a transaction marker, say


async def test_a_compacted_changelog_is_read_as_it_is() -> None:
    consumer = FakeConsumer([(CHANGELOG, 57), (CHANGELOG, 90)])
    await faust_fixes._seek(consumer, CHANGELOG, 0)
    assert await fetch(consumer) == [(CHANGELOG.topic, 57), (CHANGELOG.topic, 90)]


async def test_a_partition_with_nothing_committed_is_held_to_its_beginning() -> None:
    """A worker killed before its first commit: its successor must start at 0, not where a fetch lands."""
    consumer = FakeConsumer([(CALLS, 54), (CALLS, 55)], [(CALLS, 0), (CALLS, 1)])
    consumer.committed = {CALLS: None, CHANGELOG: None}
    await faust_fixes._seek_to_committed(consumer)
    assert consumer.sought == [(CALLS, 0)], "sought to its beginning; the changelog left to recovery"
    assert await fetch(consumer) == []
    assert await fetch(consumer) == [(CALLS.topic, 0), (CALLS.topic, 1)]
