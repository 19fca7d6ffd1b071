"""Follow a topic as it grows and wait for what should appear: the demo, tests and bench use it."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from callvault.settings import Settings
from callvault.stream.bus import Brokers, BrokerUnreachable, connection, start_client


class TopicWatcher:
    """Reads every partition of a topic from the beginning, indexing JSON values by a field."""

    def __init__(self, brokers: Brokers, topic: str, index_by: str = "call_id") -> None:
        self.bootstrap, self._security = connection(brokers)
        self._brokers = brokers
        self.topic = topic
        self.index_by = index_by
        self.records: list[dict[str, Any]] = []
        self.by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._next: dict[TopicPartition, int] = {}  # per partition, the offset after the last one read
        self._parts: list[TopicPartition] = []

    async def start(self, from_end: bool = False) -> TopicWatcher:
        """From the beginning, or (`from_end`) only what arrives after this call."""
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **self._security,
        )
        await start_client(self._consumer, self._brokers)
        parts: set[int] = set()
        for _ in range(50):
            await self._consumer._client.force_metadata_update()  # noqa: SLF001
            parts = self._consumer.partitions_for_topic(self.topic) or set()
            if parts:
                break
            await asyncio.sleep(0.1)
        if not parts:
            await self._consumer.stop()
            user = self._brokers.kafka_sasl_username if isinstance(self._brokers, Settings) else None
            raise BrokerUnreachable(
                f"the topic {self.topic} is not there for the Kafka user {user or '(anonymous)'!r}: it does "
                "not exist yet, or that user's ACLs do not let it read the topic"
            )
        tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        self._parts = tps
        self._consumer.assign(tps)
        if from_end:
            await self._consumer.seek_to_end(*tps)
            for tp in tps:  # resolve the end now, not at the first fetch
                self._next[tp] = await self._consumer.position(tp)
        else:
            await self._consumer.seek_to_beginning(*tps)
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batch = await self._consumer.getmany(timeout_ms=200, max_records=5000)
            for tp, records in batch.items():
                for record in records:
                    self._next[tp] = record.offset + 1
                    try:
                        value = json.loads(record.value) if record.value is not None else None
                    except ValueError:
                        value = None
                    if not isinstance(value, dict):
                        continue
                    self.records.append(value)
                    self.by_key[str(value.get(self.index_by))].append(value)
            if batch:
                self._changed.set()

    async def wait_for(
        self, predicate: Callable[[TopicWatcher], bool], timeout: float, what: str = "condition"
    ) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{what} not reached within {timeout:.0f}s on {self.topic}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=min(left, 0.5))
            except TimeoutError:
                pass

    async def read_to_end(self, timeout: float = 30) -> None:
        """Wait until everything on the topic as of now has been read: nothing written before is missed."""
        assert self._consumer is not None, "start() first"
        ends = await self._consumer.end_offsets(self._parts)
        await self.wait_for(
            lambda w: all(w._next.get(tp, 0) >= end for tp, end in ends.items()), timeout, "the end"
        )

    def types_for(self, key: str) -> list[str]:
        return [str(r.get("type")) for r in self.by_key.get(key, [])]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        if self._consumer is not None:
            await self._consumer.stop()
