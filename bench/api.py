"""QA API latency at 100 concurrent clients, on the embedded stack (Tansu + moto).

Archives real calls through a real worker, starts `callvault api` as its own
process (one uvicorn worker), then runs 100 clients at once, each sending its
requests one after another over its own connection:

- metadata: GET one call's metadata (a logged access: S3 read + lifecycle event);
- audio range: GET 64 KiB of a recording with Range (S3 ranged read + event);
- audio whole: GET a whole 30 s recording (480 KB).

Every request is a logged access, so each waits for the broker's ack before it
is answered. The clients run on the same 2 cores as the API, moto and Tansu.

    .venv/bin/python bench/api.py [--clients 100] [--requests 20] [--calls 40]

Writes bench/out/api.json.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import make_settings, prepare_async, spawn_api, spawn_worker  # noqa: E402
from tests.integration.helpers import Bus  # noqa: E402
from tests.stack import Servers  # noqa: E402

from bench.report import machine, save  # noqa: E402
from callvault.api.tokens import issue_token  # noqa: E402
from callvault.embedded.stack import EmbeddedStack  # noqa: E402
from callvault.rules.access import Role  # noqa: E402
from callvault.settings import Settings  # noqa: E402
from callvault.simulation.audio import make_wav  # noqa: E402

AUDIO_S = 30.0
PURPOSE = {"purpose": "benchmark: coaching review"}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def archive_calls(settings: Settings, count: int) -> list[str]:
    """Paths of `count` calls archived by the worker, each with a 30 s recording."""
    async with Bus(settings) as bus:
        calls = [bus.script(audio=make_wav(i, AUDIO_S)) for i in range(count)]
        for call in calls:
            await bus.send_call(call)
        for call in calls:
            await bus.wait_types(call.call_id, "recording.archived", "metadata.archived", timeout=120)
    return [f"/api/v1/calls/acme/{c.start.astimezone(UTC).date()}/{c.call_id}" for c in calls]


async def load(
    base: str,
    clients: int,
    per_client: int,
    request: Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]],
    headers: dict[str, str],
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    transferred = 0

    async def one_client(index: int) -> None:
        nonlocal errors, transferred
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
            for i in range(per_client):
                began = time.perf_counter()
                answer = await request(client, index * per_client + i)
                latencies.append(time.perf_counter() - began)
                if answer.status_code >= 300 and answer.status_code != 206:
                    errors += 1
                transferred += len(answer.content)

    began = time.perf_counter()
    await asyncio.gather(*(one_client(i) for i in range(clients)))
    elapsed = time.perf_counter() - began
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": round(elapsed, 2),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(_percentile(latencies, 0.99) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
        "mb_transferred": round(transferred / 1e6, 1),
    }


async def measure(settings: Settings, base: str, paths: list[str], clients: int, per_client: int) -> dict:
    secret = settings.api_token_secret.get_secret_value()
    token = issue_token(secret, "bench@acme", Role.QA, ["acme"], datetime.now(UTC), timedelta(hours=2))
    headers = {"Authorization": f"Bearer {token}"}

    def metadata(client: httpx.AsyncClient, n: int) -> Awaitable[httpx.Response]:
        return client.get(paths[n % len(paths)], params=PURPOSE)

    def audio_range(client: httpx.AsyncClient, n: int) -> Awaitable[httpx.Response]:
        first = (n * 65536) % 400_000
        return client.get(
            paths[n % len(paths)] + "/audio",
            params=PURPOSE,
            headers={"Range": f"bytes={first}-{first + 65535}"},
        )

    def audio_whole(client: httpx.AsyncClient, n: int) -> Awaitable[httpx.Response]:
        return client.get(paths[n % len(paths)] + "/audio", params=PURPOSE)

    await load(base, 10, 5, metadata, headers)  # warm up connections and caches
    results = {}
    for name, request in (
        ("metadata", metadata),
        ("audio_range_64k", audio_range),
        ("audio_whole_30s", audio_whole),
    ):
        results[name] = await load(base, clients, per_client, request, headers)
        r = results[name]
        print(
            f"{name:>16}: {r['requests']} requests, {r['requests_per_s']}/s, p50 {r['p50_ms']} ms, "
            f"p99 {r['p99_ms']} ms, max {r['max_ms']} ms, errors {r['errors']}"
        )
    return results


async def main(clients: int, per_client: int, calls: int) -> dict[str, Any]:
    with EmbeddedStack() as stack:
        servers = Servers(
            stack.kafka_bootstrap, stack.s3_endpoint, "callvault-dev", "callvault-dev-secret", "embedded"
        )
        settings = make_settings(servers, "bapi" + secrets.token_hex(2))
        await prepare_async(settings)
        worker = spawn_worker(settings, "bench-worker")
        api, base = spawn_api(settings, "bench-api")
        try:
            print(f"archiving {calls} calls of {AUDIO_S:.0f} s ...", flush=True)
            paths = await archive_calls(settings, calls)
            print(f"{clients} concurrent clients, {per_client} requests each, per kind")
            results = await measure(settings, base, paths, clients, per_client)
        finally:
            api.stop()
            worker.stop()
    return {
        "machine": machine(),
        "stack": "embedded (Tansu, moto), one `callvault api` process, clients on the same machine",
        "clients": clients,
        "requests_per_client": per_client,
        "calls": calls,
        "results": results,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--requests", type=int, default=20, help="per client and kind")
    parser.add_argument("--calls", type=int, default=40)
    args = parser.parse_args()
    result = asyncio.run(main(args.clients, args.requests, args.calls))
    save("api", result)
