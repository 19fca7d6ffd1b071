"""Reading the audit log back: the archived segments, then the tail still only in the topic."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from botocore.client import BaseClient

from callvault.rules.audit_chain import ChainBreak, digest, parse_segment, verify_chain
from callvault.settings import Settings
from callvault.storage import audit_archive as store


@dataclass
class AuditLog:
    events: list[dict[str, Any]] = field(default_factory=list)
    breaks: list[ChainBreak] = field(default_factory=list)
    segments: int = 0
    archived_events: int = 0
    tail_events: int = 0
    last_offsets: dict[int, int] = field(default_factory=dict)  # partition -> last archived offset


def _values(records: Iterator[str]) -> Iterator[dict[str, Any]]:
    for text in records:
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict):
            yield value


def read_archive(
    s3: BaseClient, settings: Settings, on_segment: Callable[[int, int], None] | None = None
) -> AuditLog:
    """Every segment of every partition, its chain checked; `on_segment(done, total)` for progress."""
    log = AuditLog()
    keys = {p: store.segment_keys(s3, settings.audit_bucket, p) for p in range(settings.partitions)}
    total = sum(len(k) for k in keys.values())
    for partition, names in keys.items():
        bodies = []
        for name in names:
            body = store.read_segment(s3, settings.audit_bucket, name)
            bodies.append((name, body))
            log.segments += 1
            if on_segment is not None:
                on_segment(log.segments, total)
            try:
                header, records = parse_segment(body)
            except ValueError:
                continue  # verify_chain reports it
            log.last_offsets[partition] = max(log.last_offsets.get(partition, -1), header.last_offset)
            before = len(log.events)
            log.events.extend(_values(r.value for r in records))
            log.archived_events += len(log.events) - before
        log.breaks.extend(verify_chain(bodies))
        log.breaks.extend(_check_head(s3, settings, partition, bodies))
    return log


def _check_head(
    s3: BaseClient, settings: Settings, partition: int, bodies: list[tuple[str, bytes]]
) -> list[ChainBreak]:
    """The chain vouches for every segment but the last; the head names the last one's hash."""
    if not bodies:
        return []
    head = store.read_head(s3, settings.audit_bucket, partition)
    name, body = bodies[-1]
    if head is None or head.key != name:
        return []  # a segment stored after the head moved (a crash in between): nothing to compare
    if head.sha256 != digest(body):
        return [ChainBreak("edited", name, "the last segment is not the one the partition's head names")]
    return []


async def read_tail(settings: Settings, log: AuditLog, idle_s: float = 1.5) -> None:
    """The records of `lifecycle` after the last archived offset of each partition."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(settings.lifecycle_topic) or set()
        if not parts:
            await consumer._client.force_metadata_update()  # noqa: SLF001
            parts = consumer.partitions_for_topic(settings.lifecycle_topic) or set()
        tps = [TopicPartition(settings.lifecycle_topic, p) for p in sorted(parts)]
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
                before = len(log.events)
                log.events.extend(_values(texts))
                log.tail_events += len(log.events) - before
    finally:
        await consumer.stop()
