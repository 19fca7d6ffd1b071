"""The subject lane: subject commands one at a time, in order, each acknowledged only once done.

The worker's commands agent hands subject commands to it so that a legal hold
behind one is not kept waiting (tests/integration/test_subjects.py shows it on
the real stack); what the lane itself promises is checked here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from callvault.stream.command_lane import CommandLane


async def until(predicate: Callable[[], bool]) -> None:
    """Let the loop run until `predicate` holds (5 s at most)."""

    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0)

    await asyncio.wait_for(poll(), 5)


class Record:
    """What the lane needs of a faust event: an ack, here remembered."""

    def __init__(self, name: str, acks: list[str]) -> None:
        self.name, self._acks = name, acks

    def ack(self) -> bool:
        self._acks.append(self.name)
        return True


async def test_commands_run_one_at_a_time_in_order_and_each_is_acked_when_done() -> None:
    acks: list[str] = []
    trace: list[str] = []
    release = asyncio.Event()

    async def carry_out(command: str, record: Record) -> None:
        trace.append(f"begin {command}")
        if command == "first":
            await release.wait()
        trace.append(f"end {command}")

    lane: CommandLane[str, Record] = CommandLane(carry_out)
    for name in ("first", "second", "third"):
        await lane.put(name, Record(name, acks))
    await until(lambda: trace == ["begin first"])
    assert acks == [] and len(lane) == 3  # the first is in hand and not acknowledged; the rest wait

    release.set()
    await asyncio.wait_for(lane.drained(), 5)
    assert trace == ["begin first", "end first", "begin second", "end second", "begin third", "end third"]
    assert acks == ["first", "second", "third"]
    await lane.stop()


async def test_a_failing_command_is_logged_acked_and_the_lane_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    acks: list[str] = []

    async def carry_out(command: str, record: Record) -> None:
        if command == "bad":
            raise RuntimeError("the store said no")

    lane: CommandLane[str, Record] = CommandLane(carry_out)
    with caplog.at_level(logging.ERROR, logger="callvault.worker"):
        await lane.put("bad", Record("bad", acks))
        await lane.put("good", Record("good", acks))
        await asyncio.wait_for(lane.drained(), 5)
    assert acks == ["bad", "good"]
    assert "a subject command failed in its lane" in caplog.text
    await lane.stop()


async def test_a_command_cut_off_by_a_stop_is_not_acked_so_it_is_read_again() -> None:
    acks: list[str] = []
    began = asyncio.Event()

    async def carry_out(command: str, record: Record) -> None:
        began.set()
        await asyncio.Event().wait()  # a lookup that has not ended when the worker stops

    lane: CommandLane[str, Record] = CommandLane(carry_out)
    await lane.put("long", Record("long", acks))
    await asyncio.wait_for(began.wait(), 5)
    await lane.stop()
    assert acks == []


async def test_a_full_lane_makes_the_agent_wait() -> None:
    acks: list[str] = []
    release = asyncio.Event()

    async def carry_out(command: str, record: Record) -> None:
        await release.wait()

    lane: CommandLane[str, Record] = CommandLane(carry_out, depth=1)
    await lane.put("in hand", Record("in hand", acks))
    await lane.put("waiting", Record("waiting", acks))  # the one place in the queue (the first is taken)
    await until(lambda: len(lane) == 2)
    third = asyncio.create_task(lane.put("third", Record("third", acks)))
    await asyncio.sleep(0)  # the put begins, and finds the queue full
    # Nothing frees a place until `release` is set, so the agent's put is still waiting: no unbounded
    # backlog of unacknowledged commands.
    assert not third.done()

    release.set()
    await asyncio.wait_for(third, 5)
    await asyncio.wait_for(lane.drained(), 5)
    assert acks == ["in hand", "waiting", "third"]
    await lane.stop()
