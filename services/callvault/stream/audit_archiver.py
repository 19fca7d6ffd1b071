"""Copying `lifecycle` into the audit bucket as hash-chained segments, with no gap and no duplicate.

Per partition it knows the last archived offset and the hash of the last
segment (read from the store the first time it sees the partition). Records at
or below that offset are a redelivery after a restart and are skipped, so a
segment never repeats a record; offsets are committed only after the segment
is stored, so none is ever skipped either.

The group's leader also signs a checkpoint every `CALLVAULT_AUDIT_CHECKPOINT_S`
(see `rules.audit_checkpoint`): every partition's head as the store has it,
chained to the checkpoint before.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from botocore.client import BaseClient

from callvault.clock import Clock
from callvault.rules.audit_chain import GENESIS, LoggedRecord, digest, parse_segment, segment_body
from callvault.rules.audit_checkpoint import Checkpoint, PartitionHead, next_checkpoint, private_key
from callvault.rules.durations import CalendarDuration, add_duration
from callvault.settings import Settings
from callvault.storage import audit_archive as store
from callvault.storage import audit_checkpoints as checkpoints
from callvault.storage import store_profile
from callvault.stream.offloop import S3Runner

log = logging.getLogger("callvault.audit")


@dataclass
class _Tail:
    last_offset: int
    sha256: str


class AuditArchiver:
    def __init__(self, settings: Settings, s3: S3Runner, clock: Clock) -> None:
        self.settings = settings
        self.s3 = s3
        self.clock = clock
        self.bucket = settings.audit_bucket
        self.retention = CalendarDuration.parse(settings.audit_retention)
        self._tails: dict[int, _Tail] = {}
        self._key = private_key(settings.audit_signing_key.get_secret_value())
        previous = settings.audit_previous_signing_key
        self._previous_key = private_key(previous.get_secret_value()) if previous else None
        self._last_checkpoint: Checkpoint | None = None
        self._checkpoint_known = False
        self._refuses_second_write: bool | None = None  # as storage init measured the store

    def forget(self) -> None:
        """After a rebalance another worker may have written: read the tails (and checkpoints) again."""
        self._tails.clear()
        self._checkpoint_known = False

    async def checkpoint(self) -> Checkpoint | None:
        """Sign and store the next checkpoint over every partition's head; None when another worker
        (a leader for a moment, in a rebalance) stored that number first: this one steps back and
        reads the last checkpoint again before it signs the next."""
        if not self._checkpoint_known:
            self._last_checkpoint = await self.s3.run(
                "reading the last audit checkpoint", checkpoints.last_checkpoint, self.bucket
            )
            self._refuses_second_write = await self.s3.run(
                "reading what storage init measured",
                store_profile.refuses_second_write,
                self.settings.metadata_bucket,
            )
            self._checkpoint_known = True
        heads = await self.s3.run("reading the audit heads", _heads, self.bucket, self.settings.partitions)
        now = self.clock.now()
        cp = next_checkpoint(self._last_checkpoint, heads, now, self._key, self._previous_key)
        retain_until = add_duration(now, self.retention, self.settings.zone)
        locked = await self.s3.run(
            f"writing audit checkpoint {cp.seq}", checkpoints.write_checkpoint, self.bucket, cp, retain_until,
            conditional=self._refuses_second_write,
        )  # fmt: skip
        if locked is None:
            self._checkpoint_known = False
            log.warning(
                "audit checkpoint %d was signed by another worker first (a rebalance); stepping back", cp.seq
            )
            return None
        self._last_checkpoint = cp
        log.info("audit checkpoint %d over %d partitions, %s", cp.seq, len(cp.heads), locked)
        return cp

    async def _tail(self, partition: int) -> _Tail:
        if partition not in self._tails:
            self._tails[partition] = await self.s3.run(
                f"reading the audit chain of partition {partition}", _load_tail, self.bucket, partition
            )
        return self._tails[partition]

    async def archive(self, partition: int, records: Sequence[LoggedRecord]) -> None:
        tail = await self._tail(partition)
        # One record per offset: a batch can hold a record twice (read again after faust sought its
        # partition, as around a rebalance; seen in tests/integration/test_audit_archive.py, a
        # segment of offsets 0, 1, 2, 2), and a segment must never repeat one.
        by_offset = {r.offset: r for r in records if r.offset > tail.last_offset}
        fresh = [by_offset[offset] for offset in sorted(by_offset)]
        if not fresh:
            return
        header, body = segment_body(fresh, tail.sha256)
        key = store.segment_key(partition, header.first_offset)
        retain_until = add_duration(self.clock.now(), self.retention, self.settings.zone)
        locked = await self.s3.run(
            f"writing audit segment {key}", store.write_segment, self.bucket, key, body, retain_until
        )
        sha = digest(body)
        await self.s3.run(
            "moving the audit head",
            store.write_head,
            self.bucket,
            partition,
            store.Head(key, header.last_offset, sha),
        )
        self._tails[partition] = _Tail(header.last_offset, sha)
        log.info("audit segment %s: offsets %d..%d, %s", key, header.first_offset, header.last_offset, locked)


def _load_tail(s3: BaseClient, bucket: str, partition: int) -> _Tail:
    head = store.read_head(s3, bucket, partition)
    tail = _Tail(-1, GENESIS) if head is None else _Tail(head.last_offset, head.sha256)
    # Segments stored after the head was last moved (a crash in between) come first.
    for key in store.segment_keys(s3, bucket, partition, start_after=head.key if head else ""):
        body = store.read_segment(s3, bucket, key)
        header, _ = parse_segment(body)
        if header.last_offset > tail.last_offset:
            tail = _Tail(header.last_offset, digest(body))
    return tail


def _heads(s3: BaseClient, bucket: str, partitions: int) -> dict[int, PartitionHead]:
    found = {}
    for partition in range(partitions):
        head = store.read_head(s3, bucket, partition)
        if head is not None:
            found[partition] = PartitionHead(head.key, head.sha256, head.last_offset)
    return found
