"""What hearing a payment call's pauses costs the worker: CPU per call with payments against without.

On the embedded stack (Tansu + moto; Apache Kafka + moto with CALLVAULT_STACK_BROKER=kafka, kept as
payments-kafka), in one run, each half with a worker of its own:
1. N compliant calls of 30 s recordings (8 kHz 16-bit mono WAV) with no payment;
2. N compliant payment calls of the same length: a pause from 2 s to 10.5 s around a payment from
   4.5 s to 8 s (or a pause never resumed), so the worker hears the paused span before the copy and
   emits `payment.secured`. Sealed (the default), the source is read whole by the one GET that sealing
   needs anyway and heard in memory (`storage.pause_reads.hear_source`); stored as it is, its header and
   paused span are read by range.
Each half runs twice a round: its calls' events sent one call after the other (a backlog, or a
platform that sends a call's events at its end: the worker reads a call's events in one batch and
writes its state once), then interleaved (calls running at once: a call's events are read in batches
of their own, its state written after each). Each runs `--rounds` times, alternating, and the median
is kept: a worker's CPU per call moves by a quarter from run to run on two shared cores.
Then, for each arrival, one worker takes `--phases` phases of `--phase-calls` calls, plain and payment
phases in turn (ABBA: plain, payment, payment, plain, ...), each sent once the one before is decided:
each pair of phases shares the worker's warm heap and the machine's state of that minute, which two
workers minutes apart do not, and the median of the pairs' ratios is printed beside the rounds'.
Then the audio check alone, both ways, with the worker's code: this process hears the pauses of
the payment calls' uploads by range (two ranged GETs, numpy) and in memory (the bytes already read),
its CPU per call measured around each loop, and the share of a call without payments that adds.
Prints the worker's CPU per archived call in each, their ratio (issue 28 asks at most 1.2) for each
arrival, and the S3 requests per call; writes bench/out/payments.json.

    .venv/bin/python bench/payments.py [--calls 300] [--rounds 3] [--phases 8] [--phase-calls 150]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import make_settings, prepare_async  # noqa: E402
from tests.stack import Servers, embedded_servers  # noqa: E402

from bench.ingest import callvault_phases, callvault_run, compliant_plan  # noqa: E402
from bench.report import machine, save  # noqa: E402
from callvault.clock import SystemClock  # noqa: E402
from callvault.embedded.stack import EmbeddedStack  # noqa: E402
from callvault.rules.pause_audio import PausedPart  # noqa: E402
from callvault.settings import Settings  # noqa: E402
from callvault.simulation.plan import SimulatedCall, TrafficOptions, plan_traffic  # noqa: E402
from callvault.storage.client import make_s3_client  # noqa: E402
from callvault.storage.pause_reads import hear_in_memory, measure_paused_audio  # noqa: E402

SECONDS = 30.0
# How the calls' events arrive (`send_events`): one call after the other, or interleaved.
ARRIVALS = {"together": False, "interleaved": True}
# Phases in one worker: plain, payment, payment, plain, and again; a drift over the run weighs on both.
ABBA = ("without_payments", "with_payments", "with_payments", "without_payments")
ARCHIVED_KINDS = ("payment_clean", "payment_resume_forgotten")


def payment_plan(settings: Settings, calls: int) -> list[SimulatedCall]:
    """`calls` + 1 payment calls that are archived (clean, or a pause never resumed), 30 s each."""
    opts = TrafficOptions(
        calls=4 * (calls + 1), missing=0, late=0, after_start=0, objected=0, duplicates=0, payments=1.0,
        audio_seconds=SECONDS, seed=12, staging_bucket=settings.staging_bucket,
    )  # fmt: skip
    plan = [
        c for c in plan_traffic(opts, SystemClock().now(), settings.retention) if c.scenario in ARCHIVED_KINDS
    ]
    assert len(plan) > calls, "too few archived payment calls planned; raise the multiple"
    return plan[: calls + 1]


def per_call(run: dict[str, object]) -> dict[str, float]:
    archived = int(run["archived"])  # type: ignore[call-overload]
    cpu = run["cpu_seconds"]["worker"]  # type: ignore[index]
    requests = dict(run["s3_requests"])  # type: ignore[call-overload]  # every request, the purger's too
    return {
        "worker_cpu_ms": round(1000 * cpu / archived, 2),
        "state_writes": float(run["state_writes_per_call"]),  # type: ignore[arg-type]
        "s3_requests": round(sum(requests.values()) / archived, 2),
        **{f"s3_{op}": round(n / archived, 2) for op, n in sorted(requests.items())},
    }


def hear_alone(settings: Settings, plan: list[SimulatedCall], by_range: bool) -> dict[str, float]:
    """The audio check by itself on uploads of `plan`: CPU per call in this process, one thread; by range
    from the store (a recording stored as it is) or in memory (one to be sealed, already read whole)."""
    s3 = make_s3_client(settings, pool=4)
    for call in plan:
        s3.put_object(Bucket=settings.staging_bucket, Key=call.staging_key, Body=call.audio)
    began = time.process_time()
    loudest = []
    for call in plan:
        offsets = {e["type"]: e.get("offset_ms") for e in call.events}
        end = offsets.get("recording.resumed") or int(SECONDS * 1000)
        part = PausedPart(offsets["recording.paused"], end, "silence")
        how = {"content_type": "audio/wav", "parts": [part], "recording_ms": int(SECONDS * 1000)}
        if by_range:
            finding = measure_paused_audio(
                s3, settings.staging_bucket, call.staging_key, object_size=len(call.audio),
                threshold_dbfs=-50, **how,
            )  # fmt: skip
        else:
            finding = hear_in_memory(call.audio, threshold_dbfs=-50, **how)
        assert finding is not None and finding.silent, finding
        loudest.append(finding.loudest_dbfs or 0.0)
    cpu = time.process_time() - began
    return {
        "calls": len(plan),
        "cpu_ms_per_call": round(1000 * cpu / len(plan), 2),
        "loudest_dbfs": max(loudest),
    }


def _median_run(figures: list[dict[str, float]]) -> dict[str, float]:
    """The round whose worker CPU per call is the median (the lower middle one of an even count)."""
    ordered = sorted(figures, key=lambda f: f["worker_cpu_ms"])
    return ordered[(len(ordered) - 1) // 2]


async def paired(
    servers: Servers, calls: int, phases: int, interleaved: bool, pids: dict[str, int | None]
) -> dict[str, Any]:
    """Plain and payment phases in turn in one worker (ABBA), and each adjacent pair's ratio."""
    settings = make_settings(servers, "p" + secrets.token_hex(3), disclosure_grace="PT30S")
    await prepare_async(settings)
    plain = compliant_plan(settings, calls * phases // 2, SECONDS)
    paying = payment_plan(settings, calls * phases // 2)[1:]
    kinds = [ABBA[n % len(ABBA)] for n in range(phases)]
    plans = {"without_payments": plain[1:], "with_payments": paying}
    taken = {"without_payments": 0, "with_payments": 0}
    sequence = []
    for kind in kinds:
        sequence.append(plans[kind][taken[kind] : taken[kind] + calls])
        taken[kind] += calls
    runs = await callvault_phases(settings, plain[0], sequence, pids, interleaved)
    cpu = [per_call(r)["worker_cpu_ms"] for r in runs]
    ratios = [
        cpu[i + 1] / cpu[i] if kinds[i] == "without_payments" else cpu[i] / cpu[i + 1]
        for i in range(0, phases - 1, 2)
    ]
    return {
        "phases": [{"kind": k, "calls": r["calls"], **per_call(r)} for k, r in zip(kinds, runs, strict=True)],
        "pair_ratios": [round(r, 3) for r in ratios],
        "median_pair_ratio": round(statistics.median(ratios), 3),
    }


def figures(runs: dict[str, list[dict[str, object]]]) -> dict[str, Any]:
    """One arrival's figures: the median rounds, their ratio, and each round's own."""
    medians = {name: _median_run([per_call(r) for r in rs]) for name, rs in runs.items()}
    without, with_ = medians["without_payments"], medians["with_payments"]
    return {
        "per_archived_call": {"without_payments": without, "with_payments": with_},
        "worker_cpu_ratio": round(with_["worker_cpu_ms"] / without["worker_cpu_ms"], 3),
        # Each round's payment run against the plain run just before it, on a machine in the same state:
        # the median of these says less about the rounds' spread than the ratio of the two medians.
        "worker_cpu_ratio_median_of_rounds": round(
            statistics.median(
                per_call(p)["worker_cpu_ms"] / per_call(w)["worker_cpu_ms"]
                for w, p in zip(runs["without_payments"], runs["with_payments"], strict=True)
            ),
            3,
        ),  # fmt: skip
        "worker_cpu_ms_each_round": {n: [per_call(r)["worker_cpu_ms"] for r in rs] for n, rs in runs.items()},
    }


async def main(calls: int, rounds: int, phases: int, phase_calls: int) -> dict[str, object]:
    with EmbeddedStack() as stack:
        servers = embedded_servers(stack)
        pids = {"S3 (moto)": stack.store.pid if stack.store else None}
        runs: dict[str, dict[str, list[dict[str, object]]]] = {
            arrival: {"without_payments": [], "with_payments": []} for arrival in ARRIVALS
        }
        for _ in range(rounds):
            for arrival, interleaved in ARRIVALS.items():
                for name, runs_of in runs[arrival].items():
                    settings = make_settings(servers, "p" + secrets.token_hex(3), disclosure_grace="PT30S")
                    await prepare_async(settings)
                    if name == "with_payments":
                        plan = payment_plan(settings, calls)
                    else:
                        plan = compliant_plan(settings, calls, SECONDS)
                    runs_of.append(await callvault_run(settings, plan, pids, interleaved))
        pairs = {
            arrival: await paired(servers, phase_calls, phases, interleaved, pids)
            for arrival, interleaved in ARRIVALS.items()
        }
        settings = make_settings(servers, "p" + secrets.token_hex(3), disclosure_grace="PT30S")
        await prepare_async(settings)
        plan = payment_plan(settings, calls)
        alone = await asyncio.to_thread(hear_alone, settings, plan, True)
        in_memory = await asyncio.to_thread(hear_alone, settings, plan, False)
        stack_said, broker = f"embedded ({stack.broker_name}, moto S3 server)", stack.broker_kind
    together = figures(runs["together"])
    without = together["per_archived_call"]["without_payments"]
    return {
        "benchmark": "payments",
        "machine": machine(),
        "stack": stack_said,
        "broker": broker,
        "intake": "one hop" if settings.intake_one_hop else "two hops",  # CALLVAULT_INTAKE_ONE_HOP
        "recording_seconds": SECONDS,
        "rounds": rounds,
        "runs": runs,
        **together,  # a call's events one after the other: read in one batch
        "interleaved": figures(runs["interleaved"]),  # calls at once: a call's events in batches apart
        "paired": pairs,  # plain and payment phases in turn in one worker, for each arrival
        "audio_check_alone": alone,
        "audio_check_share_of_a_call": round(alone["cpu_ms_per_call"] / without["worker_cpu_ms"], 3),
        "audio_check_in_memory": in_memory,
        "audio_check_in_memory_share_of_a_call": round(
            in_memory["cpu_ms_per_call"] / without["worker_cpu_ms"], 3
        ),
    }


def show(result: dict[str, Any]) -> None:
    for arrival, figured in (("together", result), ("interleaved", result.get("interleaved"))):
        if figured is None:
            continue
        print(f"events {arrival}:")
        for name, figures in figured["per_archived_call"].items():
            requests = ", ".join(
                f"{k[3:]} {v}" for k, v in figures.items() if k.startswith("s3_") and k != "s3_requests"
            )
            print(
                f"  {name:17} worker CPU {figures['worker_cpu_ms']} ms per archived call (median round), "
                f"{figures['state_writes']} state writes and {figures['s3_requests']} S3 requests per call "
                f"({requests})"
            )
        print(
            f"  ratio             worker CPU with payments / without = {figured['worker_cpu_ratio']}; "
            f"each round: {figured['worker_cpu_ms_each_round']}; median of the rounds' own ratios "
            f"{figured.get('worker_cpu_ratio_median_of_rounds')}"
        )
    for arrival, pair in result.get("paired", {}).items():
        print(
            f"paired, events {arrival}: {len(pair['phases'])} phases in one worker, the pairs' ratios "
            f"{pair['pair_ratios']}, their median {pair['median_pair_ratio']}"
        )
    alone = result["audio_check_alone"]
    print(
        f"audio check alone {alone['cpu_ms_per_call']} ms CPU per call by range ({alone['calls']} calls; "
        f"loudest paused window {alone['loudest_dbfs']} dBFS), {result['audio_check_share_of_a_call']} of "
        "a call without payments"
    )
    if "audio_check_in_memory" in result:
        mem = result["audio_check_in_memory"]
        print(
            f"                  {mem['cpu_ms_per_call']} ms CPU per call in memory (the sealed path), "
            f"{result['audio_check_in_memory_share_of_a_call']} of a call without payments"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--phases", type=int, default=8, help="phases of one worker, plain and payment, ABBA")
    parser.add_argument("--phase-calls", type=int, default=150)
    args = parser.parse_args()
    if args.phases < 2 or args.phases % 2:
        parser.error("--phases: an even number, 2 or more (pairs of a plain and a payment phase)")
    result = asyncio.run(main(args.calls, args.rounds, args.phases, args.phase_calls))
    save("payments", result)
    show(result)
