"""The intake's one hop (`CALLVAULT_INTAKE_ONE_HOP=true`, off by default), through a real worker.

With it on, the intake processes a call event itself when its worker holds the call's
`internal.calls` partition, as a lone worker holds them all: the event never goes round through
`calls`. By default every event takes that second hop; the rest of the suite runs the default, so
the other path is proven here (`CALLVAULT_INTAKE_ONE_HOP=true make test` runs the whole suite
with it on).
"""

from __future__ import annotations

import pytest

from callvault.embedded.processes import ChildProcess
from callvault.settings import Settings
from tests.conftest import stack_fixtures
from tests.integration.helpers import Bus, sent_round

pytestmark = pytest.mark.integration

one_hop_settings, one_hop_worker, _one_hop_url = stack_fixtures("one_hop", "h1", intake_one_hop=True)


async def test_with_one_hop_a_lone_worker_sends_no_event_round(
    one_hop_settings: Settings, one_hop_worker: ChildProcess
) -> None:
    async with Bus(one_hop_settings) as bus:
        call = bus.script()
        await bus.send_call(call)
        await bus.wait_types(call.call_id, "disclosure.verified", "recording.archived", "metadata.archived")
        await bus.caught_up()
    kinds = await sent_round(one_hop_settings, call.call_id)
    assert "fact" not in kinds, kinds  # only wake-ups, if a deadline came before the call was done
