"""One call at a time: the worker's two ways into a call's state take turns.

A call event already on its call's own partition is processed by the intake
agent; the others, and every wake-up, by the `calls` agent (see `stream/app.py`).
Each agent runs one call's messages in order, but the two agents run side by
side, and a call's state is read, worked on across S3 awaits, and written back:
two messages of one call at once would lose one's changes. So each message takes
its call's lock; a lock exists only while some message of its call holds or
waits for it, so the worker keeps none for the calls it has finished.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class CallLocks:
    def __init__(self) -> None:
        self._held: dict[bytes, tuple[asyncio.Lock, int]] = {}  # key -> (its lock, holders and waiters)

    @asynccontextmanager
    async def turn(self, key: bytes) -> AsyncIterator[None]:
        """Hold the call's turn for the body: no other message of the call runs until it ends."""
        lock, users = self._held.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._held[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            _, users = self._held[key]
            if users == 1:
                del self._held[key]
            else:
                self._held[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._held)
