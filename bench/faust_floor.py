"""What faust-streaming itself costs to carry a call's events: the floor under callvault's worker.

callvault's worker carries each platform event in one hop when it holds the call's partition (as
one worker does, and as here): an intake agent reads it from `call-events`, pseudonymizes it and
writes the call's new state to its table (one changelog record). A decided call then emits its
lifecycle events, which the worker's audit agent reads back in batches. (Before 2026-12-06 every
event took a second hop, through the internal `calls` topic: `--hop` measures that topology.)
This bench runs that
topology with nothing else in it: the same faust settings as the worker (`stream/app.py`), the same
events from the simulator, `json.loads`/`json.dumps` in place of callvault's models, no S3, no rules.

On the embedded stack (Tansu), a bare faust worker in a process of its own carries N calls:
- plain: `bench/ingest.py`'s calls, 4 events each, and 3 emitted events;
- payments: `bench/payments.py`'s payment calls (8 events, 7 where the resume is forgotten), and 4
  emitted events.
Beside them, callvault's own worker takes the payment calls' state-only events (pauses and payment
windows of calls that have not started: no S3 request, no proof), for its CPU per event against the
bare worker's. Each runs `--rounds` times, alternating; the median round is kept. With the boto3
floor of a call's S3 requests (the same requests from a bare client: `bench/out/ingest.json`, else
bench/results.json), it prints the lowest worker CPU ratios these two floors allow: payments over
plain (issue 28 asks 1.2), and a plain call over its boto3 floor (issue 25 asks 1.3).

    .venv/bin/python bench/faust_floor.py [--calls 600] [--rounds 3] [--hop]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import make_settings, prepare_async, spawn_worker  # noqa: E402
from tests.stack import embedded_servers  # noqa: E402

from bench.report import cpu_seconds, machine, result_name, save  # noqa: E402
from bench.results import RESULTS  # noqa: E402
from callvault.embedded.stack import EmbeddedStack  # noqa: E402
from callvault.simulation.publish import send_events  # noqa: E402
from callvault.stream.bus import ensure_topics, make_producer, topic_partitions  # noqa: E402
from callvault.stream.watch import TopicWatcher  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHAPES = {"plain": 3, "payments": 4}  # events emitted once a call is decided


def serve(bootstrap: str, prefix: str, partitions: int, emits: int, batch_bytes: int, hop: bool) -> None:
    """The bare worker (a child process): callvault's faust settings and hops, none of its work.
    `batch_bytes`: the producer's batch size callvault's worker has on this stack (one record a batch
    on Tansu: `CALLVAULT_PRODUCER_MAX_BATCH_BYTES`). `hop`: each event through `calls` (before 2026-12-06)."""
    import faust

    app = faust.App(
        f"{prefix}-app",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=str(Path(tempfile.gettempdir()) / f"{prefix}-app-data"),  # as the worker: not in the checkout
        topic_partitions=partitions,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        producer_acks=-1,
        producer_max_batch_size=batch_bytes,
        web_enabled=False,
    )
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    source = app.topic(f"{prefix}-call-events", **raw)
    calls = app.topic(f"{prefix}-calls", partitions=partitions, internal=True, **raw)
    lifecycle = app.topic(f"{prefix}-lifecycle", **raw)
    table = app.Table(
        f"{prefix}-state", default=None, partitions=partitions, key_type=bytes, use_partitioner=True
    )

    async def take(key: bytes, fact: dict[str, Any]) -> None:
        state = table.get(key) or {"call_id": fact.get("call_id"), "facts": []}
        state = {**state, "facts": [*state["facts"], fact]}
        if fact.get("_last"):  # the publisher marks a call's last event
            for n in range(emits):
                kind = "decided" if n == emits - 1 else "emitted"
                body = json.dumps({"type": kind, "call_id": state["call_id"], "n": n}).encode()
                await lifecycle.send(key=key, value=body)
        table[key] = state

    @app.agent(source)
    async def intake(stream: Any) -> None:
        async for event in stream.events():
            fact = json.loads(event.message.value)
            fact.pop("caller", None)  # where callvault pseudonymizes
            if hop:
                await calls.send(key=event.message.key, value=json.dumps(fact).encode())
            else:
                await take(event.message.key, fact)

    @app.agent(calls)
    async def call(stream: Any) -> None:
        async for event in stream.events():
            await take(event.message.key, json.loads(event.message.value))

    @app.agent(lifecycle)
    async def audit(stream: Any) -> None:
        # The worker reads back what it emits (its audit agent copies the log into the audit bucket).
        async for events in stream.take_events(5000, within=30.0):
            len(events)

    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


def plan_of(shape: str, calls: int) -> list[Any]:
    """The simulator's calls of this shape (`calls` and one to warm up with), their audio dropped."""
    from bench.ingest import compliant_plan
    from bench.payments import payment_plan

    settings = make_settings(_no_store(), "floor")
    plan = (payment_plan if shape == "payments" else compliant_plan)(settings, calls)  # type: ignore[operator]
    for c in plan:
        c.audio = b""  # only the events travel here
    return plan


async def run_shape(settings: Any, shape: str, plan: list[Any], hop: bool = False) -> dict[str, Any]:
    """A bare worker of its own, on topics of its own, carries the calls of `plan`; its CPU per call."""
    prefix = f"floor{secrets.token_hex(3)}"
    emits = SHAPES[shape]
    bootstrap, partitions = settings.kafka_bootstrap, settings.partitions
    topics = [f"{prefix}-call-events", f"{prefix}-lifecycle"]
    await ensure_topics(bootstrap, topics, partitions)
    argv = [
        sys.executable, __file__, "serve", bootstrap, prefix, str(partitions), str(emits),
        str(settings.producer_max_batch_bytes), "hop" if hop else "direct",
    ]  # fmt: skip
    log = open(ROOT / "test-artifacts" / f"{prefix}.log", "w")  # noqa: SIM115 - closed below
    child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    watcher = await TopicWatcher(bootstrap, f"{prefix}-lifecycle").start()
    producer = make_producer(bootstrap)
    await producer.start()

    def marked(call: Any, n: int, event: dict[str, Any]) -> dict[str, Any]:
        return {**event, "_last": True} if n == len(call.events) else event

    async def publish(some: list[Any]) -> None:
        await send_events(producer, f"{prefix}-call-events", some, marked)
        await producer.flush()

    def decided(ids: list[str]) -> Any:
        return lambda w: all(any(r["type"] == "decided" for r in w.by_key.get(i, ())) for i in ids)

    try:
        warmup, rest = plan[0], plan[1:]
        await publish([warmup])  # the worker joins its group and declares its topics
        await watcher.wait_for(decided([warmup.call_id]), 180, "warm-up call")
        before = cpu_seconds(child.pid)
        began = time.perf_counter()
        await publish(rest)
        await watcher.wait_for(decided([c.call_id for c in rest]), 600, "every call decided")
        elapsed = time.perf_counter() - began
        cpu = cpu_seconds(child.pid) - before
    finally:
        await producer.stop()
        await watcher.stop()
        child.terminate()
        child.wait(timeout=60)
        log.close()
    events = sum(len(c.events) for c in rest)
    return {
        "calls": len(rest),
        "events": events,
        "elapsed_s": round(elapsed, 3),
        "cpu_s": round(cpu, 2),
        "cpu_ms_per_call": round(1000 * cpu / len(rest), 3),
        "cpu_ms_per_event": round(1000 * cpu / events, 3),
    }


# The events of a payment call that change only its state: no S3 request, no proof, while its call never
# starts (the grace is long), so the worker's CPU per event is its own and faust's, nothing else.
FACTS_ONLY = frozenset({"recording.paused", "recording.resumed", "payment.started", "payment.ended"})


async def callvault_facts(servers: Any, plan: list[Any]) -> dict[str, Any]:
    """callvault's own worker on the payment calls' state-only events: its CPU per event beside faust's."""
    settings = make_settings(servers, f"facts{secrets.token_hex(3)}", disclosure_grace="PT30M")
    await prepare_async(settings)
    worker = spawn_worker(settings, "facts-worker", ready=True)
    producer = make_producer(settings.kafka_bootstrap)
    await producer.start()

    def facts_only(call: Any, n: int, event: dict[str, Any]) -> dict[str, Any] | None:
        return event if event["type"] in FACTS_ONLY else None

    async def publish(calls: list[Any]) -> int:
        sent = await send_events(producer, settings.call_events_topic, calls, facts_only)
        await producer.flush()
        return sent

    try:
        await publish(plan[:20])
        await _worker_caught_up(settings)
        before = cpu_seconds(worker.pid)
        began = time.perf_counter()
        events = await publish(plan[20:])
        await _worker_caught_up(settings)
        elapsed = time.perf_counter() - began
        cpu = cpu_seconds(worker.pid) - before
    finally:
        await producer.stop()
        worker.stop()
    return {
        "events": events,
        "elapsed_s": round(elapsed, 3),
        "cpu_s": round(cpu, 2),
        "cpu_ms_per_event": round(1000 * cpu / events, 3),
    }


async def _worker_caught_up(settings: Any, timeout: float = 300) -> None:
    """The worker's group has committed every `call-events` record published so far, then every `calls`
    record its intake sent for them: it has taken in, forwarded and handled them all. Read from the
    broker (the group's committed offsets against each topic's end), not from the worker's own gauges,
    whose high-water marks trail its fetches."""
    watcher = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=settings.app_id)
    await watcher.start()  # never subscribes: it only reads the group's offsets
    deadline = time.monotonic() + timeout
    try:
        for topic in (settings.call_events_topic, settings.calls_topic):
            parts = await topic_partitions(watcher, topic)
            if not parts:
                raise RuntimeError(f"the broker names no partition of {topic}")
            ends = await watcher.end_offsets(parts)
            while [tp for tp in parts if ((await watcher.committed(tp)) or 0) < ends[tp]]:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the worker did not commit all of {topic} within {timeout:.0f} s")
                await asyncio.sleep(0.2)
    finally:
        await watcher.stop()


def _no_store() -> Any:
    """Servers for the simulator's settings only (its staging bucket's name): nothing here is reached."""
    from tests.stack import Servers

    return Servers("127.0.0.1:1", "http://127.0.0.1:1", "callvault-dev", "callvault-dev-secret", "floor")


def _boto3_floor(broker: str) -> float | None:
    """The boto3 floor of a call's S3 requests, ms of CPU: the last `bench/ingest.py` run here on the same
    broker, else the one in bench/results.json."""
    name = result_name("ingest", broker)
    last = ROOT / "bench" / "out" / f"{name}.json"
    found = json.loads(last.read_text()) if last.exists() else json.loads(RESULTS.read_text()).get(name, {})
    floor = found.get("boto3_floor", {}).get("cpu_ms_per_call")
    return float(floor) if floor is not None else None


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(runs, key=lambda r: r["cpu_ms_per_call"])
    return ordered[(len(ordered) - 1) // 2]


async def main(calls: int, rounds: int, hop: bool) -> dict[str, Any]:
    with EmbeddedStack() as stack:  # its moto stays idle: nothing here touches S3
        settings = make_settings(embedded_servers(stack), "floor")  # the worker's, as the tests make them
        plans = {shape: plan_of(shape, calls) for shape in SHAPES}
        runs: dict[str, list[dict[str, Any]]] = {shape: [] for shape in SHAPES}
        facts: list[dict[str, Any]] = []
        for _ in range(rounds):
            for shape in SHAPES:
                runs[shape].append(await run_shape(settings, shape, plans[shape], hop))
                print(f"{shape:9} {runs[shape][-1]}", flush=True)
            facts.append(await callvault_facts(embedded_servers(stack), plans["payments"]))
            print(f"callvault {facts[-1]}", flush=True)
    plain, payments = _median(runs["plain"]), _median(runs["payments"])
    own = sorted(facts, key=lambda f: f["cpu_ms_per_event"])[(len(facts) - 1) // 2]
    result: dict[str, Any] = {
        "benchmark": "faust_floor",
        "machine": machine(),
        "stack": f"embedded ({stack.broker_name}); a bare faust worker, no S3",
        "broker": stack.broker_kind,
        "rounds": rounds,
        "hops": "two: call-events, then calls (before 2026-12-06)"
        if hop
        else "one: call-events (callvault's)",
        "runs": runs,
        "plain": plain,
        "payments": payments,
        "payments_over_plain_cpu": round(payments["cpu_ms_per_call"] / plain["cpu_ms_per_call"], 3),
        "extra_cpu_ms_of_a_payment_call": round(payments["cpu_ms_per_call"] - plain["cpu_ms_per_call"], 3),
        "callvault_facts_runs": facts,
        "callvault_facts": own,
    }
    floor_s3 = _boto3_floor(stack.broker_kind)
    if floor_s3 is not None:
        result["boto3_floor_ms_per_call"] = floor_s3
        # The least a worker can spend: its S3 requests through boto3, and faust carrying its events.
        result["lowest_worker_cpu_over_boto3_floor"] = round(
            (floor_s3 + plain["cpu_ms_per_call"]) / floor_s3, 3
        )
        result["lowest_payments_over_plain"] = round(
            (floor_s3 + payments["cpu_ms_per_call"]) / (floor_s3 + plain["cpu_ms_per_call"]), 3
        )
    return result


def show(result: dict[str, Any]) -> None:
    if "callvault_facts" in result:
        own = result["callvault_facts"]
        print(
            "callvault's worker on state-only events (pauses, payment windows; no S3): "
            f"{own['cpu_ms_per_event']} ms CPU per event ({own['events']} events; "
            f"median of {result['rounds']} rounds)"
        )
    for shape in SHAPES:
        r = result[shape]
        print(
            f"{shape:9} bare faust worker: {r['cpu_ms_per_call']} ms CPU per call, "
            f"{r['cpu_ms_per_event']} ms per event ({r['calls']} calls, {r['elapsed_s']} s; "
            f"median of {result['rounds']} rounds)"
        )
    print(
        "a payment call's 4 more events and 1 more emit cost faust "
        f"{result['extra_cpu_ms_of_a_payment_call']} ms "
        f"(payments / plain, faust alone: {result['payments_over_plain_cpu']})"
    )
    if "boto3_floor_ms_per_call" in result:
        print(
            f"with the boto3 floor of a call's S3 requests ({result['boto3_floor_ms_per_call']} ms, "
            f"bench/ingest.py's): at best {result['lowest_worker_cpu_over_boto3_floor']}x the boto3 floor "
            f"(issue 25 asks 1.3), payments / plain at best {result['lowest_payments_over_plain']} "
            "(issue 28 asks 1.2)"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(
            sys.argv[2],
            sys.argv[3],
            int(sys.argv[4]),
            int(sys.argv[5]),
            int(sys.argv[6]),
            sys.argv[7] == "hop",
        )
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--hop", action="store_true", help="every event through `calls`, as before 2026-12-06"
    )
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    outcome = asyncio.run(main(args.calls, args.rounds, args.hop))
    save("faust_floor_hop" if args.hop else "faust_floor", outcome)
    show(outcome)
