"""Gather every benchmark's last figures into bench/results.json and the benchmarks guide's table.

Each script in bench/ writes bench/out/{name}.json; this reads them all, writes
one bench/results.json, prints the summary table (Markdown) and puts it in
docs/benchmarks.md between its `bench-table` markers, so the guide shows what
the last `make bench` measured, on which machine.

    .venv/bin/python bench/results.py [--no-readme]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
RESULTS = ROOT / "bench" / "results.json"
README = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"
KAFKA = "-kafka"  # the suffix of a result measured on Apache Kafka (bench.report.result_name)


def _payments_row(how: str, f: dict[str, Any], r: dict[str, Any]) -> tuple[str, str, str]:
    """The payments bench's ratio, for one way the calls' events arrive (`how`: "" when together)."""
    w, p = f["per_archived_call"]["without_payments"], f["per_archived_call"]["with_payments"]
    if how:
        arrival = "calls at once: a call's events read in batches apart, its state written after each; "
    elif "interleaved" in r:
        arrival = "a call's events one after the other: read in one batch, its state written once; "
    else:
        arrival = ""
    return (
        f"worker CPU per call, payment calls against plain ones{how}",
        f"{p['worker_cpu_ms']} ms against {w['worker_cpu_ms']} ms, {f['worker_cpu_ratio']}×"
        + (f" (median of the rounds' own ratios {f['worker_cpu_ratio_median_of_rounds']}×)"
           if "worker_cpu_ratio_median_of_rounds" in f else ""),
        f"{arrival}{r['recording_seconds']:.0f} s WAV recordings, median of {r['rounds']} rounds; a payment "
        f"call has 8 events and 4 proofs to a plain call's 4 and 3, and {p['s3_requests']} S3 requests to "
        f"{w['s3_requests']}" + (f"; the intake's {r['intake']}" if "intake" in r else ""),
    )  # fmt: skip


def _rows(name: str, r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(what, figure, conditions) rows of one benchmark's result."""
    if name.endswith(KAFKA):  # the same benchmark on Apache Kafka: its rows say so
        return [
            (f"{what}, on Apache Kafka", figure, how) for what, figure, how in _rows(name[: -len(KAFKA)], r)
        ]
    if name == "ingest":
        cv, bare = r["callvault"], r["bare_consume_produce"]
        return [
            ("ingest, end to end", f"{cv['calls_per_s']} calls/s ({cv['events_per_s']} events/s)",
             f"{cv['calls']} compliant calls, {cv['archived']} archived"
             + (f"; the intake's {r['intake']}" if "intake" in r else "")),
            ("bare aiokafka consume→produce, same broker", f"{bare['events_per_s']:,} events/s",
             f"ratio callvault / bare {r['ratio_events_per_s']}"),
        ] + ([
            ("S3 requests per archived call",
             f"{r['s3_call_path_requests_per_archived_call']} on the call's path "
             f"({r['s3_requests_per_archived_call']} with the purger's)",
             ", ".join(f"{op} {n}" for op, n in r["s3_call_path_by_operation"].items())),
            ("worker CPU per call against the boto3 floor",
             f"{r['worker_cpu_ms_per_call']} ms, {r['worker_cpu_over_boto3_floor']}× the floor",
             f"a bare boto3 client sending the same requests: "
             f"{r['boto3_floor']['cpu_ms_per_call']} ms a call"),
        ] if "boto3_floor" in r else []) + ([
            ("ingest sealed under each client's key, against unsealed",
             f"{cv['calls_per_s']} against {r['unsealed']['calls_per_s']} calls/s; worker "
             f"{cv['worker_cpu_ms_per_call']} against {r['unsealed']['worker_cpu_ms_per_call']} ms CPU "
             "a call",
             f"the same {cv['calls']} calls in one run, buckets of their own; KMS "
             f"{cv['kms_requests_per_1000_calls']} requests per 1,000 sealed calls"),
        ] if "unsealed" in r else [])  # fmt: skip
    if name == "purge":
        t, late = r["throughput"], r["lateness"]
        ls = late["lateness_s"]
        return [
            ("purge, one pass", f"{t['objects_per_s']} objects/s",
             f"{t['objects']:,} due objects, every version"),
            ("purge lateness p50 / p99 / max", f"{ls['p50']:.1f} / {ls['p99']:.1f} / {ls['max']:.1f} s",
             f"{late['objects']:,} falling due over {late['window_s']:.0f} s, "
             f"interval {late['interval_s']:.0f} s"),
        ]  # fmt: skip
    if name == "api_floor":
        loaded = r["loaded"]
        return [
            ("the floor under a metadata read: one S3 GET, one acknowledged event",
             f"{loaded['requests_per_s']} req/s, p50 {loaded['p50_ms']:,.0f} ms, "
             f"p99 {loaded['p99_ms']:,.0f} ms",
             f"a bare ASGI app, {r['clients']} connections (wrk); CPU a request: "
             + ", ".join(f"{who} {ms} ms" for who, ms in r["cpu_ms_per_request"].items())),
        ]  # fmt: skip
    if name.startswith("api"):
        rows = []
        for kind, label in (
            ("metadata", "API, one call's metadata"),
            ("audio_range_64k", "API, 64 KiB audio range"),
            ("audio_whole_30s", "API, whole 30 s recording"),
        ):
            loaded = r["results"][kind]["loaded"]
            plain = r["unsealed"][kind]["loaded"] if "unsealed" in r else None
            unsealed = (
                f" (unsealed: {plain['requests_per_s']} req/s, p99 {plain['p99_ms']:,.0f} ms)"
                if plain
                else ""
            )
            rows.append((
                label, f"{loaded['requests_per_s']} req/s, p99 {loaded['p99_ms']:,.0f} ms"
                + unsealed,
                f"{r['clients']} connections ({r['results']['load_generator']}), {loaded['errors']} errors"
                + (", objects sealed under each client's key" if plain or r.get("sealed") else ""),
            ))  # fmt: skip
        return rows
    if name.startswith("audit"):
        return [
            ("audit replay", f"{r['events_per_s']:,} events/s ({r['replay_seconds']} s)",
             f"{r['events']:,} events; {r.get('scratch_on_disk', 'one process')}; peak RSS of all of them "
             f"{r['peak_rss_mb']} MB; {r['violations']} violations"),
        ]  # fmt: skip
    if name == "payments":
        alone = r["audio_check_alone"]
        arrivals = [("", r)] + ([(", events interleaved", r["interleaved"])] if "interleaved" in r else [])
        return [
            *[_payments_row(how, figures, r) for how, figures in arrivals],
            *[(f"worker CPU per call, payment calls against plain ones, phases in turn in one worker, "
               f"events {arrival}",
               f"median of the pairs' ratios {pair['median_pair_ratio']}× (pairs: "
               + ", ".join(f"{x}" for x in pair["pair_ratios"]) + ")",
               f"{len(pair['phases'])} phases of {pair['phases'][0]['calls']} calls, plain and payment in "
               "turn (ABBA), each pair on the worker's warm heap in the same minute")
              for arrival, pair in r.get("paired", {}).items()],
            ("hearing a payment call's pauses, alone", f"{alone['cpu_ms_per_call']} ms CPU a call by range",
             f"{r['audio_check_share_of_a_call']} of a plain call's worker CPU; header and one 8.5 s span "
             "by range, numpy (the path of a recording stored as it is)"),
            *([("hearing a payment call's pauses in memory, alone",
                f"{r['audio_check_in_memory']['cpu_ms_per_call']} ms CPU a call",
                f"{r['audio_check_in_memory_share_of_a_call']} of a plain call's worker CPU; the bytes the "
                "one GET to seal it read (the sealed path, the default)")] if "audio_check_in_memory" in r
              else []),
        ]  # fmt: skip
    if name == "faust_floor":
        plain, pay = r["plain"], r["payments"]
        rows = [
            (
                "a bare faust worker carrying callvault's hops, no S3"
                + (
                    f" ({r['hops'].split(':')[0]} hop{'s' if r['hops'].startswith('two') else ''})"
                    if "hops" in r
                    else ""
                ),
                f"{plain['cpu_ms_per_call']} ms CPU a plain call ({plain['cpu_ms_per_event']} ms an event); "
                f"{pay['cpu_ms_per_call']} ms a payment call",
                "callvault's faust settings and topics, json in place of its models; median of "
                f"{r['rounds']} rounds of {plain['calls']} calls",
            ),
        ]
        if "callvault_facts" in r:
            own = r["callvault_facts"]
            rows.append((
                "callvault's worker on state-only events, no S3",
                f"{own['cpu_ms_per_event']} ms CPU an event, against faust's bare "
                + " to ".join(str(v) for v in sorted({pay["cpu_ms_per_event"], plain["cpu_ms_per_event"]}))
                + " ms",
                f"{own['events']} pause and payment events of calls not started; "
                f"median of {r['rounds']} rounds",
            ))  # fmt: skip
        if "boto3_floor_ms_per_call" in r:
            rows.append(
                (
                    "the lowest worker CPU ratios the two floors allow",
                    f"{r['lowest_worker_cpu_over_boto3_floor']}× the boto3 floor; payment calls "
                    f"{r['lowest_payments_over_plain']}× plain ones",
                    f"boto3 floor {r['boto3_floor_ms_per_call']} ms a call (ingest) plus faust's; "
                    "issue 25 asks 1.3×, issue 28 asks 1.2×",
                )
            )
        return rows
    if name == "subject_lookup":
        caller, agent = r["caller"], r["agent"]
        lists = caller["requests"].get("ListObjectsV2", 0)
        return [
            ("a subject request's lookup (one index entry per call)",
             f"{caller['elapsed_s']} s for a caller's {caller['calls_found']} calls; {agent['elapsed_s']} s "
             f"for an agent's {agent['calls_found']}",
             f"{r['index_entries']:,} entries in the tenant's index: {lists} listings, "
             "then a GET per call found"),
        ]  # fmt: skip
    if name == "memory":
        return [
            ("worker memory, calls in flight",
             f"peak {r['peak_rss_mb']} MB RSS ({r['per_call_kb']} KB a call)",
             f"{r['calls_in_flight']:,} calls started, none ended; idle {r['baseline_rss_mb']} MB"),
        ]  # fmt: skip
    return []


ORDER = (
    "ingest", "payments", "faust_floor", "purge", "api-20", "api_floor", "api", "subject_lookup", "audit",
    "audit-10m", "memory",
)  # fmt: skip


def gather() -> dict[str, Any]:
    """The figures in bench/out, over the last results for benchmarks this machine did not run again."""
    found = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    found.update({p.stem: json.loads(p.read_text()) for p in sorted(OUT.glob("*.json"))})
    order = [n for name in ORDER for n in (name, f"{name}{KAFKA}")]  # Apache Kafka's beside Tansu's
    return {name: found[name] for name in (*order, *sorted(set(found) - set(order))) if name in found}


def table(results: dict[str, Any]) -> str:
    machines = sorted({r.get("machine", "?") for r in results.values()})
    lines = [
        f"Latest `make bench` figures (machine: {'; '.join(machines)}; embedded stack: Tansu + moto, "
        "or Apache Kafka + moto where a row says so).",
        "",
        "| benchmark | figure | conditions | measured |",
        "|---|---|---|---|",
    ]
    for name, result in results.items():
        when = result.get("measured_at", "before dates were kept")
        for what, figure, conditions in _rows(name, result):
            lines.append(f"| {what} | {figure} | {conditions} | {when} |")
    return "\n".join(lines)


def put_in_readme(text: str) -> bool:
    readme = README.read_text()
    if START not in readme or END not in readme:
        return False
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{text}\n{END}{tail}")
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-readme", action="store_true", help="print and write results.json only")
    args = parser.parse_args()
    results = gather()
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    text = table(results)
    print(text)
    if not args.no_readme:
        print(
            "docs/benchmarks.md updated"
            if put_in_readme(text)
            else "docs/benchmarks.md has no bench-table markers: not updated"
        )


if __name__ == "__main__":
    main()
