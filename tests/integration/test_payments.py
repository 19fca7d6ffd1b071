"""Card data never archived (issue 28) through the worker process and a real store.

The outcome table of payments runs in memory (`tests/unit/test_payments_in_memory.py`); here stay a
clean payment call archived and proven, one exposed and one whose pause is not silent, their uploads
gone, on the real broker and S3. Not in the Apache Kafka lane: nothing here is the broker's part.
"""

from __future__ import annotations

import pytest

from callvault.embedded.processes import ChildProcess
from callvault.settings import Settings
from callvault.simulation.audio import make_wav
from callvault.storage.layout import recording_key
from callvault.testing import read_archived
from tests.integration.helpers import Bus

pytestmark = pytest.mark.integration


def _rec_key(call) -> str:  # noqa: ANN001
    return recording_key(call.tenant, call.call_id, call.recording_start, "wav")


async def test_payment_calls_are_secured_or_rejected_with_their_source_gone(
    settings: Settings, worker: ChildProcess
) -> None:
    """Card data (issue 28) through the worker process and a real store: a payment inside a silent pause
    is archived and proven; one the pause starts too late for, or whose paused audio is speech, is
    rejected, its upload deleted at once and nothing archived."""
    async with Bus(settings) as bus:
        clean = bus.script(audio=make_wav(281, 30.0, [(0.0, 25.0)]))
        late = bus.script(audio=make_wav(282, 30.0, [(3.0, 25.0)]))
        loud = bus.script(audio=make_wav(283, 30.0))
        for call, pause_s in ((clean, -5.0), (late, 3.0), (loud, -5.0)):
            events = [call.started(), call.disclosure(), *call.paused_payment(pause_s=pause_s), call.stored()]
            await bus.send_call(call, *events, call.ended())
        await bus.wait_types(clean.call_id, "recording.archived", "payment.secured", "metadata.archived")
        (secured,) = bus.events_of(clean.call_id, "payment.secured")
        assert secured["audio_checked"] and secured["loudest_paused_dbfs"] < settings.pause_silence_dbfs
        body = read_archived(bus.s3, settings, settings.recordings_bucket, _rec_key(clean))
        assert body == clean.audio
        for call, reason in ((late, "card_data_exposed"), (loud, "pause_not_silent")):
            await bus.wait_types(call.call_id, "recording.rejected", "metadata.archived")
            (rejected,) = bus.events_of(call.call_id, "recording.rejected")
            assert rejected["reason"] == reason and rejected["source_deleted"], rejected
            left = bus.s3.list_object_versions(Bucket=settings.staging_bucket, Prefix=call.staging_key)
            assert not left.get("Versions"), "the upload is gone at once, every version"
            assert not bus.exists(settings.recordings_bucket, _rec_key(call))
            assert bus.events_of(call.call_id, "payment.secured") == []
