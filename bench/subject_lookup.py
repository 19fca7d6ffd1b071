"""What a data-subject request's lookup costs now that the subject index has one entry per call.

A subject request lists the tenant's whole index (`_callvault/subject-index/{tenant}/calls/`, one LIST
per 1,000 calls) and reads the entries whose key names the subject. This plants `--calls` entries of
three subjects each (a caller of their own, one of 20 agents, the centre's line) in the embedded stack's
moto server, then times `calls_of` for a caller with 3 calls and for an agent, with the requests each made.

    .venv/bin/python bench/subject_lookup.py [--calls 20000]

Writes bench/out/subject_lookup.json.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import secrets
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import make_settings, prepare_async  # noqa: E402
from tests.stack import embedded_servers  # noqa: E402

from bench.report import machine, save  # noqa: E402
from callvault.embedded.stack import EmbeddedStack  # noqa: E402
from callvault.storage.client import make_s3_client  # noqa: E402
from callvault.storage.subject_index import IndexEntry, calls_of, put_entries  # noqa: E402

AGENTS = 20


def pseudonym(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def entry(i: int, caller: str) -> IndexEntry:
    started = datetime(2026, 6, 1, tzinfo=UTC) + timedelta(minutes=i)
    return IndexEntry(
        call_id=f"c-{i:07d}",
        tenant="acme",
        subjects=[caller, pseudonym(f"agent-{i % AGENTS}"), pseudonym("centre")],
        objects={"metadata": f"acme/2026/06/01/c-{i:07d}.json"},
        call_started_at=started,
        expires_at=started + timedelta(days=183),
    )


def timed_lookup(s3: Any, bucket: str, subject: str) -> dict[str, Any]:
    sent: Counter[str] = Counter()

    def count(*, event_name: str = "", **_: Any) -> None:
        sent[event_name.rsplit(".", 1)[-1]] += 1

    s3.meta.events.register("before-send.s3", count)
    begun = time.perf_counter()
    found = calls_of(s3, bucket, "acme", subject)
    elapsed = time.perf_counter() - begun
    s3.meta.events.unregister("before-send.s3", count)
    return {"calls_found": len(found), "elapsed_s": round(elapsed, 3), "requests": dict(sent)}


async def main(calls: int) -> dict[str, Any]:
    with EmbeddedStack() as stack:
        settings = make_settings(embedded_servers(stack), "l" + secrets.token_hex(3), log_level="warning")
        await prepare_async(settings)
        s3 = make_s3_client(settings)
        bucket = settings.metadata_bucket
        target = pseudonym("the subject")
        theirs = set(range(0, calls, calls // 3)[:3])  # the subject's 3 calls, spread over the index
        callers = [target if i in theirs else pseudonym(f"caller-{i}") for i in range(calls)]
        begun = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda i: put_entries(s3, bucket, entry(i, callers[i]), {}), range(calls)))
        planted = time.perf_counter() - begun
        return {
            "benchmark": "subject_lookup",
            "machine": machine(),
            "stack": "embedded (moto S3 server)",
            "index_entries": calls,
            "planting_s": round(planted, 1),
            "caller": timed_lookup(s3, bucket, target),
            "agent": timed_lookup(s3, bucket, pseudonym("agent-0")),
            "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    result = asyncio.run(main(args.calls))
    save("subject_lookup", result)
    for who in ("caller", "agent"):
        r = result[who]
        print(
            f"{who:6}  {r['calls_found']} calls found among {result['index_entries']} entries in "
            f"{r['elapsed_s']} s: {r['requests']}"
        )
