"""Every topic callvault and faust create gets CALLVAULT_REPLICATION_FACTOR replicas (issue 19, item 2).

Before, `callvault worker` created its topics with a hard-coded replication of 1,
and faust its changelog and leader topics with its own default (1): a real
cluster would have run with single copies. The embedded broker keeps what it
is asked for in its metadata, so the test reads it back.
"""

from __future__ import annotations

import secrets

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from callvault.settings import Settings
from tests.conftest import make_settings, prepare_async, spawn_worker
from tests.integration.ops_probe import wait_ok, worker_ops
from tests.stack import Servers

pytestmark = pytest.mark.integration


async def _replicas(settings: Settings, prefixes: tuple[str, ...]) -> dict[str, set[int]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefixes)]
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    return {d["topic"]: {len(p["replicas"]) for p in d["partitions"]} for d in described}


async def test_every_topic_callvault_and_faust_create_has_the_replicas_asked_for(servers: Servers) -> None:
    if not servers.kind.startswith("embedded (Tansu"):
        pytest.skip("a broker of fewer than 3 nodes refuses 3 replicas; Tansu records them")
    settings = make_settings(servers, "r" + secrets.token_hex(3), replication_factor=3)
    await prepare_async(settings)
    worker = spawn_worker(settings, "worker-replication")
    try:
        await wait_ok(f"{worker_ops(worker)}/readyz", 90)  # faust has declared its own topics by then
        found = await _replicas(settings, (settings.topic_prefix, settings.app_id))
    finally:
        worker.stop()
    assert f"{settings.app_id}-call-state-changelog" in found, sorted(found)
    assert f"{settings.app_id}-__assignor-__leader" in found, sorted(found)
    assert set(settings.all_topics()) <= set(found)
    assert {topic: {3} for topic in found} == found
