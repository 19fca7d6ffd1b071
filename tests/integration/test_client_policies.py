"""Client policies on the real stack: `callvault policy`, the worker dating archives, the purger.

Tenant `short` keeps recordings 8 seconds (the bounds are lowered for the
test: in production a term is at least a day), `week` keeps them 7 days and
`beta` has no policy: the privacy statement's month applies.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from callvault.embedded.processes import ChildProcess
from callvault.settings import Settings
from callvault.storage.client import make_s3_client
from callvault.storage.policies import load_book
from callvault.stream.purger import standalone_pass
from tests.cli import run_callvault
from tests.conftest import settings_env, stack_fixtures
from tests.integration.helpers import Bus
from tests.integration.ops_probe import scrape, value, worker_ops

pytestmark = pytest.mark.integration


policy_settings, policy_worker, _ = stack_fixtures(
    "policy", "q", policy_shortest_term="PT1S", purge_interval_s=1.0, purge_rescan_s=1.0
)


def policy(settings: Settings, *args: str) -> str:
    done = run_callvault("policy", *args, env=settings_env(settings))
    assert done.returncode == 0, done.stderr
    return done.stdout


async def known(proc: ChildProcess) -> float:
    """The client-policy versions the worker applies; 0 before it answers (it has read none)."""
    try:
        samples = await asyncio.to_thread(scrape, worker_ops(proc))
    except httpx.TransportError:
        return 0.0
    return value(samples, "callvault_policy_versions_known")


async def worker_knows(proc: ChildProcess, settings: Settings, timeout: float = 30) -> None:
    """The positive signal that the worker applies every stored policy version: it reports them read.

    The count comes from the store, not from the metric before a change: a refresh between the two
    would otherwise satisfy the wait with the change still unread.
    """
    stored = await asyncio.to_thread(
        lambda: sum(len(h) for h in load_book(make_s3_client(settings), settings.metadata_bucket).values())
    )
    deadline = time.monotonic() + timeout
    while await known(proc) < stored:
        assert time.monotonic() < deadline, f"the worker did not read {stored} policy versions in {timeout}s"
        await asyncio.sleep(0.2)


async def test_each_tenant_is_dated_by_its_policy_and_the_short_term_is_purged_with_proof(
    policy_settings: Settings, policy_worker: ChildProcess
) -> None:
    said = await asyncio.to_thread(policy, policy_settings, "set", "short", "--recording", "PT8S",
                                   "--reason", "contract 4.2: eight seconds")  # fmt: skip
    assert "policy of short is now version 1" in said
    await asyncio.to_thread(
        policy, policy_settings, "set", "week", "--recording", "P7D", "--reason", "7 days"
    )
    await worker_knows(policy_worker, policy_settings)
    shown = await asyncio.to_thread(policy, policy_settings, "show", "short")
    assert "version 1" in shown and "PT8S" in shown and "P6M" in shown, shown
    history = await asyncio.to_thread(policy, policy_settings, "history", "short")
    assert "contract 4.2: eight seconds" in history
    listed = await asyncio.to_thread(policy, policy_settings, "list")
    assert "short" in listed and "week" in listed and "beta" not in listed

    async with Bus(policy_settings) as bus:
        await bus.lifecycle.wait_for(
            lambda w: (
                {r.get("tenant") for r in w.records if r.get("type") == "policy.changed"} >= {"short", "week"}
            ),
            30,
            "policy.changed of both",
        )
        calls = {
            t: bus.script(tenant=t, start=datetime.now(UTC) - timedelta(seconds=6))
            for t in ("short", "week", "beta")
        }
        for call in calls.values():
            await bus.send_call(call)
        for call in calls.values():
            await bus.wait_types(call.call_id, "recording.archived", timeout=60)
        versions = {
            t: bus.events_of(c.call_id, "recording.archived")[0].get("policy_version")
            for t, c in calls.items()
        }
        assert versions == {"short": 1, "week": 1, "beta": None}

        now = datetime.now(UTC)
        due = {}
        for label, after in (
            ("6 days", timedelta(days=6)),
            ("8 days", timedelta(days=8)),
            ("32 days", timedelta(days=32)),
        ):
            report = await standalone_pass(policy_settings, dry_run=True, as_of=now + after)
            due[label] = {o.tenant for o in report.deleted if o.retention_class.value == "recording"} & set(
                calls
            )
        assert due == {"6 days": {"short"}, "8 days": {"short", "week"}, "32 days": {"short", "week", "beta"}}

        short = calls["short"]
        await bus.wait_types(short.call_id, "recording.deleted", timeout=60)
        (proof,) = bus.events_of(short.call_id, "recording.deleted")
        assert proof["policy_version"] == 1 and proof["reason"] == "retention_elapsed"
        assert not bus.events_of(calls["week"].call_id, "recording.deleted")


async def test_a_shortening_change_makes_archived_recordings_due_and_a_ban_rejects_recordings(
    policy_settings: Settings, policy_worker: ChildProcess
) -> None:
    async with Bus(policy_settings) as bus:
        early = bus.script(tenant="later", start=datetime.now(UTC) - timedelta(seconds=6))
        await bus.send_call(early)
        await bus.wait_types(early.call_id, "recording.archived", timeout=60)
        assert bus.events_of(early.call_id, "recording.archived")[0].get("policy_version") is None

        await asyncio.to_thread(policy, policy_settings, "set", "later", "--recording", "PT5S",
                                "--reason", "the client shortened its term")  # fmt: skip
        await bus.wait_types(early.call_id, "recording.deleted", timeout=60)
        (proof,) = bus.events_of(early.call_id, "recording.deleted")
        assert proof["policy_version"] == 1
        await asyncio.to_thread(policy, policy_settings, "set", "banned", "--no-recording",
                                "--reason", "no recording under this contract")  # fmt: skip
        await worker_knows(policy_worker, policy_settings)
        call = bus.script(tenant="banned")
        await bus.send_call(call)
        await bus.wait_types(call.call_id, "recording.rejected", "metadata.archived", timeout=60)
        (rejected,) = bus.events_of(call.call_id, "recording.rejected")
        assert rejected["reason"] == "recording_not_allowed" and rejected["source_deleted"] is True
        assert not bus.events_of(call.call_id, "recording.archived")


def test_a_policy_change_that_cannot_be_made_is_one_sentence(policy_settings: Settings) -> None:
    done = run_callvault("policy", "set", "acme", "--recording", "a week", "--reason", "r",
                         env=settings_env(policy_settings))  # fmt: skip
    assert done.returncode == 2
    assert (
        "the policy of 'acme' was not changed: the recording term 'a week' is not an ISO 8601 duration"
        in (done.stderr)
    ), done.stderr
    assert "Traceback" not in done.stderr
