"""The call-state table: a faust table whose changelog keeps each call beside its `calls` partition.

faust recovers, for each partition of `calls` a worker is given, the changelog
partition of the same number, and its in-memory store keeps nothing else once
recovery ends. So a call's state must be written to the changelog partition
numbered as the call's `calls` partition (`messages.state_partition`). faust
cannot do that by itself here: the table's key is `{tenant}/{call_id}`, and
`calls` is partitioned by the call id alone, so faust's own partitioner (on the
key) put three states in four somewhere else. One worker never noticed, since
it holds every partition; with several, a call moved by a rebalance went on
with no state (`tests/integration/test_restart.py`).

Versions before this one left states where the key hashed (a "legacy"
partition). Such an entry is still taken while nothing newer is known of the
call, so an upgrade loses no call in flight; it never replaces what the call's
own partition says, whatever order recovery reads partitions in; and the first
write of that call afterwards also deletes it (a tombstone where it lay), so it
cannot come back once the call is gone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from faust.tables.table import Table
from faust.types import EventT

from callvault.stream.messages import state_partition


class CallStateTable(Table):  # type: ignore[misc]  # faust's classes are untyped
    """A `faust.Table` of bytes keys that places each changelog entry by `state_partition`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # key -> the legacy partition its current value was read from; empty once every
        # call an older version left has been written again (or there never was one).
        self.legacy_origin: dict[bytes, int] = {}

    def partition_for_key(self, key: Any) -> int:
        return state_partition(key, self.partitions)

    def on_key_set(self, key: Any, value: Any) -> None:
        self._leave_legacy_partition(key)
        super().on_key_set(key, value)
        self._placed(key)

    def on_key_del(self, key: Any) -> None:
        self._leave_legacy_partition(key)
        super().on_key_del(key)
        self.data._key_partition.pop(key, None)  # noqa: SLF001 - see _placed; faust's own deletion keeps it

    def apply_changelog_batch(self, batch: Iterable[EventT]) -> None:
        """Recovery and standby reads: a legacy entry counts only while the own partition is silent."""
        kept = []
        own_seen: set[bytes] = set()  # keys given a value or a deletion from their own partition
        for event in batch:
            key = event.key
            own = self.partition_for_key(key)
            if event.message.partition == own:
                self.legacy_origin.pop(key, None)
                own_seen.add(key)
            elif key in own_seen or (key in self.data and key not in self.legacy_origin):
                continue  # an older version's entry: the call's own partition has said more since
            elif event.message.value is None:
                self.legacy_origin.pop(key, None)
            else:
                self.legacy_origin[key] = event.message.partition
            kept.append(event)
        super().apply_changelog_batch(kept)
        for event in kept:
            if event.key in self.data:
                self._placed(event.key)

    def _leave_legacy_partition(self, key: bytes) -> None:
        legacy = self.legacy_origin.pop(key, None)
        if legacy is not None:
            self.send_changelog(legacy, key, None, value_serializer="raw")

    def _placed(self, key: bytes) -> None:
        """faust's memory store drops, after each recovery, every key it last read from a partition this
        worker does not hold: it must know the call's own partition, whoever wrote the value."""
        self.data._key_partition[key] = self.partition_for_key(key)  # noqa: SLF001 - memory:// store
