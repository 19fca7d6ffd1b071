"""A call's messages take turns, whichever agent brought them; other calls do not wait."""

from __future__ import annotations

import asyncio

from callvault.stream.call_locks import CallLocks


async def test_two_messages_of_one_call_never_run_at_once_and_other_calls_do_not_wait() -> None:
    turns = CallLocks()
    first_in, release = asyncio.Event(), asyncio.Event()
    order: list[str] = []

    async def message(key: bytes, name: str, hold: bool = False) -> None:
        async with turns.turn(key):
            order.append(f"{name} in")
            if hold:
                first_in.set()
                await release.wait()
            order.append(f"{name} out")

    first = asyncio.create_task(message(b"acme/c-1", "first", hold=True))
    await first_in.wait()
    second = asyncio.create_task(message(b"acme/c-1", "second"))
    other = asyncio.create_task(message(b"acme/c-2", "other"))
    await other  # another call runs while c-1's first message holds its turn
    assert order == ["first in", "other in", "other out"]
    release.set()
    await asyncio.gather(first, second)
    assert order[3:] == ["first out", "second in", "second out"]
    assert len(turns) == 0  # nothing kept for calls no message is on


async def test_a_turn_is_given_back_when_its_message_fails_or_is_cancelled() -> None:
    turns = CallLocks()
    try:
        async with turns.turn(b"acme/c-1"):
            raise RuntimeError("the message failed")
    except RuntimeError:
        pass
    held = asyncio.Event()

    async def holder() -> None:
        async with turns.turn(b"acme/c-1"):
            held.set()
            await asyncio.Event().wait()

    async def waiter() -> None:
        async with turns.turn(b"acme/c-1"):
            pass

    holding = asyncio.create_task(holder())
    await held.wait()
    waiting = asyncio.create_task(waiter())
    await asyncio.sleep(0)  # the waiter queues for the turn
    waiting.cancel()
    holding.cancel()
    await asyncio.gather(holding, waiting, return_exceptions=True)
    assert len(turns) == 0
    async with turns.turn(b"acme/c-1"):  # and the call can be taken again
        assert len(turns) == 1
