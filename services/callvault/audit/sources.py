"""Reading the audit log back: the archived segments, then the tail still only in the topic."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from botocore.client import BaseClient

from callvault.rules.audit_chain import ChainBreak, ChainCheck
from callvault.rules.audit_checkpoint import CheckpointTrail
from callvault.settings import Settings
from callvault.storage import archive, audit_checkpoints
from callvault.storage import audit_archive as store
from callvault.stream.kafka_security import client_options


@dataclass
class AuditLog:
    """What reading the log found besides its events, filled in while they stream past.

    Events are not kept here: a replay folds them as they are read, so a year of
    lifecycle costs the replay's own state, not the log's size, in memory.
    """

    breaks: list[ChainBreak] = field(default_factory=list)
    segments: int = 0
    checkpoints: int = 0  # signed checkpoints verified on the way
    archived_events: int = 0
    tail_events: int = 0
    last_offsets: dict[int, int] = field(default_factory=dict)  # partition -> last archived offset
    tail: list[dict[str, Any]] = field(default_factory=list)  # read after the archive; small
    # What the replay read, to bind a partial result to this very log (issue 33): the newest checkpoint
    # trusted (`seq`, `sha256` of its stored form) and the SHA-256 of every segment read.
    checkpoint: dict[str, Any] | None = None
    segment_sha256: dict[str, str] = field(default_factory=dict)

    def join(self, part: AuditLog) -> None:
        """Add what reading one share of the partitions found (a process's, or a partial's)."""
        self.breaks.extend(part.breaks)
        self.segments += part.segments
        self.archived_events += part.archived_events
        self.tail_events += part.tail_events
        self.last_offsets.update(part.last_offsets)
        self.segment_sha256.update(part.segment_sha256)
        self.checkpoint = self.checkpoint or part.checkpoint


def _values(records: Iterator[str]) -> Iterator[dict[str, Any]]:
    for text in records:
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict):
            yield value


def log_events(
    s3: BaseClient, settings: Settings, log: AuditLog, on_segment: Callable[[int, int], None] | None = None
) -> Iterator[dict[str, Any]]:
    """The whole log in order: the archived segments, then the topic's tail past them."""
    yield from archive_events(s3, settings, log, on_segment)
    asyncio.run(read_tail(settings, log))  # needs the archive's last offsets: read only now
    tail, log.tail = log.tail, []
    yield from tail


def archive_events(
    s3: BaseClient,
    settings: Settings,
    log: AuditLog,
    on_segment: Callable[[int, int], None] | None = None,
    partitions: Iterable[int] | None = None,
    signed: dict[str, tuple[int, str]] | None = None,
) -> Iterator[dict[str, Any]]:
    """Every archived event, partition by partition; each chain checked as its segments pass.

    `on_segment(done, total)` reports progress. Breaks land in `log.breaks` once a
    partition is read, so read them after the events are consumed. `partitions`:
    only these (a share of a replay split by partition); `signed`: what the
    checkpoints sign, when they were already read (`signed_heads`).
    """
    if signed is None:
        signed = signed_heads(s3, settings, log)
    # Every partition the segments' heads name too, not only the configured count (issue 33).
    if partitions is None:
        heads = store.head_partitions(s3, settings.audit_bucket)
        chosen = sorted(set(range(settings.partitions)) | set(heads))
    else:
        chosen = list(partitions)
    keys = {p: store.segment_keys(s3, settings.audit_bucket, p) for p in chosen}
    total = sum(len(k) for k in keys.values())
    for partition, names in keys.items():
        chain = ChainCheck()
        for name in names:
            body = store.read_segment(s3, settings.audit_bucket, name)
            log.segments += 1
            if on_segment is not None:
                on_segment(log.segments, total)
            parsed = chain.add(name, body)
            log.segment_sha256[name] = hashlib.sha256(body).hexdigest()
            del body
            if name in signed and signed[name][1] != chain.previous_sha:
                detail = f"it is not the segment checkpoint {signed[name][0]} signed"
                log.breaks.append(ChainBreak("edited", name, detail))
            if parsed is None:
                continue  # the chain check reports it
            header, records = parsed
            log.last_offsets[partition] = max(log.last_offsets.get(partition, -1), header.last_offset)
            for event in _values(r.value for r in records):
                log.archived_events += 1
                yield event
        log.breaks.extend(chain.breaks)
        hidden = store.deleted_keys(s3, settings.audit_bucket, store.segment_prefix(partition))
        log.breaks.extend(
            ChainBreak("deleted", name, "a delete marker hides this locked segment") for name in hidden
        )
        log.breaks.extend(_check_head(s3, settings, partition, names, chain.previous_sha))


def signed_heads(s3: BaseClient, settings: Settings, log: AuditLog) -> dict[str, tuple[int, str]]:
    """Every checkpoint, each checked against the trusted key and the one before; what they signed.

    A checkpoint that cannot be trusted is a break, and what it and those after it
    sign is not used: the chain alone still vouches for the segments.
    """
    trail = CheckpointTrail(settings.trusted_audit_key)
    signed: dict[str, tuple[int, str]] = {}
    bucket = settings.audit_bucket
    log.breaks.extend(
        ChainBreak("deleted", key, "a delete marker hides this locked checkpoint")
        for key in audit_checkpoints.deleted_checkpoint_keys(s3, bucket)
    )
    log.breaks.extend(
        ChainBreak("unsigned", key, "not a checkpoint's name: an object planted among them")
        for key in audit_checkpoints.stray_keys(s3, bucket)
    )
    for key, versions in audit_checkpoints.checkpoint_versions(s3, bucket).items():
        try:
            found = [audit_checkpoints.read_checkpoint(s3, bucket, key, v) for v in versions]
        except ValueError as exc:
            log.breaks.append(ChainBreak("unsigned", key, str(exc)))
            break
        if any(cp.seq != audit_checkpoints.seq_of(key) for cp in found):
            log.breaks.append(
                ChainBreak("unsigned", key, f"holds checkpoint {found[0].seq}, under another number")
            )
            break
        if not trail.add_versions(found):
            break
        log.checkpoints += 1
        signed.update({head.segment: (cp.seq, head.sha256) for cp in found for head in cp.heads.values()})
    log.breaks.extend(ChainBreak("unsigned", "checkpoints/", problem) for problem in trail.problems)
    if trail.last is not None:
        log.checkpoint = {"seq": trail.last.seq, "sha256": trail.last.sha256()}
    return signed


def _check_head(
    s3: BaseClient, settings: Settings, partition: int, names: list[str], last_sha: str
) -> list[ChainBreak]:
    """The chain vouches for every segment but the last; the head names the last one's hash.

    A head lags the segments after a crash between the two writes (nothing to compare), but never
    names a segment the store has not got: that is the tail cut off (issue 33).
    """
    head = store.read_head(s3, settings.audit_bucket, partition)
    if head is None:
        return []
    if head.key not in names:
        if names and head.key < names[-1]:
            return []  # older than the last segment, and listed no more: the chain reports the gap
        if archive.head(s3, settings.audit_bucket, head.key) is not None:
            return []  # written after the listing: a worker is archiving as the log is read
        return [
            ChainBreak(
                "removed", head.key, "the partition's head names this segment, which the store has not got"
            )
        ]
    if head.key != names[-1]:
        return []  # a segment stored after the head moved (a crash in between): nothing to compare
    if head.sha256 != last_sha:
        return [ChainBreak("edited", head.key, "the last segment is not the one the partition's head names")]
    return []


async def read_tail(
    settings: Settings, log: AuditLog, idle_s: float = 1.5, partitions: Iterable[int] | None = None
) -> None:
    """The records of `lifecycle` after the last archived offset of each partition (or of these)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False, **client_options(settings)
    )
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(settings.lifecycle_topic) or set()
        if not parts:
            await consumer._client.force_metadata_update()  # noqa: SLF001
            parts = consumer.partitions_for_topic(settings.lifecycle_topic) or set()
        wanted = set(parts) if partitions is None else set(parts) & set(partitions)
        tps = [TopicPartition(settings.lifecycle_topic, p) for p in sorted(wanted)]
        if not tps:
            return
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, log.last_offsets.get(tp.partition, -1) + 1)
        while True:
            batch = await consumer.getmany(timeout_ms=int(idle_s * 1000), max_records=5000)
            if not batch:
                return
            for records in batch.values():
                texts = (r.value.decode("utf-8", "replace") for r in records if r.value is not None)
                before = len(log.tail)
                log.tail.extend(_values(texts))
                log.tail_events += len(log.tail) - before
    finally:
        await consumer.stop()
