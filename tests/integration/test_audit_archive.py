"""The audit archive on the real broker and store: every lifecycle record once, chained, across a kill."""

from __future__ import annotations

import asyncio
import gzip
import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from callvault.clock import SystemClock
from callvault.rules.audit_chain import LoggedRecord, digest, parse_segment, segment_body, verify_chain
from callvault.settings import Settings
from callvault.simulation.seed_archive import plant
from callvault.storage import audit_archive as store
from callvault.storage.client import make_s3_client
from callvault.storage.holds import HoldRecord, put_hold
from callvault.stream.audit_archiver import AuditArchiver
from callvault.stream.offloop import S3Runner
from tests.cli import run_callvault
from tests.conftest import make_settings, prepare_async, settings_env, spawn_worker
from tests.integration.helpers import Bus
from tests.stack import Servers

pytestmark = pytest.mark.integration


def _segments(settings: Settings) -> dict[int, list[tuple[str, bytes]]]:
    s3 = make_s3_client(settings)
    return {
        p: [(key, store.read_segment(s3, settings.audit_bucket, key))
            for key in store.segment_keys(s3, settings.audit_bucket, p)]
        for p in range(settings.partitions)
    }  # fmt: skip


def _archived_offsets(settings: Settings) -> list[tuple[int, int]]:
    return [
        (p, record.offset)
        for p, segments in _segments(settings).items()
        for _, body in segments
        for record in parse_segment(body)[1]
    ]


async def _until_archived(settings: Settings, bus: Bus, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        if len(await asyncio.to_thread(_archived_offsets, settings)) >= len(bus.lifecycle.records):
            return
    raise AssertionError("the audit archive did not catch up with the lifecycle topic")


async def _calls_archived(bus: Bus, settings: Settings, count: int) -> None:
    """Send compliant calls, wait for their outcomes and for the audit archive to hold them."""
    calls = [bus.script() for _ in range(count)]
    for call in calls:
        await bus.send_call(call)
    for call in calls:
        await bus.wait_types(call.call_id, "recording.archived", "metadata.archived", timeout=60)
    await _until_archived(settings, bus, 60)


async def test_lifecycle_is_archived_once_and_chained_across_a_killed_worker(
    servers: Servers, tmp_path: Path
) -> None:
    settings = make_settings(servers, "a" + secrets.token_hex(3), audit_flush_s=0.5, audit_segment_records=20)
    await prepare_async(settings)
    async with Bus(settings) as bus:
        first = spawn_worker(settings, "worker-audit")
        try:
            await _calls_archived(bus, settings, 4)
            first.kill()
        finally:
            first.stop()
        second = spawn_worker(settings, "worker-audit-restarted")
        try:
            await _calls_archived(bus, settings, 4)
            await bus.caught_up()  # every event of those calls written, then in the archive
            await _until_archived(settings, bus, 60)
        finally:
            second.stop()
        expected = len(bus.lifecycle.records)

    offsets = _archived_offsets(settings)
    assert len(offsets) == len(set(offsets)) == expected, "every record once"
    for partition, segments in _segments(settings).items():
        assert verify_chain(segments) == [], f"partition {partition}"
        if segments:
            assert parse_segment(segments[0][1])[0].first_offset == 0, "nothing missing at the start"
    s3 = make_s3_client(settings)
    key = next(k for segs in _segments(settings).values() for k, _ in segs)
    head = s3.head_object(Bucket=settings.audit_bucket, Key=key)
    assert head["ObjectLockMode"] == "COMPLIANCE", "a segment cannot be changed or removed"
    assert head["ObjectLockRetainUntilDate"].year >= time.gmtime().tm_year + 4

    # The auditor's replay: everything clean, the report written.
    out = tmp_path / "report"
    clean = run_callvault("audit", "replay", "--out", str(out), env=settings_env(settings))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    doc = json.loads((out / "report.json").read_text())
    assert doc["violations"] == [] and doc["chain"]["intact"]
    assert doc["sources"]["archived_events"] == expected
    assert "<svg" in (out / "report.html").read_text()

    # The store checked against the log: clean; then data written around callvault.
    verified = run_callvault("audit", "verify-store", "--out", str(out), env=settings_env(settings))
    assert verified.returncode == 0 and "0 finding(s)" in verified.stdout, verified.stdout + verified.stderr
    assert json.loads((out / "verify-store.json").read_text())["keys_checked"] == 16  # 8 calls, 2 objects
    long_ago = datetime.now(UTC) - timedelta(days=40)
    plant(s3, settings, [long_ago, long_ago], tenant="acme", call_prefix="ghost")
    put_hold(s3, settings.metadata_bucket, HoldRecord(
        call_id="ghost-000001", tenant="acme", reason="litigation", placed_by="legal",
        placed_at=datetime.now(UTC), command_id="c-1",
    ))  # fmt: skip
    flagged = run_callvault("audit", "verify-store", "--out", str(out), env=settings_env(settings))
    assert flagged.returncode == 1, flagged.stdout + flagged.stderr
    findings = json.loads((out / "verify-store.json").read_text())["findings"]
    assert sorted((f["call_id"], f["rule"]) for f in findings) == [
        ("ghost-000000", "archived_without_event"),
        ("ghost-000000", "past_due_in_store"),
        ("ghost-000001", "archived_without_event"),  # held: kept past due, rightly
    ]

    # A new version of a segment with one event changed: the replay finds the edit
    # (through the next segment's hash, or the head's for a partition's last).
    body = store.read_segment(s3, settings.audit_bucket, key).replace(
        b"recording.archived", b"recording.rejected", 1
    )
    s3.put_object(Bucket=settings.audit_bucket, Key=key, Body=gzip.compress(body))
    tampered = run_callvault("audit", "replay", "--out", str(out), env=settings_env(settings))
    assert tampered.returncode == 1
    assert "BROKEN" in tampered.stdout
    assert json.loads((out / "report.json").read_text())["chain"]["breaks"]


async def test_a_segment_stored_just_before_a_crash_is_continued_not_repeated(servers: Servers) -> None:
    settings = make_settings(servers, "h" + secrets.token_hex(3))
    await prepare_async(settings)
    s3 = make_s3_client(settings)

    def archiver() -> AuditArchiver:
        runner = S3Runner(make_s3_client(settings), max_workers=2, endpoint=settings.s3_endpoint)
        return AuditArchiver(settings, runner, SystemClock())

    def records(offsets: range) -> list[LoggedRecord]:
        return [LoggedRecord(0, o, f"call-{o}", f'{{"n":{o}}}') for o in offsets]

    await archiver().archive(0, records(range(0, 3)))
    # The next segment reached the store, then the worker died before moving the head.
    [(_, first)] = _segments(settings)[0]
    _, body = segment_body(records(range(3, 5)), digest(first))
    store.write_segment(s3, settings.audit_bucket, store.segment_key(0, 3), body, datetime.now(UTC))

    await archiver().archive(0, records(range(2, 8)))  # redelivered 2..4, new 5..7
    segments = _segments(settings)[0]
    assert verify_chain(segments) == []
    assert [r.offset for _, b in segments for r in parse_segment(b)[1]] == list(range(8))


async def test_a_worker_told_to_stop_exits_by_itself_and_its_successor_archives_what_it_held(
    servers: Servers,
) -> None:
    """SIGTERM with lifecycle records still gathering for a segment (the flush is 30 s away).

    Before faust_stop, the worker waited for that flush, so the suite's stop killed
    it after 10 s. Now it exits on its own within CALLVAULT_STOP_WAIT_S, leaving
    those records uncommitted, and the next worker archives them once.
    """
    settings = make_settings(servers, "q" + secrets.token_hex(3), audit_flush_s=30.0)
    await prepare_async(settings)
    async with Bus(settings) as bus:
        first = spawn_worker(settings, "worker-told-to-stop")
        try:
            call = bus.script()
            await bus.send_call(call)
            await bus.wait_types(call.call_id, "recording.archived", "metadata.archived", timeout=60)
            await bus.caught_up()
            assert _archived_offsets(settings) == [], "the records are still gathering"
        finally:
            first.stop(timeout=settings.stop_wait_s + 10)
        assert first.proc is not None and first.proc.returncode == 0, f"killed, not stopped:\n{first.tail()}"
        second = spawn_worker(settings.model_copy(update={"audit_flush_s": 0.5}), "worker-successor")
        try:
            await _until_archived(settings, bus, 60)
        finally:
            second.stop()
        offsets = _archived_offsets(settings)
        assert len(offsets) == len(set(offsets)) == len(bus.lifecycle.records), "every record once"
