"""A contract's end on the real stack: 2,000 calls of one tenant (120 in `make test`), one of them held,
returned to the client's bucket and erased; the offboarding SIGKILLed half-way and run again.

What it must show: the return location holds exactly the tenant's data (the manifest checked against
the bytes), nothing of the tenant is left but the held call, other tenants are untouched, and each
deletion is proven once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from callvault.rules.retention import RetentionClass
from callvault.simulation.seed_archive import plant
from callvault.storage.holds import HoldRecord, put_hold
from tests.conftest import make_settings, prepare_async, settings_env
from tests.faults.traffic import volume
from tests.integration.helpers import Bus
from tests.stack import Servers

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(600)]

CALLS = volume(2000, 120)
DELETIONS = {"recording.deleted", "metadata.deleted"}


def _deleted(bus: Bus, tenant: str) -> list[dict[str, object]]:
    return [r for r in bus.lifecycle.records if r.get("type") in DELETIONS and r.get("tenant") == tenant]


async def test_an_offboarding_killed_half_way_finishes_with_each_deletion_proven_once(
    servers: Servers,
) -> None:
    settings = make_settings(servers, "o" + secrets.token_hex(3), purge_batch_keys=50)
    await prepare_async(settings)
    env = {**settings_env(settings), "COLUMNS": "200"}
    client_bucket = f"{settings.recordings_bucket}-client"
    async with Bus(settings) as bus:
        s3 = bus.s3
        s3.create_bucket(
            Bucket=client_bucket, CreateBucketConfiguration={"LocationConstraint": settings.s3_region}
        )
        now = datetime.now(UTC)
        starts = [now - timedelta(hours=1 + i % 48) for i in range(CALLS)]
        for retention_class in (RetentionClass.RECORDING, RetentionClass.METADATA):
            await asyncio.to_thread(
                plant, s3, settings, starts, tenant="leaving", retention_class=retention_class
            )
            await asyncio.to_thread(
                plant, s3, settings, starts[:20], tenant="staying", retention_class=retention_class
            )
        held = "seed-000007"
        put_hold(s3, settings.metadata_bucket, HoldRecord(
            call_id=held, tenant="leaving", reason="dispute", placed_by="legal", placed_at=now,
            command_id=str(uuid.uuid4()),
        ))  # fmt: skip
        destination = f"s3://{client_bucket}/returned"
        command = [sys.executable, "-m", "callvault", "tenant", "offboard", "leaving", "--reason",
                   "contract 2023-9 ended", "--return-to", destination, "--erase"]  # fmt: skip

        first = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            await bus.lifecycle.wait_for(
                lambda w: len(_deleted(bus, "leaving")) >= CALLS // 2, 300, "half erased"
            )
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(30)
        assert 0 < len(_deleted(bus, "leaving")) < 2 * CALLS - 2, "killed in the middle of the erasure"

        again = await asyncio.to_thread(
            subprocess.run, command, env={**os.environ, **env}, capture_output=True, text=True, timeout=300
        )
        assert again.returncode == 0, again.stderr[-2000:]
        assert "finished the offboarding of leaving that an earlier run began" in again.stdout
        await bus.lifecycle.wait_for(
            lambda w: any(r.get("type") == "tenant.erased" for r in w.records), 60, "tenant.erased"
        )

        # The return location holds exactly the tenant's data, each file as the manifest says.
        manifest = json.loads(
            s3.get_object(Bucket=client_bucket, Key="returned/manifest.json")["Body"].read()
        )
        files = manifest["files"]
        assert len(files) == 2 * CALLS
        listed = {o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=client_bucket)
                  for o in p.get("Contents", ())}  # fmt: skip
        assert listed == {f"returned/{f['path']}" for f in files} | {"returned/manifest.json"}

        def matches(f: dict[str, str]) -> bool:
            body = s3.get_object(Bucket=client_bucket, Key=f"returned/{f['path']}")["Body"].read()
            return hashlib.sha256(body).hexdigest() == f["sha256"]

        with ThreadPoolExecutor(8) as pool:
            assert all(pool.map(matches, files)), "a returned file does not match its manifest entry"

        # Nothing of the tenant is left but the held call; the other tenant is untouched.
        for bucket in (settings.recordings_bucket, settings.metadata_bucket):
            versions = s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix="leaving/")
            left = {v["Key"] for p in versions for v in (*p.get("Versions", ()), *p.get("DeleteMarkers", ()))}
            assert left and all(held in k for k in left), sorted(left)[:5]
            staying = s3.list_objects_v2(Bucket=bucket, Prefix="staying/")
            assert staying["KeyCount"] == 20

        # Each deletion proven once: one event id per object, and none for the held call.
        await bus.read_to_end()
        proofs = _deleted(bus, "leaving")
        by_key: dict[str, set[str]] = {}
        for proof in proofs:
            by_key.setdefault(str(proof["object"]["key"]), set()).add(str(proof["event_id"]))  # type: ignore[index]
        assert len(by_key) == 2 * CALLS - 2 and not any(held in k for k in by_key)
        assert all(len(ids) == 1 for ids in by_key.values()), "a deletion proven under two ids"
        assert all(p["reason"] == "contract_end" for p in proofs)

        # The auditor's walk of the store finds nothing of the tenant but the held call.
        out = f"{os.environ.get('TMPDIR', '/tmp')}/verify-{settings.app_id}"
        walked = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "callvault", "audit", "verify-store", "--out", out],
            env={**os.environ, **env}, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        findings = json.loads(Path(out, "verify-store.json").read_text())["findings"]
        assert walked.returncode in (0, 1), walked.stderr[-2000:]
        assert all(held in f["key"] for f in findings if f["tenant"] == "leaving"), findings[:3]
