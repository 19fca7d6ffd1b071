"""Which partitions each worker of a group holds, as its log says: the fault tests wait on it."""

from __future__ import annotations

import asyncio
import re

from callvault.embedded.processes import ChildProcess


def shares(log: str, topic: str) -> list[str]:
    """The partitions of `topic` a worker's log says it was given, one entry per assignment.

    faust prints a share as `{0, 2}` or as a range, `{0-1}` (Apache Kafka's assignments come contiguous).
    """
    return re.findall(rf"{re.escape(topic)}\s*\|\s*\{{([0-9, -]+)\}}", log)


def partitions_of(share: str) -> set[int]:
    """`0, 2` or `0-1` (or both, `0-1, 3`) as a set of partition numbers."""
    numbers: set[int] = set()
    for part in share.split(","):
        first, _, last = part.strip().partition("-")
        numbers.update(range(int(first), int(last or first) + 1))
    return numbers


async def until_shared(worker: ChildProcess, topic: str, timeout: float) -> None:
    """Wait until the worker's log shows it holding a share of the partitions, not all four."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        held = shares(worker.log_path.read_text(errors="replace"), topic)
        if any(h != "0-3" for h in held):
            return
        assert worker.alive(), worker.tail(40)
        assert asyncio.get_running_loop().time() < deadline, (
            f"the workers never shared the partitions: {held}"
        )
        await asyncio.sleep(0.5)


async def until_split(workers: list[ChildProcess], topic: str, partitions: int, timeout: float) -> None:
    """Wait until the workers' latest assignments split `topic`'s partitions among them, every partition
    held once, by more than one worker (faust may leave one idle: 2, 2 and 0 of 4, seen on Apache Kafka)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        latest = [shares(w.log_path.read_text(errors="replace"), topic)[-1:] for w in workers]
        held = [partitions_of(s[0]) if s else set() for s in latest]
        covered = set().union(*held) == set(range(partitions))
        if sum(1 for h in held if h) > 1 and sum(len(h) for h in held) == partitions and covered:
            return
        for w in workers:
            assert w.alive(), w.tail(40)
        assert asyncio.get_running_loop().time() < deadline, f"the workers never split the partitions: {held}"
        await asyncio.sleep(0.5)
