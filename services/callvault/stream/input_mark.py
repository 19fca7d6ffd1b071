"""How far the worker has read its input: a call's deadline is judged only once it has read that far.

A wake-up decides a call whose deadline passed by the clock (the disclosure's grace, a payment
window's end). The events that could still settle the call come through `call-events`. A worker
behind on that topic (reading a backlog after a restart, or a burst) would judge the call before
reading what the platform sent in time, and reject a call whose disclosure waits a few records on.
So a wake-up is sent only once its deadline is no later than the *input mark*: the time up to which
every `call-events` partition the worker holds has been taken in (processed, forwarded or set aside).

A partition counts up to the clock once what was taken reaches the end its last fetch saw; before
that, up to when the last record taken from it reached Kafka (its timestamp). Where the group
committed further on (another worker held it), it counts from there; where nothing was ever
committed, from 0: an empty partition is read to its end, one holding records is not until one is
taken. The end is as old as the last fetch (a fraction of a second while the consumer runs); the
deadlines it guards are seconds (tests) to minutes (the default grace, PT5M).

Each worker judges by its own partitions: a call whose events a producer put on a partition another
worker holds (its own partitioner) comes through `calls` after that worker's intake, and is judged
by this worker's mark alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class PartitionProgress:
    """One `call-events` partition as the worker knows it now."""

    next_offset: int  # after the last record taken, or the group's committed offset if further (else 0)
    end: int | None  # the partition's end offset as the last fetch saw it; None before the first fetch
    last_published: datetime | None  # when the last record taken reached Kafka; None: none taken


def input_mark(now: datetime, partitions: Iterable[PartitionProgress]) -> datetime | None:
    """The time up to which every partition has been taken in; None when a partition cannot tell.

    Never later than `now`: a producer's clock ahead of ours moves nothing forward.
    """
    mark = now
    for part in partitions:
        if part.end is not None and part.next_offset >= part.end:
            continue  # read to its end: up to the clock
        if part.last_published is None:
            return None  # behind, and no record of its taken yet: nothing is known to be read
        mark = min(mark, part.last_published)
    return mark


class InputProgress:
    """The last record taken from each input partition: its offset and when it reached Kafka."""

    def __init__(self) -> None:
        self._taken: dict[Any, tuple[int, datetime]] = {}

    def took(self, tp: Any, offset: int, timestamp_s: float | None) -> None:
        """A record is done with (processed, forwarded or dead-lettered)."""
        known = self._taken.get(tp)
        if known is not None and known[0] > offset:
            return  # an older record read again after a seek: the mark never goes back for it
        published = published_at(timestamp_s) or (known[1] if known else datetime.min.replace(tzinfo=UTC))
        self._taken[tp] = (offset, published)

    def progress(self, tp: Any, end: int | None, committed: int | None) -> PartitionProgress:
        """Where the partition stands: a partition taken back after another worker held it counts from
        the group's commit when that is further on (its last timestamp is then older than the truth,
        which only holds wake-ups back until the next record)."""
        known = self._taken.get(tp)
        after_taken = -1 if known is None else known[0] + 1
        return PartitionProgress(max(after_taken, committed or 0), end, None if known is None else known[1])


def published_at(timestamp_s: float | None) -> datetime | None:
    """A Kafka record's timestamp (seconds, as faust gives it) as a UTC time; None when it has none."""
    if timestamp_s is None or timestamp_s <= 0:
        return None
    return datetime.fromtimestamp(timestamp_s, UTC)
