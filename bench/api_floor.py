"""The floor under the API's metadata read: one S3 GET and one acknowledged event per request, nothing else.

`bench/api.py` measures `callvault api` answering one call's metadata: it reads the document afresh
from the store (the moment that decides access), opens it, judges the request, writes the access event
to `lifecycle` and waits for the broker's ack before a byte leaves. This bench serves the same two
round trips with none of callvault's work, from a bare ASGI app under uvicorn in a process of its own
(callvault's S3 client and producer, built from the same settings): GET a document of a metadata
document's size from the metadata bucket, send a small event and wait for its ack, answer the bytes.
On the embedded stack (Tansu + moto), with `wrk` as `bench/api.py` uses it: one connection, then
`--clients` connections, and the CPU each process spent. What it prints is the lowest p99 a metadata
read can have on this machine while each request reads the store and waits for the broker: issue 25
asks 100 ms at 20 connections.

    .venv/bin/python bench/api_floor.py [--clients 20] [--seconds 15]

Writes bench/out/api_floor.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import sys
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import answers_ready, make_settings, prepare_async, settings_env  # noqa: E402
from tests.stack import embedded_servers  # noqa: E402

from bench.api import wrk_load  # noqa: E402
from bench.report import cpu_seconds, machine, save  # noqa: E402
from callvault.embedded.processes import ChildProcess, free_port  # noqa: E402
from callvault.embedded.stack import EmbeddedStack  # noqa: E402
from callvault.storage.client import make_s3_client  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = 40
DOCUMENT_BYTES = 1_600  # about a sealed metadata document of the bench's calls
PREFIX = "_bench/api-floor/"


def serve(port: int) -> None:
    """The bare app (a child process): its settings from the environment, as `callvault api` reads them."""
    import uvicorn

    from callvault.settings import Settings
    from callvault.stream.bus import make_producer

    settings = Settings()
    s3 = make_s3_client(settings, pool=settings.s3_max_concurrency)
    bucket, topic = settings.metadata_bucket, settings.lifecycle_topic
    producer_box: list[Any] = []

    def read(key: str) -> bytes:
        return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    # The batch size the API's access log has on this stack (one record on Tansu).
                    producer = make_producer(
                        settings, linger_ms=0, max_batch_size=settings.producer_max_batch_bytes
                    )
                    await producer.start()
                    producer_box.append(producer)
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await producer_box[0].stop()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        name = scope["path"].rsplit("/", 1)[-1]
        body = await asyncio.to_thread(read, f"{PREFIX}{name}.json")
        event = json.dumps({"type": "metadata.accessed", "call_id": name}).encode()
        await producer_box[0].send_and_wait(topic, event, key=name.encode())  # acknowledged before a byte
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_level="warning")


async def main(clients: int, seconds: int) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise SystemExit("bench/api_floor.py needs wrk (`make bench-tools`): bench/api.py measures with it")
    with EmbeddedStack() as stack:
        settings = make_settings(embedded_servers(stack), "floorapi" + secrets.token_hex(2))
        await prepare_async(settings)
        s3 = make_s3_client(settings)
        for n in range(DOCUMENTS):
            body = json.dumps({"call_id": f"c{n}", "pad": "x" * DOCUMENT_BYTES}).encode()[:DOCUMENT_BYTES]
            s3.put_object(Bucket=settings.metadata_bucket, Key=f"{PREFIX}c{n}.json", Body=body)
        port = free_port()
        argv = [sys.executable, __file__, "serve", str(port)]
        log = ROOT / "test-artifacts" / "api-floor.log"
        app = ChildProcess("api-floor", argv, log, env=settings_env(settings))
        app.start()
        try:
            base = f"http://127.0.0.1:{port}"
            urls = [f"/doc/c{n}" for n in range(DOCUMENTS)]
            await asyncio.to_thread(app.wait_ready, partial(answers_ready, base + urls[0]), 30, "answering")
            await asyncio.to_thread(wrk_load, base, urls, {}, 10, 3)  # warm-up
            alone = await asyncio.to_thread(wrk_load, base, urls, {}, 1, max(3, seconds // 3))
            pids = {
                "api floor": app.pid,
                "moto": stack.store.pid if stack.store else None,
                "broker": stack.broker.pid if stack.broker else None,
            }
            before = {who: cpu_seconds(pid) for who, pid in pids.items()}
            loaded = await asyncio.to_thread(wrk_load, base, urls, {}, clients, seconds)
            spent = {who: round(cpu_seconds(pid) - before[who], 1) for who, pid in pids.items()}
            loaded["cpu_seconds"] = spent
        finally:
            app.stop()
        broker, kind = stack.broker_name, stack.broker_kind
    requests = max(1, loaded["requests"])
    return {
        "benchmark": "api_floor",
        "machine": machine(),
        "stack": f"embedded ({broker}, moto); a bare ASGI app under uvicorn, wrk on the same machine",
        "broker": kind,
        "clients": clients,
        "seconds": seconds,
        "document_bytes": DOCUMENT_BYTES,
        "one_client": alone,
        "loaded": loaded,
        "cpu_ms_per_request": {who: round(1000 * s / requests, 2) for who, s in spent.items()},
    }


def show(result: dict[str, Any]) -> None:
    alone, loaded = result["one_client"], result["loaded"]
    print(f"1 client: p50 {alone['p50_ms']} ms, p99 {alone['p99_ms']} ms, {alone['requests_per_s']} req/s")
    print(
        f"{result['clients']} clients: {loaded['requests_per_s']} req/s, p50 {loaded['p50_ms']} ms, "
        f"p99 {loaded['p99_ms']} ms, max {loaded['max_ms']} ms, errors {loaded['errors']}; CPU ms a request: "
        + ", ".join(f"{k} {v}" for k, v in result["cpu_ms_per_request"].items())
    )


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args()
    outcome = asyncio.run(main(args.clients, args.seconds))
    save("api_floor", outcome)
    show(outcome)
