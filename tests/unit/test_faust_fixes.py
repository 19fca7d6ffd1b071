"""The consumer fix: a message read ahead of a seek is held back and the partition sought again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from callvault.stream import faust_fixes

CALLS = TP("callvault.internal.calls", 0)
CHANGELOG = TP("callvault-worker-call-state-changelog", 0)


@dataclass
class Msg:
    offset: int


class FlowControl:
    """The app's flow control: its stream queues take messages only while it is active."""

    def __init__(self) -> None:
        self.active = True

    def is_active(self) -> bool:
        return self.active


class FakeConsumer:
    """What `_getmany` touches: the batches a fetch returns, and the seeks it makes."""

    def __init__(self, *batches: list[tuple[TP, int]]) -> None:
        self.batches = list(batches)
        self.sought: list[tuple[TP, int]] = []
        self.committed: dict[TP, int | None] = {}  # what seek_to_committed finds
        self.flow_active = True  # faust stops the flow for a rebalance and resumes it after recovery
        self.app = SimpleNamespace(flow_control=FlowControl(), rebalancing=False)

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


async def test_a_new_seek_to_the_same_place_looks_again() -> None:
    """Two seeks to one offset in one start (assignment, then recovery), each with a read-ahead:
    the second is held back too, not taken for a real gap (which lost the message at that offset)."""
    consumer = FakeConsumer([(CALLS, 3)], [(CALLS, 3)], [(CALLS, 2), (CALLS, 3)])
    await faust_fixes._seek(consumer, CALLS, 2)
    assert await fetch(consumer) == []
    await faust_fixes._seek(consumer, CALLS, 2)
    assert await fetch(consumer) == []
    assert await fetch(consumer) == [(CALLS.topic, 2), (CALLS.topic, 3)]


async def test_a_seek_back_waits_for_the_message_in_hand_and_goes_before_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Recovery resumes the partitions, then seeks them back to the committed offsets. A message
    fetched before that seek and handed over while it ran moved faust's read offset past the
    committed one, and the message at the committed offset, fetched again, was dropped as read.
    The seek now waits for the message in hand, and the next message waits for the seek (then meets
    the check above)."""
    consumer = FakeConsumer([(CALLS, 2), (CALLS, 3)], [(CALLS, 2), (CALLS, 3)])
    consumer.committed = {CALLS: 2}
    order: list[str] = []

    async def perform_seek(self: FakeConsumer) -> None:
        order.append("seek")
        await faust_fixes._seek_to_committed(self)

    monkeypatch.setattr(faust_fixes, "_original_perform_seek", perform_seek)
    batch = faust_fixes._getmany(consumer, 1.0)
    _, first = await batch.__anext__()  # offset 2, in the drain loop's hands
    seeking = asyncio.create_task(faust_fixes._perform_seek(consumer))
    await asyncio.sleep(0)  # the seek's turn to run, if it would not wait
    order.append(f"delivered {first.offset}")
    rest = [m.offset async for _, m in batch]
    await seeking
    assert order == ["delivered 2", "seek"]
    assert rest == [], "offset 3, fetched before the seek, is held back and the partition sought again"
    assert await fetch(consumer) == [(CALLS.topic, 2), (CALLS.topic, 3)]


@pytest.mark.parametrize("stopped", ["the consumer's flow", "the app's flow control", "a rebalance"])
async def test_a_message_fetched_while_the_flow_is_stopped_is_fetched_again_once_it_flows(
    stopped: str,
) -> None:
    """Recovery seeks, then resumes the flow: a message fetched in between went to a stream queue that
    resuming cleared, and was counted read (a restarted worker's disclosure lost, 3 runs in 3)."""
    consumer = FakeConsumer([(CALLS, 2), (CALLS, 3)], [(CALLS, 2), (CALLS, 3)])
    flow, name = {
        "the consumer's flow": (consumer, "flow_active"),
        "the app's flow control": (consumer.app.flow_control, "active"),
        "a rebalance": (consumer.app, "rebalancing"),
    }[stopped]
    setattr(flow, name, stopped == "a rebalance")
    assert await fetch(consumer) == []
    assert consumer.sought == [(CALLS, 2)], "sought back to the message it could not hand over"
    setattr(flow, name, stopped != "a rebalance")
    assert await fetch(consumer) == [(CALLS.topic, 2), (CALLS.topic, 3)]
