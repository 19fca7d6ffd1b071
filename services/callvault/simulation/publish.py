"""Send a traffic plan the way a call-center platform would: upload audio, then publish events."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence

from callvault.settings import Settings
from callvault.simulation.plan import SimulatedCall
from callvault.storage.client import make_s3_client
from callvault.stream.bus import make_producer


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
            key = call.call_id.encode()
            for event in call.events:
                await producer.send(settings.call_events_topic, json.dumps(event).encode(), key=key)
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
