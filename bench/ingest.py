"""Ingest throughput: calls/s and events/s archived end to end, against a bare Kafka loop.

On the embedded stack (Tansu + moto; Apache Kafka + moto with CALLVAULT_STACK_BROKER=kafka, kept as
ingest-kafka), in one run:
1. callvault: N compliant calls (4 events each, audio already in staging) published
   as fast as possible to a running worker; the clock stops when the last call's
   metadata is archived. Every call costs a read of its source, sealed under its
   client's key and written (or, with encryption off, a server-side copy), a
   metadata write, a source delete and three lifecycle events. The same calls
   run first with CALLVAULT_ENCRYPTION=off, on buckets of their own: the two
   rows give the cost of sealing, and KMS's requests per 1,000 calls.
2. the floor: a bare aiokafka consume->produce loop moving the same number of
   events of the same size between two topics on the same broker.
3. S3 requests per archived call, by operation, from the worker's own
   `callvault_s3_requests_total` (every attempt on the wire), and the boto3
   floor of those requests: a bare boto3 client in this process sending the
   same requests per call (the call path's, not the purger's periodic listings)
   to the same store with the same concurrency; its CPU per call beside the
   worker's.
Prints the rates, the counts and the ratios; writes bench/out/ingest.json.

    .venv/bin/python bench/ingest.py [--calls 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import make_settings, prepare_async, spawn_worker  # noqa: E402
from tests.stack import embedded_servers  # noqa: E402

from bench.report import cpu_seconds, machine, save  # noqa: E402
from callvault.clock import SystemClock  # noqa: E402
from callvault.embedded.processes import free_port  # noqa: E402
from callvault.embedded.stack import EmbeddedStack  # noqa: E402
from callvault.settings import Settings  # noqa: E402
from callvault.simulation.plan import SimulatedCall, TrafficOptions, plan_traffic  # noqa: E402
from callvault.simulation.publish import send_events  # noqa: E402
from callvault.storage.client import make_s3_client  # noqa: E402
from callvault.stream.bus import ensure_topics, make_producer  # noqa: E402
from callvault.stream.watch import TopicWatcher  # noqa: E402


def compliant_plan(settings: Settings, calls: int, audio_seconds: float = 2.0) -> list[SimulatedCall]:
    """`calls` compliant calls and one to warm up with, their audio generated."""
    opts = TrafficOptions(
        calls=calls + 1, missing=0, late=0, after_start=0, objected=0, duplicates=0,
        audio_seconds=audio_seconds, seed=11, staging_bucket=settings.staging_bucket,
    )  # fmt: skip
    return plan_traffic(opts, SystemClock().now(), settings.retention)


async def callvault_run(
    settings: Settings, plan: list[SimulatedCall], pids: dict[str, int | None], interleaved: bool = False
) -> dict[str, object]:
    """A worker of its own decides the calls of `plan` (the first one warms it up); what it cost.
    `interleaved`: the calls' events arrive as calls running at once send them (`send_events`), so a
    call's events are not read in one batch; else each call's events one after the other."""
    (run,) = await callvault_phases(settings, plan[0], [plan[1:]], pids, interleaved)
    return run


async def callvault_phases(
    settings: Settings,
    warmup: SimulatedCall,
    phases: list[list[SimulatedCall]],
    pids: dict[str, int | None],
    interleaved: bool = False,
) -> list[dict[str, object]]:
    """One worker decides `warmup`, then each phase's calls in turn, each sent once the one before is
    decided; what each phase cost (`callvault_run`). Phases of one worker share its warm heap and the
    machine's state of the moment, which separate workers minutes apart do not."""
    # Audio goes to staging first: the figure is callvault's, not the uploader's.
    s3 = make_s3_client(settings, pool=32)
    everything = [warmup, *(c for phase in phases for c in phase)]
    await asyncio.gather(*(
        asyncio.to_thread(s3.put_object, Bucket=settings.staging_bucket, Key=c.staging_key, Body=c.audio)
        for c in everything
    ))  # fmt: skip
    for c in everything:
        c.audio = b""
    watcher = await TopicWatcher(settings.kafka_bootstrap, settings.lifecycle_topic).start()
    http_port = free_port()
    worker = spawn_worker(settings, "bench-worker", http_port=http_port)
    try:
        await _publish_events(settings, [warmup])
        await watcher.wait_for(
            lambda w: "metadata.archived" in w.types_for(warmup.call_id), 120, "warm-up call"
        )
        pids = {**pids, "worker": worker.pid, "bench (publisher, watcher)": os.getpid()}
        return [await _phase(settings, phase, pids, interleaved, watcher, http_port) for phase in phases]
    finally:
        worker.stop()
        await watcher.stop()


async def _phase(
    settings: Settings,
    calls: list[SimulatedCall],
    pids: dict[str, int | None],
    interleaved: bool,
    watcher: TopicWatcher,
    http_port: int,
) -> dict[str, object]:
    ids = [c.call_id for c in calls]
    events = sum(len(c.events) for c in calls)
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    requests_before = s3_requests(http_port)
    kms_before = s3_requests(http_port, "callvault_kms_requests_total")
    writes_before = metric_value(http_port, "callvault_call_state_writes_total")
    began = time.perf_counter()
    await _publish_events(settings, calls, interleaved)
    published = time.perf_counter() - began
    await watcher.wait_for(
        lambda w: all("metadata.archived" in w.types_for(i) for i in ids), 900, "all calls archived"
    )
    elapsed = time.perf_counter() - began
    cpu = {name: round(cpu_seconds(pid) - cpu_before[name], 2) for name, pid in pids.items()}
    after = s3_requests(http_port)
    requests = {op: n - requests_before.get(op, 0) for op, n in sorted(after.items())}
    kms_after = s3_requests(http_port, "callvault_kms_requests_total")
    kms = {op: n - kms_before.get(op, 0) for op, n in sorted(kms_after.items())}
    writes = metric_value(http_port, "callvault_call_state_writes_total") - writes_before
    archived = sum(1 for i in ids if "recording.archived" in watcher.types_for(i))
    return {
        "calls": len(ids),
        "events": events,
        "archived": archived,
        "publish_s": round(published, 3),
        "elapsed_s": round(elapsed, 3),
        "calls_per_s": round(len(ids) / elapsed, 1),
        "events_per_s": round(events / elapsed, 1),
        "cpu_seconds": cpu,
        "s3_requests": {op: n for op, n in requests.items() if n},
        "kms_requests": {op: n for op, n in kms.items() if n},
        # One changelog record each: fewer than the events where a call's events are read together.
        "state_writes_per_call": round(writes / max(1, len(ids)), 2),
        "kms_requests_per_1000_calls": round(1000 * sum(kms.values()) / max(1, len(ids)), 1),
        "worker_cpu_ms_per_call": round(1000 * cpu["worker"] / max(1, archived), 2),
    }


def _metrics(http_port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10) as answer:
        return str(answer.read().decode())


def s3_requests(http_port: int, metric: str = "callvault_s3_requests_total") -> dict[str, float]:
    """The worker's `callvault_s3_requests_total` (or another counter by operation), from its /metrics."""
    found: dict[str, float] = {}
    for match in re.finditer(rf'^{metric}\{{operation="(\w+)"\}} (\S+)$', _metrics(http_port), re.M):
        found[match.group(1)] = float(match.group(2))
    return found


def metric_value(http_port: int, metric: str) -> float:
    """The value of one of the worker's metrics without labels, from its /metrics."""
    found = re.search(rf"^{metric} (\S+)$", _metrics(http_port), re.M)
    assert found is not None, f"the worker does not export {metric}"
    return float(found.group(1))


# The purger's listings run on timers, whatever the traffic: not the call's. (The registries' reads are
# GETs too, a few every 5 s, counted with the call's own GET of its source, which it reads to seal it.)
PERIODIC = frozenset({"ListObjectsV2", "ListObjectVersions", "GetObjectLockConfiguration"})


def boto3_floor(settings: Settings, calls: int, per_call: dict[str, float]) -> dict[str, object]:
    """A bare boto3 client sending the call path's requests, `per_call` of each, `calls` times.

    The same store, bucket layout, body sizes and concurrency (`CALLVAULT_S3_MAX_CONCURRENCY`
    threads) as the worker; its CPU is this process's, measured around the loop alone.
    """
    s3 = make_s3_client(settings, pool=settings.s3_max_concurrency)
    audio, doc = b"\0" * 64_044, b"{}" * 400  # a 2 s WAV and a metadata document's size
    keys = [f"floor/{secrets.token_hex(6)}" for _ in range(calls)]
    for key in keys:
        s3.put_object(Bucket=settings.staging_bucket, Key=f"{key}.wav", Body=audio)
    until = datetime.now(UTC) + timedelta(days=1)

    def one(key: str) -> None:
        target = {"Bucket": settings.recordings_bucket, "Key": f"{key}.wav"}
        ops = {
            "HeadObject": lambda: s3.head_object(Bucket=settings.staging_bucket, Key=f"{key}.wav"),
            "CopyObject": lambda: s3.copy_object(
                **target,
                CopySource={"Bucket": settings.staging_bucket, "Key": f"{key}.wav"},
                MetadataDirective="REPLACE",
                Metadata={"sha256": "0" * 64},
                TaggingDirective="REPLACE",
                Tagging="retention-class=recording",
                ChecksumAlgorithm="SHA256",
            ),  # fmt: skip
            "GetObjectTagging": lambda: s3.get_object_tagging(**target),
            "GetObject": lambda: s3.get_object(Bucket=settings.staging_bucket, Key=f"{key}.wav")[
                "Body"
            ].read(),
            "PutObjectRetention": lambda: s3.put_object_retention(
                **target, Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until}
            ),
            "DeleteObject": lambda: s3.delete_object(Bucket=settings.staging_bucket, Key=f"{key}.wav"),
            "PutObject": lambda: s3.put_object(
                Bucket=settings.metadata_bucket, Key=f"{key}.json", Body=doc, ChecksumAlgorithm="SHA256"
            ),
        }
        for op, count in per_call.items():
            for n in range(round(count)):
                try:
                    if op == "PutObject" and n == 0 and "CopyObject" not in per_call:
                        # The recording itself, sealed and written by one PUT: the audio's size.
                        s3.put_object(**target, Body=audio, ChecksumAlgorithm="SHA256")
                        continue
                    ops[op]()
                except Exception:  # noqa: BLE001 - a HEAD of a missing key answers 404, as the worker's does
                    pass

    began_cpu, began = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(settings.s3_max_concurrency) as pool:
        list(pool.map(one, keys))
    cpu = time.process_time() - began_cpu
    return {
        "calls": calls,
        "requests_per_call": per_call,
        "elapsed_s": round(time.perf_counter() - began, 3),
        "cpu_seconds": round(cpu, 3),
        "cpu_ms_per_call": round(1000 * cpu / calls, 2),
    }


async def _publish_events(settings: Settings, calls: list, interleaved: bool = False) -> None:  # noqa: ANN001
    producer = make_producer(settings.kafka_bootstrap)
    await producer.start()
    try:
        await send_events(producer, settings.call_events_topic, calls, interleaved=interleaved)
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
        pids = {
            "S3 (moto)": stack.store.pid if stack.store else None,
            f"Kafka ({stack.broker_name})": stack.broker.pid if stack.broker else None,
        }
        # The same calls unsealed first (CALLVAULT_ENCRYPTION=off), on topics and buckets of their own:
        # the cost of sealing is the difference.
        plain = make_settings(
            servers, "b" + secrets.token_hex(3), disclosure_grace="PT30S", encryption="off",
            encryption_off_reason="the benchmark's unsealed run, to compare",
        )  # fmt: skip
        await prepare_async(plain)
        unsealed = await callvault_run(plain, compliant_plan(plain, calls), pids)
        settings = make_settings(servers, "b" + secrets.token_hex(3), disclosure_grace="PT30S")
        await prepare_async(settings)
        cv = await callvault_run(settings, compliant_plan(settings, calls), pids)
        requests = cv["s3_requests"]
        call_path = {op: round(n / cv["archived"], 2) for op, n in requests.items() if op not in PERIODIC}
        floor_s3 = await asyncio.to_thread(boto3_floor, settings, cv["archived"], call_path)
        avg_size = 420  # bytes: the JSON size of a typical call event
        floor = await bare_loop(stack.kafka_bootstrap, int(cv["events"]), avg_size, settings.partitions)
        stack_said, broker = f"embedded ({stack.broker_name}, moto S3 server)", stack.broker_kind
    return {
        "benchmark": "ingest",
        "machine": machine(),
        "stack": stack_said,
        "broker": broker,
        "intake": "one hop" if settings.intake_one_hop else "two hops",  # CALLVAULT_INTAKE_ONE_HOP
        "callvault": cv,
        "unsealed": unsealed,
        "sealed_over_unsealed_worker_cpu": round(
            cv["worker_cpu_ms_per_call"] / unsealed["worker_cpu_ms_per_call"], 2
        ),
        "sealed_over_unsealed_calls_per_s": round(cv["calls_per_s"] / unsealed["calls_per_s"], 2),
        "bare_consume_produce": floor,
        "ratio_events_per_s": round(cv["events_per_s"] / floor["events_per_s"], 4),
        "s3_requests_per_archived_call": round(sum(requests.values()) / cv["archived"], 2),
        "s3_call_path_requests_per_archived_call": round(sum(call_path.values()), 2),
        "s3_call_path_by_operation": call_path,
        "boto3_floor": floor_s3,
        "worker_cpu_ms_per_call": round(1000 * cv["cpu_seconds"]["worker"] / cv["archived"], 2),
        "worker_cpu_over_boto3_floor": round(
            1000 * cv["cpu_seconds"]["worker"] / cv["archived"] / floor_s3["cpu_ms_per_call"], 2
        ),
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
    plain = result["unsealed"]
    print(
        f"unsealed    {plain['calls']} calls in {plain['elapsed_s']}s: {plain['calls_per_s']} calls/s, "
        f"worker {plain['worker_cpu_ms_per_call']} ms CPU a call; sealed {cv['worker_cpu_ms_per_call']} ms "
        f"(x{result['sealed_over_unsealed_worker_cpu']} CPU, "
        f"x{result['sealed_over_unsealed_calls_per_s']} calls/s)"
    )
    print(
        f"KMS         {cv['kms_requests_per_1000_calls']} requests per 1,000 sealed calls: "
        + ", ".join(f"{op} {n:.0f}" for op, n in cv["kms_requests"].items())
    )
    print(f"bare loop   {floor['events']} events in {floor['elapsed_s']}s: {floor['events_per_s']} events/s")
    print(f"ratio       callvault / bare = {result['ratio_events_per_s']}")
    print(
        f"S3          {result['s3_requests_per_archived_call']} requests per archived call in all, "
        f"{result['s3_call_path_requests_per_archived_call']} on the call's own path: "
        + ", ".join(f"{op} {n}" for op, n in result["s3_call_path_by_operation"].items())
    )
    print(
        f"CPU         worker {result['worker_cpu_ms_per_call']} ms per call; a bare boto3 client sending "
        f"the same requests {result['boto3_floor']['cpu_ms_per_call']} ms; "
        f"ratio {result['worker_cpu_over_boto3_floor']}"
    )
