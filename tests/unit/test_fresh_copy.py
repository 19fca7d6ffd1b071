"""The API's copies of the registries (api/fresh_copy.py): never older than their TTL, refreshed ahead of
it so that no request waits for a listing while its copy is young enough, one refresh at a time."""

from __future__ import annotations

import asyncio

import pytest

from callvault.api.fresh_copy import FreshCopies

TTL = 2.0


class Store:
    """A registry whose listing the test lets through one at a time."""

    def __init__(self) -> None:
        self.value = "v1"
        self.reads = 0
        self.gate = asyncio.Event()
        self.fail: Exception | None = None

    async def read(self, key: str) -> str:
        self.reads += 1
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return f"{key}:{self.value}"


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def copies(store: Store, clock: Clock) -> FreshCopies[str, str]:
    return FreshCopies("test registry", store.read, lambda: TTL, now=clock)


async def test_the_first_requests_share_one_read() -> None:
    store, clock = Store(), Clock()
    kept = copies(store, clock)
    waiting = [asyncio.ensure_future(kept.get("acme")) for _ in range(20)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiting), "nothing to answer from before the first read"
    store.gate.set()
    assert await asyncio.gather(*waiting) == ["acme:v1"] * 20
    assert store.reads == 1


async def test_a_copy_half_its_ttl_old_is_served_while_it_is_refreshed_behind() -> None:
    store, clock = Store(), Clock()
    kept = copies(store, clock)
    store.gate.set()
    assert await kept.get("acme") == "acme:v1"
    store.gate.clear()  # the next listing hangs until the test lets it through
    store.value = "v2"
    clock.t += TTL / 2
    answers = [await kept.get("acme") for _ in range(10)]
    assert answers == ["acme:v1"] * 10, "no request waited for the listing"
    await asyncio.sleep(0)  # the refresh's task starts
    assert store.reads == 2, "one refresh started, not one per request"
    store.gate.set()
    while await kept.get("acme") != "acme:v2":  # the refresh lands
        await asyncio.sleep(0)
    assert store.reads == 2


async def test_a_copy_past_its_ttl_is_never_served() -> None:
    store, clock = Store(), Clock()
    kept = copies(store, clock)
    store.gate.set()
    await kept.get("acme")
    store.gate.clear()
    store.value = "v2"
    clock.t += TTL
    asked = asyncio.ensure_future(kept.get("acme"))
    await asyncio.sleep(0)
    assert not asked.done(), "past its TTL the copy is not an answer: the request waits for the store"
    store.gate.set()
    assert await asked == "acme:v2"


async def test_a_refresh_that_fails_leaves_the_copy_to_its_ttl_then_the_error_is_the_answer() -> None:
    store, clock = Store(), Clock()
    kept = copies(store, clock)
    store.gate.set()
    await kept.get("acme")
    store.fail = ConnectionError("the store did not answer")
    clock.t += TTL * 0.75
    assert await kept.get("acme") == "acme:v1"  # starts the refresh, which fails behind
    while store.reads < 2:
        await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert await kept.get("acme") == "acme:v1", "still within its TTL"
    clock.t += TTL
    with pytest.raises(ConnectionError, match="did not answer"):
        await kept.get("acme")
    store.fail = None
    assert await kept.get("acme") == "acme:v1", "the next request reads again"


async def test_each_key_has_its_own_copy() -> None:
    store, clock = Store(), Clock()
    kept = copies(store, clock)
    store.gate.set()
    assert [await kept.get("acme"), await kept.get("globex")] == ["acme:v1", "globex:v1"]
    assert store.reads == 2
