"""`callvault demo`: the whole path on the embedded stack, then what happened, counted.

Starts the broker and the store, sets up storage, runs the worker, sends a few
hundred simulated calls (compliant, late, missing and after-start disclosures,
objections, backdated calls, a few unreadable events) and waits until every call
has its outcome on the lifecycle topic. Then it counts outcomes by reason, next
to what the contract says each call should get, and the objects in each bucket.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from callvault.audit.report import report_document, write_report
from callvault.audit.sources import AuditLog, log_events
from callvault.clock import SystemClock
from callvault.contract.commands import LegalHoldPlace
from callvault.embedded.kafka_broker import VERSION as KAFKA_VERSION
from callvault.embedded.processes import ChildProcess
from callvault.embedded.stack import EmbeddedStack
from callvault.embedded.worker_process import start_worker_process
from callvault.rules.audit_replay import replay
from callvault.rules.client_policy import Scope, terms_at
from callvault.rules.retention import RetentionPolicy
from callvault.settings import Settings
from callvault.simulation.plan import SimulatedCall, TrafficOptions
from callvault.storage.bootstrap import init_storage
from callvault.storage.client import make_s3_client
from callvault.stream.bus import ensure_callvault_topics, lifecycle_emitter, make_producer
from callvault.stream.command_client import submit_command
from callvault.stream.policy_changes import change_policy
from callvault.stream.purger import standalone_pass
from callvault.stream.subject_client import file_request, subject_command
from callvault.stream.watch import TopicWatcher

OUTCOME_TYPES = {"recording.archived", "recording.rejected"}
BAD_INPUTS: list[tuple[bytes | None, bytes]] = [
    (b"bad-1", b"this is not json"),
    (b"bad-2", json.dumps({"type": "call.teleported", "event_id": "x"}).encode()),
    (b"a/b", json.dumps({"type": "call.ended", "event_id": "6f1c1e2a-8a53-4c47-9d0c-0a4c7c5e0f11",
                          "call_id": "a/b", "tenant": "acme", "occurred_at": "2026-01-01T10:00:00Z",
                          "duration_s": 3}).encode()),
]  # fmt: skip


@dataclass(frozen=True)
class SubjectRow:
    kind: str
    tenant: str
    calls: int
    recordings: int
    metadata: int
    held: int
    export: str


@dataclass(frozen=True)
class AuditSummary:
    events: int
    violations: int
    chain_intact: bool
    report_dir: Path


def _audit(settings: Settings, out: Path) -> AuditSummary:
    """The auditor's replay of everything the demo did, as `callvault audit replay` writes it."""
    now = SystemClock().now()
    log = AuditLog()
    result = replay(log_events(make_s3_client(settings), settings, log), now, timedelta(minutes=10))
    doc = report_document(result, log, now, {"tolerance": "PT10M"})
    write_report(doc, out)
    return AuditSummary(result.events, len(result.violations), not log.breaks, out)


@dataclass
class DemoResult:
    calls: list[SimulatedCall]
    observed: dict[str, str]
    dead_letters: int
    bucket_counts: dict[str, int]
    seconds: float
    # when, recordings, metadata, held, recordings by tenant
    purges: list[tuple[str, int, int, int, str]] = field(default_factory=list)
    audit: AuditSummary | None = None
    subjects: list[SubjectRow] = field(default_factory=list)

    @property
    def mismatches(self) -> list[tuple[str, str, str]]:
        return [
            (c.call_id, c.expected, self.observed.get(c.call_id, "no outcome"))
            for c in self.calls
            if self.observed.get(c.call_id) != c.expected
        ]


def _outcome(events: list[dict[str, object]]) -> str | None:
    for event in events:
        if event.get("type") == "recording.archived":
            return "archived"
        if event.get("type") == "recording.rejected":
            return str(event.get("reason"))
    return None


# The demo's client with terms of its own (`callvault policy set globex --recording P7D`);
# the other tenants keep the privacy statement's 1 month and 6 months.
SHORT_TERM_TENANT = "globex"


async def _client_policy(settings: Settings) -> RetentionPolicy:
    async with lifecycle_emitter(settings) as emit:
        version = await change_policy(
            make_s3_client(settings), settings, emit, SHORT_TERM_TENANT, Scope(terms={"recording": "P7D"}),
            queue=None, changed_by="callvault demo", reason="demo: the client contract says 7 days",
            now=SystemClock().now(),
        )  # fmt: skip
    return terms_at([version], None, version.effective_at, settings.policy_defaults).retention


async def _purges(settings: Settings, held_call: str | None) -> list[tuple[str, int, int, int, str]]:
    """A legal hold on one call; a real pass now (nothing is due yet: calls older than a month
    were never archived); dry runs at the dates this traffic's recordings fall due (7 days for
    the short-term client, a month for the others), then its metadata."""
    now = SystemClock().now()
    if held_call is not None:
        hold = LegalHoldPlace(
            event_id=uuid.uuid4(), requested_by="callvault demo", requested_at=now,
            reason="demo: a call in dispute", call_id=held_call,
        )  # fmt: skip
        await submit_command(settings, hold, wait_s=30)
    runs = [
        ("a pass now", None),
        ("dry run in 8 days", now + timedelta(days=8)),
        ("dry run in 33 days", now + timedelta(days=33)),
        ("dry run in 7 months", now + timedelta(days=214)),
    ]
    rows = []
    for label, as_of in runs:
        report = await standalone_pass(settings, dry_run=as_of is not None, as_of=as_of)
        kinds = Counter(obj.retention_class.value for obj in report.deleted)
        by_tenant = Counter(obj.tenant for obj in report.deleted if obj.retention_class.value == "recording")
        tenants = ", ".join(f"{t} {n}" for t, n in sorted(by_tenant.items())) or "-"
        rows.append((label, kinds["recording"], kinds["metadata"], len(report.held), tenants))
    return rows


def _caller_of(call: SimulatedCall) -> str:
    return str(next(e["caller"] for e in call.events if e["type"] == "call.started"))


async def _subject_requests(
    settings: Settings, plan: list[SimulatedCall], held_call: str | None
) -> list[SubjectRow]:
    """Two participants' requests, as a DPO would file them: a copy of one's data, then erasure
    of both; the held call's participant sees that call reported and kept."""
    archived = [c for c in plan if c.expected == "archived" and c.call_id != held_call]
    held = next((c for c in plan if c.call_id == held_call), None)
    if not archived:
        return []
    picks = [("access", archived[0]), ("erase", archived[0])]
    if held is not None:
        picks.append(("erase", held))
    rows = []
    for kind, call in picks:
        command = subject_command(
            settings, kind, _caller_of(call), call.tenant, command_id=uuid.uuid4(),
            requested_by="callvault demo", reason=f"demo: {kind} request by e-mail",
            verified_by="demo front desk", received_at=None, now=SystemClock().now(),
        )  # fmt: skip
        _, answer = await file_request(settings, command, 60)
        if isinstance(answer, dict):
            held_calls = len(answer.get("held_calls") or [])
            export = "yes" if answer.get("export_uri") else "-"
            counts = (answer["calls"], answer["recordings"], answer["metadata"])
            rows.append(SubjectRow(kind, call.tenant, *counts, held_calls, export))
        else:
            rows.append(SubjectRow(kind, call.tenant, 0, 0, 0, 0, f"no answer: {answer}"))
    return rows


def _count_objects(settings: Settings) -> dict[str, int]:
    s3 = make_s3_client(settings)
    counts = {}
    for bucket in (settings.staging_bucket, settings.recordings_bucket, settings.metadata_bucket):
        paginator = s3.get_paginator("list_objects_v2")
        counts[bucket] = sum(page.get("KeyCount", 0) for page in paginator.paginate(Bucket=bucket))
    return counts


class WorkerDied(RuntimeError):
    pass


async def _drive(
    settings: Settings,
    calls: list[SimulatedCall],
    console: Console,
    timeout: float,
    worker: ChildProcess,
) -> tuple[dict[str, str], int]:
    from callvault.simulation.publish import publish_calls

    lifecycle = await TopicWatcher(settings, settings.lifecycle_topic).start()
    dead = await TopicWatcher(settings, settings.deadletter_topic).start()
    try:
        producer = make_producer(settings)
        await producer.start()
        for key, value in BAD_INPUTS:
            await producer.send_and_wait(settings.call_events_topic, value, key=key)
        await producer.stop()
        took = await publish_calls(settings, calls, rate=0)
        events = sum(len(c.events) for c in calls)
        console.print(
            f"published {len(calls)} calls ({events} events) and {len(BAD_INPUTS)} unreadable events "
            f"in {took:.1f}s; waiting for outcomes…"
        )
        ids = [c.call_id for c in calls]
        last_report = 0.0

        def done(w: TopicWatcher) -> bool:
            return all(_outcome(w.by_key.get(i, [])) is not None for i in ids)

        deadline = time.monotonic() + timeout
        while not done(lifecycle) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            if not worker.alive():
                raise WorkerDied(f"the worker exited; its log ends with:\n{worker.tail()}")
            if time.monotonic() - last_report > 5:
                last_report = time.monotonic()
                decided = sum(1 for i in ids if _outcome(lifecycle.by_key.get(i, [])))
                console.print(f"  {decided}/{len(ids)} calls decided")
        await dead.wait_for(lambda w: len(w.records) >= len(BAD_INPUTS), 15, "dead letters")
        observed = {i: outcome for i in ids if (outcome := _outcome(lifecycle.by_key.get(i, []))) is not None}
        return observed, len(dead.records)
    finally:
        await lifecycle.stop()
        await dead.stop()


def run_demo(console: Console, calls: int = 300, timeout: float = 90.0) -> DemoResult:
    grace = "PT5S"
    began = time.monotonic()
    # CALLVAULT_DEMO_BROKER=kafka runs the same demo on Apache Kafka (after `make kafka`).
    with EmbeddedStack(broker=os.environ.get("CALLVAULT_DEMO_BROKER") or None) as stack:
        broker = "Tansu" if stack.broker_kind == "tansu" else f"Apache Kafka {KAFKA_VERSION}"
        console.print(f"embedded stack: Kafka ({broker}) at {stack.kafka_bootstrap}, "
                      f"S3 (moto) at {stack.s3_endpoint}; logs in {stack.run_dir}")  # fmt: skip
        settings = Settings(
            kafka_bootstrap=stack.kafka_bootstrap,
            s3_endpoint=stack.s3_endpoint,
            disclosure_grace=grace,
        )
        asyncio.run(ensure_callvault_topics(settings))
        init_storage(make_s3_client(settings), settings)
        short_term = asyncio.run(_client_policy(settings))
        env = {**stack.env(), "CALLVAULT_DISCLOSURE_GRACE": grace}
        worker = start_worker_process(env, stack.run_dir / "worker.log")
        try:
            from callvault.simulation.plan import plan_traffic

            opts = TrafficOptions(
                calls=calls, tenants=("acme", "globex", "initech"), missing=0.1, late=0.1,
                after_start=0.05, objected=0.03, mismatch=0.02, payments=0.1, duplicates=0.05,
                backdate_months=3, backdated=0.08, seed=7, staging_bucket=settings.staging_bucket,
            )  # fmt: skip
            plan = plan_traffic(
                opts, SystemClock().now(), settings.retention, {SHORT_TERM_TENANT: short_term}
            )
            observed, dead = asyncio.run(_drive(settings, plan, console, timeout, worker))
            counts = _count_objects(settings)
            held = next((c.call_id for c in plan if c.expected == "archived"), None)
            purges = asyncio.run(_purges(settings, held))
            subjects = asyncio.run(_subject_requests(settings, plan, held))
        finally:
            worker.stop()
        audit = _audit(settings, stack.run_dir / "audit-report")
    return DemoResult(plan, observed, dead, counts, time.monotonic() - began, purges, audit, subjects)


def summary_tables(result: DemoResult) -> list[Table]:
    expected = Counter(c.expected for c in result.calls)
    observed = Counter(result.observed.get(c.call_id, "no outcome") for c in result.calls)
    outcomes = Table(title="outcomes by reason (read back from the lifecycle topic)")
    outcomes.add_column("outcome")
    outcomes.add_column("expected", justify="right")
    outcomes.add_column("observed", justify="right")
    for name in sorted(set(expected) | set(observed)):
        outcomes.add_row(name, str(expected.get(name, 0)), str(observed.get(name, 0)))
    buckets = Table(title="objects in the store")
    buckets.add_column("bucket")
    buckets.add_column("objects", justify="right")
    for bucket, n in result.bucket_counts.items():
        buckets.add_row(bucket, str(n))
    buckets.add_row("dead letters (topic)", str(result.dead_letters))
    title = "purge (deleted now / would delete later, every version, with proof; the policy of "
    purge = Table(title=title + SHORT_TERM_TENANT + " keeps recordings 7 days)")
    for column in ("pass", "recordings", "metadata", "kept by holds", "recordings by tenant"):
        purge.add_column(column, justify="left" if column in ("pass", "recordings by tenant") else "right")
    for row in result.purges:
        purge.add_row(row[0], *(str(n) for n in row[1:]))
    tables = [outcomes, buckets, purge]
    if result.subjects:
        subjects = Table(title="data-subject requests (by phone number, answered by the worker with proof)")
        for column in ("request", "tenant", "calls", "recordings", "metadata", "kept by holds", "export"):
            subjects.add_column(
                column, justify="left" if column in ("request", "tenant", "export") else "right"
            )
        for r in result.subjects:
            subjects.add_row(r.kind, r.tenant, str(r.calls), str(r.recordings), str(r.metadata), str(r.held),
                             r.export)  # fmt: skip
        tables.append(subjects)
    if result.audit is not None:
        audit = Table(title="audit replay of the lifecycle log (every rule checked)")
        for column in ("events", "violations", "hash chain"):
            audit.add_column(column)
        audit.add_column("report", overflow="fold")
        a = result.audit
        audit.add_row(str(a.events), str(a.violations), "intact" if a.chain_intact else "BROKEN",
                      str(a.report_dir / "report.html"))  # fmt: skip
        tables.append(audit)
    return tables
