"""QA API latency at 100 concurrent clients, on the embedded stack (Tansu + moto).

Archives real calls through a real worker, starts `callvault api` as its own
process (one uvicorn worker), then runs 100 clients at once, each sending its
requests one after another over its own connection:

- metadata: GET one call's metadata (a logged access: S3 read + lifecycle event);
- audio range: GET 64 KiB of a recording with Range (S3 ranged read + event);
- audio whole: GET a whole 30 s recording (480 KB).

Every request is a logged access, so each waits for the broker's ack before it
is answered. The load comes from `wrk` (C, one thread; `make bench` installs
Debian's package), which costs little CPU beside the API, moto and Tansu on the
same 2 cores; without wrk, Python clients (httpx) in this process are used and
say so: they take a core's worth of CPU themselves and inflate the tail.

    .venv/bin/python bench/api.py [--clients 100] [--seconds 15] [--calls 40]

Writes bench/out/api.json (100 clients) or bench/out/api-{clients}.json; `make bench` runs 20 and 100.
By default each runs twice on one stack: objects stored unsealed, then sealed under each client's key
(`--encryption on|off|both`), each with its own worker and API.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import make_settings, prepare_async, spawn_api, spawn_worker  # noqa: E402
from tests.integration.helpers import Bus  # noqa: E402
from tests.stack import embedded_servers  # noqa: E402

from bench.report import cpu_seconds, machine, percentile, save  # noqa: E402
from callvault.api.tokens import issue_token  # noqa: E402
from callvault.embedded.stack import EmbeddedStack  # noqa: E402
from callvault.rules.access import Role  # noqa: E402
from callvault.settings import Settings  # noqa: E402
from callvault.simulation.audio import make_wav  # noqa: E402

AUDIO_S = 30.0


async def archive_calls(settings: Settings, count: int) -> list[str]:
    """Paths of `count` calls archived by the worker, each with a 30 s recording."""
    async with Bus(settings) as bus:
        calls = [bus.script(audio=make_wav(i, AUDIO_S)) for i in range(count)]
        for call in calls:
            await bus.send_call(call)
        for call in calls:
            await bus.wait_types(call.call_id, "recording.archived", "metadata.archived", timeout=120)
    return [f"/api/v1/calls/acme/{c.start.astimezone(UTC).date()}/{c.call_id}" for c in calls]


KINDS: dict[str, tuple[str, dict[str, str]]] = {
    "metadata": ("", {}),
    "audio_range_64k": ("/audio", {"Range": "bytes=1000-66535"}),
    "audio_whole_30s": ("/audio", {}),
}
# wrk's per-request hook: each request takes the next call's URL in turn.
LUA_CYCLE = """paths = {PATHS}
i = 0
request = function()
  i = i + 1
  return wrk.format(nil, paths[(i % #paths) + 1])
end
"""
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if match is None:
        raise ValueError(f"wrk printed a time I cannot read: {text!r}")
    return round(float(match[1]) * _UNITS[match[2]], 1)


def wrk_load(
    base: str, urls: list[str], headers: dict[str, str], clients: int, seconds: int
) -> dict[str, Any]:
    """wrk with a script that cycles through the calls; its own figures, parsed."""
    listed = ", ".join(json.dumps(u) for u in urls)
    script = LUA_CYCLE.replace("PATHS", listed)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    argv = ["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--latency", "--timeout", "30s", "-s", f.name]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    out = subprocess.run([*argv, base], capture_output=True, text=True, check=True).stdout
    os.unlink(f.name)
    dist = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M))
    latency = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", out)
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    assert latency and total, out
    return {
        "requests": int(total[1]),
        "errors": (int(bad[1]) if bad else 0) + (sum(int(x) for x in socket.groups()) if socket else 0),
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),  # type: ignore[index]
        "p50_ms": _ms(dist["50"]),
        "p90_ms": _ms(dist["90"]),
        "p99_ms": _ms(dist["99"]),
        "max_ms": _ms(latency[3]),
    }


async def httpx_load(
    base: str, urls: list[str], headers: dict[str, str], clients: int, seconds: int
) -> dict[str, Any]:
    """The fallback without wrk: `clients` connections in this process, each one request at a time."""
    latencies: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds

    async def one_client(index: int) -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
            n = index
            while time.monotonic() < stop:
                began = time.perf_counter()
                answer = await client.get(urls[n % len(urls)])
                latencies.append(time.perf_counter() - began)
                errors += answer.status_code >= 300
                n += clients

    began = time.perf_counter()
    await asyncio.gather(*(one_client(i) for i in range(clients)))
    elapsed = time.perf_counter() - began
    return {
        "requests": len(latencies),
        "errors": errors,
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p90_ms": round(percentile(latencies, 0.90) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
    }


async def measure(
    settings: Settings, base: str, paths: list[str], clients: int, seconds: int, pids: dict[str, int | None]
) -> dict[str, Any]:
    secret = settings.api_token_secret.get_secret_value()
    token = issue_token(secret, "bench@acme", Role.QA, ["acme"], datetime.now(UTC), timedelta(hours=2))
    use_wrk = shutil.which("wrk") is not None

    async def load(urls: list[str], headers: dict[str, str], conns: int, secs: int) -> dict[str, Any]:
        if use_wrk:
            return await asyncio.to_thread(wrk_load, base, urls, headers, conns, secs)
        return await httpx_load(base, urls, headers, conns, secs)

    results: dict[str, Any] = {"load_generator": "wrk" if use_wrk else "httpx in the bench process"}
    print(f"load from {results['load_generator']}; {clients} connections, {seconds} s per kind", flush=True)
    for name, (suffix, extra) in KINDS.items():
        urls = [f"{p}{suffix}?purpose=benchmark-coaching-review" for p in paths]
        headers = {"Authorization": f"Bearer {token}", **extra}
        await load(urls, headers, 10, 3)  # warm-up
        # One connection first: the latency with no queue, what a request costs by itself.
        alone = await load(urls, headers, 1, max(3, seconds // 3))
        before = {who: cpu_seconds(pid) for who, pid in pids.items()}
        loaded = await load(urls, headers, clients, seconds)
        loaded["cpu_seconds"] = {who: round(cpu_seconds(pid) - before[who], 1) for who, pid in pids.items()}
        results[name] = {"one_client": alone, "loaded": loaded}
        print(
            f"{name:>16}: 1 client p50 {alone['p50_ms']} ms, p99 {alone['p99_ms']} ms | {clients} clients: "
            f"{loaded['requests']} requests, {loaded['requests_per_s']}/s, p50 {loaded['p50_ms']} ms, "
            f"p99 {loaded['p99_ms']} ms, max {loaded['max_ms']} ms, errors {loaded['errors']}; CPU s: "
            + ", ".join(f"{k} {v}" for k, v in loaded["cpu_seconds"].items()),
            flush=True,
        )
    return results


async def run_one(
    stack: EmbeddedStack, encryption: str, clients: int, seconds: int, calls: int
) -> dict[str, Any]:
    """A worker and an API of their own, on topics and buckets of their own, sealing or not."""
    off = {"encryption_off_reason": "the benchmark's unsealed run, to compare"} if encryption == "off" else {}
    settings = make_settings(
        embedded_servers(stack), "bapi" + secrets.token_hex(2), encryption=encryption, **off
    )  # type: ignore[arg-type]
    await prepare_async(settings)
    worker = spawn_worker(settings, f"bench-worker-{encryption}")
    api, base, _ = spawn_api(settings, f"bench-api-{encryption}")
    try:
        print(f"encryption {encryption}: archiving {calls} calls of {AUDIO_S:.0f} s ...", flush=True)
        paths = await archive_calls(settings, calls)
        pids = {
            "api": api.pid,
            "moto": stack.store.pid if stack.store else None,
            "broker": stack.broker.pid if stack.broker else None,
            "worker": worker.pid,
            "clients": os.getpid(),
        }
        return await measure(settings, base, paths, clients, seconds, pids)
    finally:
        api.stop()
        worker.stop()


async def main(clients: int, seconds: int, calls: int, modes: list[str]) -> dict[str, Any]:
    with EmbeddedStack() as stack:
        by_mode = {mode: await run_one(stack, mode, clients, seconds, calls) for mode in modes}
        broker = stack.broker_name
    return {
        "machine": machine(),
        "stack": f"embedded ({broker}, moto), one `callvault api` process, clients on the same machine",
        "broker": stack.broker_kind,
        "clients": clients,
        "seconds_per_kind": seconds,
        "calls": calls,
        # `results`: sealed (the default) where it ran; `unsealed`: the same load, objects stored as they are.
        "results": by_mode.get("on") or by_mode["off"],
        "sealed": "on" in by_mode,  # whether `results` are of objects sealed under each client's key
        **({"unsealed": by_mode["off"]} if "off" in by_mode and "on" in by_mode else {}),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=15, help="of load per kind")
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument(
        "--encryption", choices=["on", "off", "both"], default="both",
        help="objects sealed under each client's key, stored as they are, or both in one run (off first)",
    )  # fmt: skip
    args = parser.parse_args()
    modes = ["off", "on"] if args.encryption == "both" else [args.encryption]
    result = asyncio.run(main(args.clients, args.seconds, args.calls, modes))
    save("api" if args.clients == 100 else f"api-{args.clients}", result)  # make bench: 20 and 100
