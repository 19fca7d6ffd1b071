"""The embedded broker's end offsets, and why callvault writes one record per batch there.

Tansu answers ListOffsets(latest) with the last batch's first offset + 1. faust
recovers a table by reading its changelog up to that offset, so a multi-record
last batch would lose state after a restart (see `Settings.producer_max_batch_bytes`).
"""

from __future__ import annotations

import asyncio
import secrets

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from callvault.stream.bus import ensure_topics, make_producer
from tests.stack import Servers

pytestmark = pytest.mark.integration


async def _end_after_writing(servers: Servers, max_batch_size: int, records: int) -> int:
    topic = f"offsets-{secrets.token_hex(4)}"
    await ensure_topics(servers.kafka_bootstrap, [topic], partitions=1)
    producer = make_producer(servers.kafka_bootstrap, max_batch_size=max_batch_size, linger_ms=20)
    await producer.start()
    try:
        sent = [await producer.send(topic, value=b"x") for _ in range(records)]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=servers.kafka_bootstrap)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        return (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()


async def test_one_record_per_batch_gives_a_true_end_offset(servers: Servers) -> None:
    assert await _end_after_writing(servers, max_batch_size=1, records=7) == 7
