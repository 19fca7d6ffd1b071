"""Plain aiokafka helpers for everything that is not the faust worker: CLI, demo, tests, bench."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from callvault.contract.lifecycle import LifecycleBase
from callvault.observability.metrics import count_emitted
from callvault.settings import Settings
from callvault.stream.kafka_security import client_options, refusal_sentence

# How every part of the worker hands over lifecycle events: returns once the broker has them.
Emit = Callable[[Sequence[LifecycleBase]], Awaitable[None]]


class BrokerUnreachable(RuntimeError):
    pass


class TopicsMisplaced(RuntimeError):
    """A topic callvault places things in by the partition count has another count than the settings'."""


# Where a client connects: the settings (their bootstrap servers, TLS and SASL), or bare bootstrap
# servers for a plaintext broker on this machine (the tests' and benches' own clients).
Brokers = Settings | str


def connection(brokers: Brokers) -> tuple[str, dict[str, Any]]:
    """Bootstrap servers and the security options for an aiokafka client."""
    if isinstance(brokers, str):
        return brokers, {}
    return brokers.kafka_bootstrap, client_options(brokers)


async def ensure_topics(
    brokers: Brokers,
    topics: Iterable[str],
    partitions: int,
    replication: int = 1,
    timeout: float = 30,
    *,
    placed: Iterable[str] = (),
) -> list[str]:
    """Create the topics that do not exist yet; returns those created.

    `placed`: topics that, where they exist, must have `partitions` partitions (`TopicsMisplaced` if not).
    """
    bootstrap, options = connection(brokers)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000, **options)
    deadline = time.monotonic() + timeout
    while True:
        try:
            await admin.start()
            break
        except KafkaConnectionError as exc:
            if time.monotonic() > deadline:
                if isinstance(brokers, Settings):
                    said = await asyncio.to_thread(refusal_sentence, exc, brokers)
                    raise BrokerUnreachable(said) from exc
                raise BrokerUnreachable(
                    f"cannot reach the Kafka broker at {bootstrap}; is it running, "
                    "and is CALLVAULT_KAFKA_BOOTSTRAP right?"
                ) from exc
            await asyncio.sleep(0.5)
        except KafkaError as exc:  # refused for good: the user, the password, the mechanism
            await admin.close()
            if isinstance(brokers, Settings):
                raise BrokerUnreachable(await asyncio.to_thread(refusal_sentence, exc, brokers)) from exc
            raise BrokerUnreachable(str(exc)) from exc
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in topics if t not in existing]
        created = []
        for name in wanted:
            try:
                await admin.create_topics(
                    [NewTopic(name, num_partitions=partitions, replication_factor=replication)]
                )
                created.append(name)
            except TopicAlreadyExistsError:
                pass
        misplaced = await _partition_counts(admin, [t for t in placed if t in existing], partitions)
        if misplaced:
            found = ", ".join(f"{topic} has {n}" for topic, n in sorted(misplaced.items()))
            raise TopicsMisplaced(
                f"refusing to run: {found} partitions, not {partitions} (CALLVAULT_PARTITIONS). callvault "
                "finds each call's state and each audit chain by that count, so it would look for them "
                "where they are not; set CALLVAULT_PARTITIONS to the topics' count, or move to new topics "
                "(a new CALLVAULT_TOPIC_PREFIX and CALLVAULT_APP_ID) once no call is in flight"
            )
        return created
    finally:
        await admin.close()


async def _partition_counts(admin: AIOKafkaAdminClient, topics: list[str], wanted: int) -> dict[str, int]:
    """Those of `topics` whose partitions do not number `wanted`, with their count."""
    if not topics:
        return {}
    described = await admin.describe_topics(topics)
    counts = {str(t["topic"]): len(t["partitions"]) for t in described if not t.get("error_code")}
    return {topic: n for topic, n in counts.items() if n != wanted}


async def ensure_callvault_topics(settings: Settings) -> list[str]:
    """callvault's topics, created with `CALLVAULT_PARTITIONS` and `CALLVAULT_REPLICATION_FACTOR`; refused
    (`TopicsMisplaced`) where one callvault places things in by that count already has another."""
    topics, replicas = settings.all_topics(), settings.replication_factor
    return await ensure_topics(
        settings, topics, settings.partitions, replicas, placed=settings.placed_topics()
    )


@contextlib.asynccontextmanager
async def lifecycle_emitter(settings: Settings) -> AsyncIterator[Emit]:
    """An `Emit` for a process outside the worker (the command line, the demo): its own producer."""
    producer = make_producer(settings)
    await start_client(producer, settings)

    async def emit(events: Sequence[Any]) -> None:
        await send_lifecycle(producer, settings, events)

    try:
        yield emit
    finally:
        await producer.stop()


def make_producer(brokers: Brokers, **kwargs: Any) -> AIOKafkaProducer:
    """acks=all, no idempotence (Tansu has none): callvault relies on deterministic ids instead."""
    bootstrap, security = connection(brokers)
    options: dict[str, Any] = {"acks": "all", "enable_idempotence": False, "linger_ms": 5, **security}
    options.update(kwargs)
    return AIOKafkaProducer(bootstrap_servers=bootstrap, **options)


async def start_client(client: Any, brokers: Brokers) -> None:
    """Start an aiokafka client; a broker that refuses it becomes a sentence naming the setting."""
    try:
        await client.start()
    except KafkaError as exc:
        with contextlib.suppress(Exception):
            await client.stop()
        if isinstance(brokers, Settings):
            raise BrokerUnreachable(await asyncio.to_thread(refusal_sentence, exc, brokers)) from exc
        raise


def lifecycle_key(event: Any) -> bytes:
    """The contract's key on `lifecycle`: the call, for a subject request the subject's pseudonym,
    for a policy change its tenant."""
    key = getattr(event, "call_id", None) or getattr(event, "subject", None) or getattr(event, "tenant", "")
    return str(key).encode()


async def send_lifecycle(producer: AIOKafkaProducer, settings: Settings, events: Sequence[Any]) -> None:
    """Send lifecycle events, and wait until the broker has every one."""
    sent = [
        await producer.send(settings.lifecycle_topic, key=lifecycle_key(e), value=e.to_json_bytes())
        for e in events
    ]
    await asyncio.gather(*sent)
    count_emitted(events)


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The partitions of `topic` (none if the broker has none) for a consumer that subscribed to nothing.

    Such a consumer's metadata need not name the topic: Tansu answers its first request with every
    topic, Apache Kafka with none. Asking for the topic by name works on both; `consumer.topics()`
    does not, as it fetches metadata without keeping it.
    """
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        await consumer._client.add_topic(topic)  # noqa: SLF001 - metadata that names this topic
        partitions = consumer.partitions_for_topic(topic) or set()
    return [TopicPartition(topic, p) for p in sorted(partitions)]


async def read_topic(
    brokers: Brokers, topic: str, *, idle_s: float = 2.0, max_s: float = 60.0
) -> AsyncIterator[tuple[bytes | None, bytes | None]]:
    """Every record's key and value of a topic from the beginning, until no new one arrived for `idle_s`."""
    async for record in read_records(brokers, topic, idle_s=idle_s, max_s=max_s):
        yield record.key, record.value


async def read_records(
    brokers: Brokers, topic: str, *, idle_s: float = 2.0, max_s: float = 60.0
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every record of a topic from the beginning, with its partition, until none came for `idle_s`.

    Reads without a consumer group (manual assignment): no join wait, no offsets kept.
    """
    bootstrap, options = connection(brokers)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest", **options
    )
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, topic)
        if not tps:
            return
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = time.monotonic() + max_s
        quiet_since = time.monotonic()
        while time.monotonic() < end:
            batch = await consumer.getmany(timeout_ms=200, max_records=2000)
            if batch:
                quiet_since = time.monotonic()
                for records in batch.values():
                    for record in records:
                        yield record
            elif time.monotonic() - quiet_since >= idle_s:
                return
    finally:
        await consumer.stop()


async def read_json_topic(brokers: Brokers, topic: str, **kwargs: Any) -> list[dict[str, Any]]:
    out = []
    async for _key, value in read_topic(brokers, topic, **kwargs):
        if value is not None:
            try:
                out.append(json.loads(value))
            except ValueError:
                continue
    return out


__all__ = [
    "BrokerUnreachable",
    "KafkaError",
    "ensure_callvault_topics",
    "TopicsMisplaced",
    "ensure_topics",
    "make_producer",
    "read_json_topic",
    "read_topic",
]
