"""Send a traffic plan the way a call-center platform would: upload audio, then publish events."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from callvault.settings import Settings
from callvault.simulation.plan import SimulatedCall
from callvault.storage.client import make_s3_client
from callvault.stream.bus import make_producer

# What a bench sends in place of one of a call's events (`call`, its 1-based place, the event); None: nothing.
EventShape = Callable[[SimulatedCall, int, dict[str, Any]], dict[str, Any] | None]


async def send_events(
    producer: AIOKafkaProducer,
    topic: str,
    calls: Iterable[SimulatedCall],
    shape: EventShape | None = None,
    *,
    interleaved: bool = False,
) -> int:
    """Each call's events in their order, keyed by its call id, as a platform sends them. `shape` lets
    the benches mark a call's last event or leave some types out. `interleaved`: the calls' first events,
    then their second ones, and so on, as calls that run at once send them; else each call's events one
    after the other, as a backlog holds them. Returns how many were sent; the caller flushes."""
    calls = list(calls)
    order = [(call, n) for call in calls for n in range(len(call.events))]
    if interleaved:
        order.sort(key=lambda placed: placed[1])  # stable: the calls stay in their order at each step
    sent = 0
    for call, n in order:
        event = call.events[n]
        body = event if shape is None else shape(call, n + 1, event)
        if body is not None:
            await producer.send(topic, json.dumps(body).encode(), key=call.call_id.encode())
            sent += 1
    return sent


async def publish_calls(
    settings: Settings,
    calls: Sequence[SimulatedCall],
    *,
    rate: float = 0.0,
    concurrency: int = 16,
    on_call: Callable[[SimulatedCall], None] | None = None,
) -> float:
    """Publish every call; `rate` calls per second (0: as fast as possible). Returns seconds taken."""
    s3 = make_s3_client(settings, pool=concurrency)
    producer = make_producer(settings)
    await producer.start()
    gate = asyncio.Semaphore(concurrency)
    started = time.monotonic()

    async def one(call: SimulatedCall) -> None:
        async with gate:
            await asyncio.to_thread(
                s3.put_object,
                Bucket=settings.staging_bucket,
                Key=call.staging_key,
                Body=call.audio,
                ContentType="audio/wav",
            )
            await send_events(producer, settings.call_events_topic, [call])
            if on_call is not None:
                on_call(call)

    try:
        tasks = []
        for n, call in enumerate(calls):
            if rate > 0:
                delay = started + n / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(call)))
        await asyncio.gather(*tasks)
        await producer.flush()
    finally:
        await producer.stop()
    return time.monotonic() - started
