"""Audit replay speed and memory at 1,000,000 (or --events) lifecycle events, on the embedded stack.

Writes a realistic audit archive straight into the embedded store's audit bucket
(hash-chained, COMPLIANCE-locked segments of 5,000 records over 4 partitions,
exactly as the worker's audit agent writes them): six months of calls (180 days
ending two days ago, more calls a day for more events), each with a disclosure
verified, its recording and metadata archived, one coach's access two days
later and, once its month is up, its recording deleted on time; metadata is not
due yet. Events are written in time order, interleaved across calls, as the
log holds them. Then runs `callvault audit replay` as a user would, a child
process, and reports its wall time, events/s, the peak of the resident memory
of the replay and every process it starts, added up (sampled from /proc every
0.2 s), and the scratch it kept on disk.

    .venv/bin/python bench/audit.py [--events 1000000] [--name audit]

Writes bench/out/{name}.json.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import make_settings, prepare_async, settings_env  # noqa: E402
from tests.stack import embedded_servers  # noqa: E402

from bench.report import machine, save  # noqa: E402
from callvault.contract.fields import format_rfc3339  # noqa: E402
from callvault.embedded.stack import EmbeddedStack  # noqa: E402
from callvault.rules.audit_chain import GENESIS, LoggedRecord, digest, segment_body  # noqa: E402
from callvault.settings import Settings  # noqa: E402
from callvault.storage import audit_archive as store  # noqa: E402
from callvault.storage.client import make_s3_client  # noqa: E402

SEGMENT = 5000
SPAN = timedelta(days=180)
EVENTS_PER_CALL = 4 + 150 / 180  # the deletion only for calls whose month is up


def call_events(
    i: int, settings: Settings, base: datetime, spacing_s: float = 13.0, now: datetime | None = None
) -> list[dict[str, Any]]:
    """One call's story as the worker, the purger and the API tell it; all within the rules.

    With `now`, a deletion is left out when the recording is not due until well after it (its month
    is not up). "Well after": writing ten million events takes a quarter of an hour and the replay
    another ten minutes, and a recording falling due in between with no deletion would be a
    `not_deleted` finding; its deletion is written instead, a little ahead of time."""
    call, tenant = f"call-{i:08d}", f"tenant-{i % 7}"
    start = base + timedelta(seconds=spacing_s * i)
    due = start + timedelta(days=30)
    rec_id = str(uuid.uuid4())
    rec_key = f"{tenant}/{start:%Y/%m/%d}/{call}.wav"
    meta_key = f"{tenant}/{start:%Y/%m/%d}/{call}.json"
    sha = "ab" * 32

    def ev(kind: str, at: datetime, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "event_id": str(uuid.uuid4()), "call_id": call, "tenant": tenant,
                "occurred_at": format_rfc3339(at), **fields}  # fmt: skip

    deleted = due + timedelta(seconds=4 + i % 50)
    story = [
        ev("disclosure.verified", start + timedelta(seconds=40), recording_event_id=rec_id,
           disclosure_event_id=str(uuid.uuid4()), prompt_id="notice-v2",
           played_at=format_rfc3339(start),
           recording_started_at=format_rfc3339(start + timedelta(seconds=6))),
        ev("recording.archived", start + timedelta(seconds=41), recording_event_id=rec_id,
           object={"bucket": settings.recordings_bucket, "key": rec_key, "sha256": sha, "size_bytes": 480044},
           source_uri=f"s3://{settings.staging_bucket}/{call}.wav",
           recording_started_at=format_rfc3339(start + timedelta(seconds=6)), expires_at=format_rfc3339(due)),
        ev("metadata.archived", start + timedelta(seconds=41),
           object={"bucket": settings.metadata_bucket, "key": meta_key, "sha256": sha, "size_bytes": 900},
           call_started_at=format_rfc3339(start), expires_at=format_rfc3339(start + timedelta(days=183))),
        ev("recording.accessed", start + timedelta(days=2), accessed_by="coach@example", role="qa",
           purpose="weekly coaching", what="audio", granted_tenants=[tenant]),
        ev("recording.deleted", deleted,
           object={"bucket": settings.recordings_bucket, "key": rec_key, "sha256": sha, "size_bytes": 480044},
           due_at=format_rfc3339(due), deleted_at=format_rfc3339(deleted), lateness_s=4.0 + i % 50,
           reason="retention_elapsed", versions_deleted=1),
    ]  # fmt: skip
    return story if now is None or due < now + timedelta(hours=3) else story[:-1]


def _tree_rss_mb(root: int) -> float:
    """The resident memory of `root` and all its descendants, added up (Linux /proc)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid = int(entry.name)
        parents[pid] = int(fields.get("PPid", "0").strip())
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(rss.get(pid, 0) for pid in tree) / 1024


class PeakSampler:
    """The largest sum of resident memory over a process tree, sampled while it runs."""

    def __init__(self, pid: int, every_s: float = 0.2) -> None:
        self.pid, self.every_s, self.peak_mb = pid, every_s, 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(self.every_s):
            self.peak_mb = max(self.peak_mb, _tree_rss_mb(self.pid))

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        return self.peak_mb


def write_archive(settings: Settings, events: int) -> dict[str, Any]:
    """The segments and heads the audit agent would have written for this traffic."""
    s3 = make_s3_client(settings, pool=16)
    now = datetime.now(UTC)
    base = now - SPAN - timedelta(days=2)  # six months ending two days ago: no metadata due yet
    calls = round(events / EVENTS_PER_CALL)
    spacing = SPAN.total_seconds() / calls
    retain = now + timedelta(days=1)
    pending: dict[int, list[LoggedRecord]] = defaultdict(list)
    offsets: dict[int, int] = defaultdict(int)
    previous: dict[int, str] = defaultdict(lambda: GENESIS)
    segments = raw_bytes = 0

    def flush(partition: int) -> None:
        nonlocal segments, raw_bytes
        header, body = segment_body(pending[partition], previous[partition])
        key = store.segment_key(partition, header.first_offset)
        store.write_segment(s3, settings.audit_bucket, key, body, retain)
        previous[partition] = digest(body)
        store.write_head(s3, settings.audit_bucket, partition,
                         store.Head(key, header.last_offset, previous[partition]))  # fmt: skip
        pending[partition].clear()
        segments += 1
        raw_bytes += len(body)

    def log(event: dict[str, Any]) -> None:
        partition = hash(event["call_id"]) % settings.partitions
        pending[partition].append(
            LoggedRecord(partition, offsets[partition], event["call_id"], json.dumps(event))
        )
        offsets[partition] += 1
        if len(pending[partition]) == SEGMENT:
            flush(partition)

    # In time order: a call's access and deletion wait in a heap until the log reaches their instant.
    later: list[tuple[str, int, dict[str, Any]]] = []
    written = 0
    for i in range(calls):
        story = call_events(i, settings, base, spacing, now)
        while later and later[0][0] <= story[0]["occurred_at"]:
            log(heapq.heappop(later)[2])
            written += 1
        for event in story[:3]:
            log(event)
        written += 3
        for n, event in enumerate(story[3:]):
            heapq.heappush(later, (event["occurred_at"], i * 2 + n, event))
    while later:
        log(heapq.heappop(later)[2])
        written += 1
    for partition in list(pending):
        if pending[partition]:
            flush(partition)
    return {"events_written": written, "calls": calls, "segments": segments,
            "uncompressed_mb": round(raw_bytes / 1e6, 1)}  # fmt: skip


async def main(events: int) -> dict[str, Any]:
    with EmbeddedStack() as stack:
        servers = embedded_servers(stack)
        settings = make_settings(servers, "baud" + secrets.token_hex(2))
        await prepare_async(settings)
        began = time.monotonic()
        written = await asyncio.to_thread(write_archive, settings, events)
        took = time.monotonic() - began
        events = written["events_written"]
        print(f"wrote {events:,} events of {written['calls']:,} calls in {written['segments']} segments "
              f"({written['uncompressed_mb']} MB before gzip) in {took:.1f} s", flush=True)  # fmt: skip
        with tempfile.TemporaryDirectory() as out:
            began = time.monotonic()
            child = subprocess.Popen(
                [sys.executable, "-m", "callvault", "audit", "replay", "--out", out],
                env={**os.environ, **settings_env(settings), "COLUMNS": "200"},
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            sampler = PeakSampler(child.pid)
            stdout, stderr = child.communicate(timeout=3600)
            elapsed = time.monotonic() - began
            peak_mb = sampler.stop()
            run = subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)
            report = json.loads((Path(out) / "report.json").read_text())
    # The line that sums the replay up (the one before it names the key the checkpoints were checked with).
    lines = [line for line in run.stdout.splitlines() if "events replayed" in line]
    summary = lines[0] if lines else run.stderr[-2000:]
    print(summary)
    scratch = summary.rsplit("; ", 1)[-1] if "scratch" in summary else "not reported"
    if run.returncode != 0:
        raise SystemExit(f"the replay exited {run.returncode}: {run.stdout[-2000:]} {run.stderr[-2000:]}")
    result = {
        "machine": machine(),
        "stack": "embedded (Tansu, moto); `callvault audit replay` as a child process",
        "events": events,
        **written,
        "replay_seconds": round(elapsed, 1),
        "events_per_s": round(events / elapsed),
        "peak_rss_mb": round(peak_mb),
        "scratch_on_disk": scratch,
        "violations": len(report["violations"]),
        "chain_intact": report["chain"]["intact"],
    }
    print(
        f"replay: {events:,} events in {elapsed:.1f} s = {result['events_per_s']:,} events/s, "
        f"peak memory {result['peak_rss_mb']} MB, {scratch}, {result['violations']} violations, "
        f"chain {'intact' if result['chain_intact'] else 'BROKEN'}"
    )
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--name", default="audit", help="bench/out/{name}.json")
    args = parser.parse_args()
    save(args.name, asyncio.run(main(args.events)))
