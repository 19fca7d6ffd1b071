"""The intake's one hop (the default) and its two hops (the hop turned off), through a real worker.

With one hop, the intake processes a call event itself when its worker holds the call's
`internal.calls` partition, as a lone worker holds them all: the event never goes round through
`calls`. Turned off, every event takes that second hop. The rest of the suite runs the default, so
the other path is proven here (`CALLVAULT_INTAKE_ONE_HOP=false make test` runs the whole suite
with it).
"""

from __future__ import annotations

import pytest

from callvault.embedded.processes import ChildProcess
from callvault.settings import Settings
from tests.conftest import stack_fixtures
from tests.integration.helpers import Bus, sent_round

pytestmark = pytest.mark.integration

one_hop_settings, one_hop_worker, _one_hop_url = stack_fixtures("one_hop", "h1", intake_one_hop=True)
two_hops_settings, two_hops_worker, _two_hops_url = stack_fixtures("two_hops", "h2", intake_one_hop=False)


async def archived_call(settings: Settings) -> str:
    async with Bus(settings) as bus:
        call = bus.script()
        await bus.send_call(call)
        await bus.wait_types(call.call_id, "disclosure.verified", "recording.archived", "metadata.archived")
        await bus.caught_up()
    return call.call_id


async def test_with_one_hop_a_lone_worker_sends_no_event_round(
    one_hop_settings: Settings, one_hop_worker: ChildProcess
) -> None:
    call_id = await archived_call(one_hop_settings)
    kinds = await sent_round(one_hop_settings, call_id)
    assert "fact" not in kinds, kinds  # only wake-ups, if a deadline came before the call was done


async def test_with_two_hops_every_event_goes_round(
    two_hops_settings: Settings, two_hops_worker: ChildProcess
) -> None:
    call_id = await archived_call(two_hops_settings)
    kinds = await sent_round(two_hops_settings, call_id)
    assert kinds.count("fact") == 4, kinds  # call.started, the disclosure, recording.stored, call.ended
