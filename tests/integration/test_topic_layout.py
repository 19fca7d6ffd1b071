"""A topic callvault finds things in by the partition count, made with another count: refused at start.

A call's state is placed, and looked for, by `CALLVAULT_PARTITIONS` (`stream.messages.state_partition`),
and the audit checkpoint covers that many partitions of `lifecycle`. A `calls` topic made by hand
with two partitions under a setting of four would make the worker look for calls where they are not.
"""

from __future__ import annotations

import secrets

import pytest

from callvault.stream.bus import TopicsMisplaced, ensure_callvault_topics, ensure_topics
from tests.cli import run_callvault
from tests.conftest import make_settings, settings_env
from tests.stack import Servers

pytestmark = pytest.mark.integration


async def test_a_placed_topic_with_another_partition_count_is_refused_with_a_sentence(
    servers: Servers,
) -> None:
    settings = make_settings(servers, "l" + secrets.token_hex(3))
    assert settings.partitions != 2
    await ensure_topics(servers.kafka_bootstrap, [settings.calls_topic], 2)  # made by hand, before callvault

    with pytest.raises(TopicsMisplaced) as refused:
        await ensure_callvault_topics(settings)
    assert f"{settings.calls_topic} has 2 partitions, not {settings.partitions}" in str(refused.value)

    worker = run_callvault("worker", env=settings_env(settings), timeout=120)
    assert worker.returncode == 2, worker.stderr[-2000:]
    assert "refusing to run" in worker.stderr and settings.calls_topic in worker.stderr
    assert "Traceback" not in worker.stderr, worker.stderr


async def test_call_events_may_have_another_partition_count(servers: Servers) -> None:
    """Events off their call's partition are passed on through `calls`: nothing to refuse."""
    settings = make_settings(servers, "l" + secrets.token_hex(3))
    await ensure_topics(servers.kafka_bootstrap, [settings.call_events_topic], settings.partitions + 2)
    created = await ensure_callvault_topics(settings)
    assert settings.calls_topic in created and settings.call_events_topic not in created
