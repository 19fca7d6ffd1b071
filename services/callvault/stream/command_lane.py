"""Subject requests in a lane of their own, so that a legal hold never waits behind one.

Every command arrives on `commands`, one partition at a time, in order. A
subject request can take minutes: it lists its tenant's whole subject index
(one LIST per 1,000 calls; `storage.subject_index.calls_of`). In line with the
others, it held up every command behind it on its partition, a legal hold
included, and a call falling due meanwhile could be purged before the hold
that was meant to keep it was placed.

So the commands agent carries out holds (and every other short command) as they
come, and hands subject commands to this lane: one at a time, in the order they
came, as they ran before. Each record is acknowledged only once its work is
done. faust commits a partition's offset up to its first unacknowledged record
(`Consumer._new_offset` stops at a gap), so a worker stopped or killed while a
request waits or runs reads it again, with the commands after it; every command
is idempotent (a fulfilled request answers again, a hold placed twice is one
hold). The lane holds at most `depth` commands: the agent waits when it is full.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

log = logging.getLogger("callvault.worker")

DEPTH = 100  # subject commands waiting at most, beyond which the commands agent waits too


class Acked(Protocol):
    def ack(self) -> bool: ...


C = TypeVar("C")
E = TypeVar("E", bound=Acked)


class CommandLane(Generic[C, E]):
    """One task carrying out the commands put to it, in order, each acknowledged when done."""

    def __init__(self, carry_out: Callable[[C, E], Awaitable[None]], depth: int = DEPTH) -> None:
        # `carry_out` says what went wrong itself (a dead letter): whatever it raises is logged.
        self._carry_out = carry_out
        self._queue: asyncio.Queue[tuple[C, E]] = asyncio.Queue(maxsize=depth)
        self._task: asyncio.Task[None] | None = None
        self._busy = False

    async def put(self, command: C, record: E) -> None:
        """Queue `command` (read from `record`); returns once it is queued, long before it is done."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._work(), name="callvault-subject-lane")
        await self._queue.put((command, record))

    def __len__(self) -> int:
        """Commands queued or in hand."""
        return self._queue.qsize() + (1 if self._busy else 0)

    async def _work(self) -> None:
        while True:
            command, record = await self._queue.get()
            self._busy = True
            try:
                await self._carry_out(command, record)
            except Exception:  # noqa: BLE001 - `carry_out` dead-letters what it can; the lane goes on
                log.exception("a subject command failed in its lane")
            finally:
                self._busy = False
            # Not reached when the lane is cancelled: an unfinished command stays unacknowledged.
            record.ack()
            self._queue.task_done()

    async def drained(self) -> None:
        """Wait until every command queued so far is done (tests; a stop uses faust's own wait)."""
        await self._queue.join()

    async def stop(self) -> None:
        """Cancel the lane; what it had not finished is not acknowledged, so it is read again."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
