"""A fix for faust-streaming 0.15: messages read ahead of a seek were marked done, unprocessed.

What happens (seen in `tests/faults/test_killed_worker.py`: 255, 401 and 215
calls of 2,000 lost in the three runs counted before this fix): when a worker starts, or a rebalance ends,
faust seeks every partition to its committed offset. A fetch started before
that seek can still deliver one message from further on. faust's drain loop
takes the jump from the committed offset to that message for a gap in the log
(which compacted or transactional topics do have), marks the whole range as
acknowledged (`Consumer._add_gap`), and drops the range's messages when they
are fetched again, as older than what it has read. The next commit moves past
them: they are never processed. Upstream: faust-streaming issues 216, 221, 596
and 606 describe the same family.

The same happens to a partition where nothing was committed yet: a worker
killed before its first commit there leaves its successor to start from the
beginning, and a message from further on, arriving first, was taken for the
beginning (seen in `tests/faults/test_s3_faults.py`: 52 of 60 calls left
undecided). So such a partition is sought to its beginning explicitly.

callvault's topics have no gaps of their own, so the fix is narrow: after any
seek, the next message of that partition must be the one sought. If a later one
comes first, it is held back and the partition is sought again; aiokafka drops
what it had prefetched for it, and the fetch resumes where it should. A jump
that recurs at the same place after that re-seek is a real gap (a transaction
marker, say) and goes on to faust's own handling, so nothing loops; a new seek
to that place looks again.

A third way (seen in `tests/integration/test_restart.py`'s backlog test, 3 runs
in about 40 on a loaded machine: a `disclosure.played` of a restarted worker's
backlog never processed): recovery resumes the partitions *before* it seeks them
back to the committed offsets (`perform_seek`), so the drain loop delivers
messages meanwhile. One of those, handed to the stream while the seek ran,
finished after it and set the partition's read offset past the committed one:
the same partition's message at the committed offset, fetched again after the
seek, was then dropped as already read. So `perform_seek` waits until the
message being delivered is done, and no message is handed over while it runs;
whatever was fetched before it then meets the check above.

And recovery resumes the flow only *after* that seek, and resuming clears the
streams' queues (`clear_on_resume`, even when the flow was running already): a
message handed over in between was cleared, and counted read (seen right after
this wait was added: 3 runs in 3, the message a batch held at the committed
offset handed over the moment the seek ended). So a stream's message is handed
over only while the flow runs (the consumer's and the app's) and no rebalance
is under way; otherwise its partition is sought back to it (it has passed the
check above: it is the one to read next) and it is fetched again once the
rebalance is over.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from faust.transport.drivers.aiokafka import Consumer  # the consumer faust uses with aiokafka

log = logging.getLogger("callvault.worker")

_EXPECT = "_callvault_next_offset"  # tp -> the offset the next message must have
_TRIED = "_callvault_reseeked"  # (tp, offset) already sought again once
_TURNS = "_callvault_seek_turns"  # the drain loop's delivery and perform_seek, one at a time
SEEK_WAIT_S = 10.0  # how long perform_seek waits for a delivery in hand before going on anyway

_original_getmany = Consumer.getmany
_original_seek = Consumer.seek
_original_seek_to_committed = Consumer.seek_to_committed
_original_perform_seek = Consumer.perform_seek


class SeekTurns:
    """Who goes: the drain loop handing a message over, or a seek back to the committed offsets.

    `idle` is set while no message is in the drain loop's hands (between being yielded and the next
    one being asked for); `open` is cleared while a seek runs, and the next message waits for it.
    """

    def __init__(self) -> None:
        self.idle = asyncio.Event()
        self.idle.set()
        self.open = asyncio.Event()
        self.open.set()


def _turns(consumer: Any) -> SeekTurns:
    if not hasattr(consumer, _TURNS):
        setattr(consumer, _TURNS, SeekTurns())
    return getattr(consumer, _TURNS)  # type: ignore[no-any-return]


async def _perform_seek(self: Any) -> None:
    """faust's seek back to the committed offsets, never while a message fetched before it is being
    handed to a stream (see the module's docstring: it would have moved the read offset past it)."""
    turns = _turns(self)
    turns.open.clear()
    try:
        try:
            await asyncio.wait_for(turns.idle.wait(), SEEK_WAIT_S)
        except TimeoutError:
            log.warning("seeking back to the committed offsets while a message is still being delivered")
        await _original_perform_seek(self)
    finally:
        turns.open.set()


def _expect(consumer: Any) -> dict[Any, int]:
    if not hasattr(consumer, _EXPECT):
        setattr(consumer, _EXPECT, {})
        setattr(consumer, _TRIED, set())
    return getattr(consumer, _EXPECT)  # type: ignore[no-any-return]


async def _seek(self: Any, partition: Any, offset: int) -> None:
    await _original_seek(self, partition, offset)
    if offset is not None and offset >= 0:
        _expect_from(self, partition, offset)


def _expect_from(consumer: Any, tp: Any, offset: int) -> None:
    """After a seek of `tp` to `offset`: its next message must be that one (a new seek looks again)."""
    _expect(consumer)[tp] = offset
    getattr(consumer, _TRIED).discard((tp, offset))


async def _seek_to_committed(self: Any) -> Any:
    sought = await _original_seek_to_committed(self)
    for tp, offset in sought.items():
        if offset is not None and offset >= 0:
            _expect_from(self, tp, offset)
    # Nothing committed yet (the group's first worker died before its first commit
    # there): the partition starts at its beginning, sought explicitly so that it
    # too is held to it. Left to the reset policy alone, a read-ahead message from
    # further on was taken as where the partition starts, and all before it lost.
    fresh = [tp for tp, offset in sought.items() if offset is None and not _is_changelog(tp)]
    if fresh:
        for tp, offset in (await self.earliest_offsets(*fresh)).items():
            if offset is not None and offset >= 0:
                await _seek(self, tp, offset)
    return sought


def _is_changelog(tp: Any) -> bool:
    """A table's changelog is compacted: gaps there are real, and faust's recovery reads it."""
    return str(tp.topic).endswith("-changelog")


async def _getmany(self: Any, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
    expect = _expect(self)
    tried: set[tuple[Any, int]] = getattr(self, _TRIED)
    turns = _turns(self)
    turns.idle.set()  # a new batch: the drain loop holds nothing of the last one (even if it was dropped)
    held_back: set[Any] = set()  # partitions sought again during this batch: the rest of it is stale too
    async for tp, message in _original_getmany(self, timeout):
        turns.idle.set()  # the message yielded last is done with
        await turns.open.wait()  # a seek back to the committed offsets goes first
        stream = not _is_changelog(tp)  # recovery reads the changelogs during the rebalance itself
        if tp in held_back:
            continue
        wanted = expect.get(tp) if stream else None
        if wanted is not None and message.offset > wanted and (tp, wanted) not in tried:
            tried.add((tp, wanted))
            held_back.add(tp)
            log.warning(
                "%s[%d]: offset %d arrived before %d after a seek; seeking %d again so nothing is skipped",
                tp.topic, tp.partition, message.offset, wanted, wanted,
            )  # fmt: skip
            await _original_seek(self, tp, wanted)
            continue
        if wanted is not None and message.offset >= wanted:
            expect.pop(tp, None)
        if stream and (not (self.flow_active and self.app.flow_control.is_active()) or self.app.rebalancing):
            # Stopped (a rebalance) since the fetch, or not resumed yet after recovery's seek: the drain
            # loop would drop this message, or queue it where resuming clears it (faust's stream queues
            # are cleared on resume, even when resumed already), and count it read either way. It is
            # fetched again once the rebalance is over.
            held_back.add(tp)
            await _seek(self, tp, message.offset)
            continue
        turns.idle.clear()
        yield tp, message
    turns.idle.set()


def install() -> None:
    """Patch faust's consumer once; idempotent."""
    if Consumer.getmany is not _getmany:
        Consumer.getmany = _getmany  # type: ignore[method-assign,assignment]
        Consumer.seek = _seek  # type: ignore[method-assign]
        Consumer.seek_to_committed = _seek_to_committed  # type: ignore[method-assign]
        Consumer.perform_seek = _perform_seek  # type: ignore[method-assign]
