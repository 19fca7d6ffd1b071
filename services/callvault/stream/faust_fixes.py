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
marker, say) and goes on to faust's own handling, so nothing loops.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from faust.transport.drivers.aiokafka import Consumer  # the consumer faust uses with aiokafka

log = logging.getLogger("callvault.worker")

_EXPECT = "_callvault_next_offset"  # tp -> the offset the next message must have
_TRIED = "_callvault_reseeked"  # (tp, offset) already sought again once

_original_getmany = Consumer.getmany
_original_seek = Consumer.seek
_original_seek_to_committed = Consumer.seek_to_committed


def _expect(consumer: Any) -> dict[Any, int]:
    if not hasattr(consumer, _EXPECT):
        setattr(consumer, _EXPECT, {})
        setattr(consumer, _TRIED, set())
    return getattr(consumer, _EXPECT)  # type: ignore[no-any-return]


async def _seek(self: Any, partition: Any, offset: int) -> None:
    await _original_seek(self, partition, offset)
    if offset is not None and offset >= 0:
        _expect(self)[partition] = offset


async def _seek_to_committed(self: Any) -> Any:
    sought = await _original_seek_to_committed(self)
    expect = _expect(self)
    for tp, offset in sought.items():
        if offset is not None and offset >= 0:
            expect[tp] = offset
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
    held_back: set[Any] = set()  # partitions sought again during this batch: the rest of it is stale too
    async for tp, message in _original_getmany(self, timeout):
        if tp in held_back:
            continue
        wanted = None if _is_changelog(tp) else expect.get(tp)
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
        yield tp, message


def install() -> None:
    """Patch faust's consumer once; idempotent."""
    if Consumer.getmany is not _getmany:
        Consumer.getmany = _getmany  # type: ignore[method-assign,assignment]
        Consumer.seek = _seek  # type: ignore[method-assign]
        Consumer.seek_to_committed = _seek_to_committed  # type: ignore[method-assign]
