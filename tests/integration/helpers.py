"""Build one call's events and audio, publish them, and wait for what callvault does."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError
from aiokafka.partitioner import DefaultPartitioner

from callvault.contract.fields import format_rfc3339
from callvault.settings import Settings
from callvault.simulation.audio import make_wav
from callvault.storage.client import make_s3_client
from callvault.storage.subject_index import parse_key
from callvault.stream.bus import make_producer, read_records, topic_partitions
from callvault.stream.watch import TopicWatcher

CALLER = "+32470123456"
CALLEE = "+3225551234"


def indexed_subjects(keys: Iterable[str], call_id: str) -> set[str]:
    """Whom the subject index names for the call, read from the metadata bucket's keys (either layout)."""
    return {name for key in keys if (entry := parse_key(key)) and entry[0] == call_id for name in entry[1]}


def new_call_id(prefix: str = "it") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass
class CallScript:
    """One call: its start, when the recording begins, and builders for each event."""

    call_id: str
    tenant: str = "acme"
    start: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(minutes=2))
    audio: bytes = field(default_factory=lambda: make_wav(int(uuid.uuid4().int % 10_000), 1.0))
    staging_bucket: str = "callvault-staging"
    caller: str = CALLER

    @property
    def recording_start(self) -> datetime:
        return self.start + timedelta(seconds=6)

    @property
    def staging_key(self) -> str:
        return f"{self.tenant}/{self.call_id}.wav"

    def _base(self, type_: str, at: datetime) -> dict[str, Any]:
        return {
            "type": type_,
            "event_id": str(uuid.uuid4()),
            "call_id": self.call_id,
            "tenant": self.tenant,
            "occurred_at": format_rfc3339(at),
        }

    def started(self) -> dict[str, Any]:
        return {
            **self._base("call.started", self.start),
            "direction": "inbound",
            "caller": self.caller,
            "callee": CALLEE,
            "agent_id": "agent-7",
            "language": "nl-BE",
        }

    def disclosure(self, *, offset_s: float = 0.5, completed: bool = True) -> dict[str, Any]:
        return {
            **self._base("disclosure.played", self.start + timedelta(seconds=offset_s)),
            "prompt_id": "notice-v2",
            "language": "nl-BE",
            "completed": completed,
            "duration_ms": 4000,
        }

    def stored(self, *, sha256: str | None = None, size: int | None = None) -> dict[str, Any]:
        end = self.recording_start + timedelta(seconds=30)
        return {
            **self._base("recording.stored", end),
            "source_uri": f"s3://{self.staging_bucket}/{self.staging_key}",
            "sha256": sha256 or hashlib.sha256(self.audio).hexdigest(),
            "size_bytes": len(self.audio) if size is None else size,
            "content_type": "audio/wav",
            "recording_started_at": format_rfc3339(self.recording_start),
            "recording_ended_at": format_rfc3339(end),
        }

    def ended(self) -> dict[str, Any]:
        return {**self._base("call.ended", self.recording_start + timedelta(seconds=32)), "duration_s": 38.0}

    def objected(self) -> dict[str, Any]:
        return self._base("recording.objected", self.start + timedelta(seconds=2))

    def at(self, type_: str, offset_s: float, **fields: Any) -> dict[str, Any]:
        """An event `offset_s` seconds into the recording (pauses, payments)."""
        return {**self._base(type_, self.recording_start + timedelta(seconds=offset_s)), **fields}

    def paused_payment(self, *, pause_s: float = -5, resume_s: float | None = 25) -> list[dict[str, Any]]:
        """A pause, a card payment from 2 s to 20 s into the recording, and the resume (None: never)."""
        events = [
            self.at("recording.paused", pause_s, mode="silence"),
            self.at("payment.started", 2, payment_id="pay-1"),
            self.at("payment.ended", 20, payment_id="pay-1"),
        ]
        return events + (
            [self.at("recording.resumed", resume_s, mode="silence")] if resume_s is not None else []
        )


class Bus:
    """A producer and watchers of `lifecycle` and `deadletter`, for one test."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.s3 = make_s3_client(settings)
        self.producer = make_producer(settings)
        self.lifecycle = TopicWatcher(settings, settings.lifecycle_topic)
        self.dead = TopicWatcher(settings, settings.deadletter_topic, index_by="event_id")

    async def __aenter__(self) -> Bus:
        await self.producer.start()
        await self.lifecycle.start()
        await self.dead.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()
        await self.lifecycle.stop()
        await self.dead.stop()

    def script(self, **kwargs: Any) -> CallScript:
        return CallScript(
            call_id=kwargs.pop("call_id", new_call_id()),
            staging_bucket=self.settings.staging_bucket,
            **kwargs,
        )

    async def upload(self, call: CallScript, body: bytes | None = None) -> None:
        await asyncio.to_thread(
            self.s3.put_object,
            Bucket=self.settings.staging_bucket,
            Key=call.staging_key,
            Body=call.audio if body is None else body,
        )

    async def send_call(self, call: CallScript, *events: dict[str, Any]) -> None:
        """Upload the call's audio, then send its events (by default a whole compliant call)."""
        await self.upload(call)
        await self.send(*(events or (call.started(), call.disclosure(), call.stored(), call.ended())))

    async def send(self, *events: dict[str, Any], key: bytes | None = None) -> None:
        for event in events:
            k = key if key is not None else str(event.get("call_id", "")).encode()
            await self.producer.send_and_wait(
                self.settings.call_events_topic, json.dumps(event).encode(), key=k
            )

    async def send_elsewhere(self, *events: dict[str, Any]) -> None:
        """Send each event keyed by its call id, but on another partition than Kafka's default
        partitioner would pick: as a producer with a partitioner of its own (librdkafka's crc32) may."""
        partitions = self.settings.partitions
        for event in events:
            call_id = str(event["call_id"])
            other = (placed_by_kafka(call_id, partitions) + 1) % partitions
            value, key = json.dumps(event).encode(), call_id.encode()
            await self.producer.send_and_wait(
                self.settings.call_events_topic, value, key=key, partition=other
            )

    async def send_raw(self, value: bytes, key: bytes | None) -> None:
        await self.producer.send_and_wait(self.settings.call_events_topic, value, key=key)

    async def wait_types(self, call_id: str, *types: str, timeout: float = 30) -> list[dict[str, Any]]:
        """Wait until the call has lifecycle events of all these types; returns its events."""

        def ready(w: TopicWatcher) -> bool:
            seen = w.types_for(call_id)
            return all(t in seen for t in types)

        await self.lifecycle.wait_for(ready, timeout, f"{types} for {call_id}")
        return list(self.lifecycle.by_key[call_id])

    async def caught_up(self, timeout: float = 60) -> None:
        """Wait until the worker has committed past everything on its input topics, in order.

        The positive signal that it is done with what was sent: faust commits an
        offset only once the agent has finished with that message, and what an
        event leads to goes through the internal calls topic, which is waited on
        after `call-events`. A test that asserts "nothing more happened" waits on
        this, not on a sleep (a late duplicate would pass a sleep).
        """
        s = self.settings
        for topic in (s.call_events_topic, s.commands_topic, s.calls_topic):
            await committed_past_end(s.kafka_bootstrap, s.app_id, topic, timeout)
        await self.read_to_end(timeout)

    async def read_to_end(self, timeout: float = 30) -> None:
        """Wait until the watchers have read all of `lifecycle` and `deadletter` written so far."""
        await self.lifecycle.read_to_end(timeout)
        await self.dead.read_to_end(timeout)

    async def create_bucket(self, name: str, *, versioned: bool = False) -> None:
        """A bucket that is not callvault's (another application's), in the settings' region."""
        where = {"LocationConstraint": self.settings.s3_region}
        await asyncio.to_thread(self.s3.create_bucket, Bucket=name, CreateBucketConfiguration=where)
        if versioned:
            on = {"Status": "Enabled"}
            await asyncio.to_thread(self.s3.put_bucket_versioning, Bucket=name, VersioningConfiguration=on)

    def events_of(self, call_id: str, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.lifecycle.by_key.get(call_id, []) if e.get("type") == type_]

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=bucket, Key=key)
            return True
        except Exception:  # noqa: BLE001
            return False

    def versions(self, bucket: str, key: str) -> int:
        page = self.s3.list_object_versions(Bucket=bucket, Prefix=key)
        return sum(1 for v in (*page.get("Versions", ()), *page.get("DeleteMarkers", ())) if v["Key"] == key)

    async def lifecycle_where(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 20
    ) -> dict[str, Any]:
        """The first lifecycle event the predicate takes, once it is there (events without a call too)."""
        await self.lifecycle.wait_for(
            lambda w: any(predicate(r) for r in w.records), timeout, "lifecycle event"
        )
        return next(r for r in self.lifecycle.records if predicate(r))

    async def dead_letter_where(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 20
    ) -> dict[str, Any]:
        await self.dead.wait_for(lambda w: any(predicate(r) for r in w.records), timeout, "dead letter")
        return next(r for r in self.dead.records if predicate(r))


def placed_by_kafka(call_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, the Java client's and aiokafka's) gives a call id:
    where `calls` places a call, and where the contract's keying puts its events on `call-events`."""
    return int(DefaultPartitioner()(call_id.encode(), list(range(partitions)), []))


async def committed_past_end(bootstrap: str, group: str, topic: str, timeout: float) -> None:
    """Wait until `group` has committed every partition of `topic` up to its end offset as of now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await consumer.start()
    await admin.start()
    try:
        parts = await topic_partitions(consumer, topic)
        assert parts, f"no topic {topic} on the broker"
        ends = {tp: end for tp, end in (await consumer.end_offsets(parts)).items() if end > 0}
        deadline = time.monotonic() + timeout
        behind = dict(ends)
        while behind:
            try:
                committed = await admin.list_consumer_group_offsets(group, partitions=list(behind))
            except GroupCoordinatorNotAvailableError:  # the group's coordinator is still loading
                committed = {}
            behind = {
                tp: end for tp, end in behind.items() if tp not in committed or committed[tp].offset < end
            }
            if not behind:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{group} did not commit {topic} up to {behind} within {timeout:.0f} s")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
        await consumer.stop()


async def sent_round(settings: Settings, call_id: str) -> list[str]:
    """The kinds of what reached `calls` for the call (facts, wake-ups), once the worker is past it."""
    kinds = []
    async for record in read_records(settings.kafka_bootstrap, settings.calls_topic, idle_s=1.0):
        if record.key == call_id.encode() and record.value is not None:
            kinds.append(json.loads(record.value)["kind"])
    return kinds
