"""Copies of small registries that requests use while they are at most a TTL old, refreshed ahead of time.

The API answers from copies of the restrictions, the legal holds and the client policies instead of
listing the store on every request; a copy is never older than its TTL
(CALLVAULT_API_RESTRICTIONS_TTL_S: how long a new restriction may take to reach a coach). When a copy
expired, the requests of that moment waited for a listing, and for the policies and the holds each of
them listed the store again: as many listings as requests waiting. So a copy is refreshed in the
background once it is half its TTL old, by one refresh at a time, while requests go on using it. A
request waits only for a copy past its TTL (the first one, or after the store did not answer a
refresh), and then shares the one refresh in flight. A copy counts as read when its refresh began, so
its age is never understated.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger("callvault.api")

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class _Copy(Generic[V]):
    read_at: float
    value: V


class FreshCopies(Generic[K, V]):
    """`read(key)` kept per key, never served older than `ttl_s()` seconds."""

    def __init__(
        self,
        what: str,
        read: Callable[[K], Awaitable[V]],
        ttl_s: Callable[[], float],
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._what = what
        self._read = read
        self._ttl_s = ttl_s
        self._now = now
        self._copies: dict[K, _Copy[V]] = {}
        self._refreshing: dict[K, asyncio.Future[V]] = {}

    async def get(self, key: K) -> V:
        now, ttl = self._now(), self._ttl_s()
        kept = self._copies.get(key)
        if kept is not None and now - kept.read_at < ttl:
            if now - kept.read_at >= ttl / 2:
                self._refresh(key)  # in the background: this request has a copy young enough
            return kept.value
        return await asyncio.shield(self._refresh(key))

    def _refresh(self, key: K) -> asyncio.Future[V]:
        """The refresh of `key` in flight, started if there is none."""
        pending = self._refreshing.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._read_now(key))
            pending.add_done_callback(self._said)
            self._refreshing[key] = pending
        return pending

    async def _read_now(self, key: K) -> V:
        began = self._now()
        try:
            value = await self._read(key)
            self._copies[key] = _Copy(began, value)
            return value
        finally:
            self._refreshing.pop(key, None)

    def _said(self, done: asyncio.Future[V]) -> None:
        """A failed refresh is said in the log, waited for or not: one in the background would otherwise
        fail in silence while its copy ages towards the TTL."""
        if not done.cancelled() and done.exception() is not None:
            log.warning("could not refresh the %s: %r", self._what, done.exception())
