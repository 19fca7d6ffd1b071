"""10,000 generated events, good and bad mixed, through the worker's processor in memory.

The same mix as the real-stack run (tests/integration/test_hostile_stream.py,
3,000 events there): every bad event is a dead letter with a sentence for a
person, every good call gets its contract outcome, and no phone number, in any
spelling, is in a lifecycle event, a dead letter or the call state the worker
keeps (what the real stack writes to `lifecycle`, `deadletter` and the
changelog).
"""

from __future__ import annotations

import base64
import json
import random
import re

from callvault.testing import Harness
from tests.hostile_events import OUTCOME_OF, Numbers, good_call, interleaved, markers

TOTAL_EVENTS = 10_000
GOOD_CALLS = 250  # four events each; the rest (9,000) are bad, of every kind


async def test_ten_thousand_events_good_and_bad() -> None:
    rng = random.Random(13)
    numbers = Numbers()
    async with Harness() as h:
        other = "someone-elses-bucket"
        h.s3.create_bucket(
            Bucket=other, CreateBucketConfiguration={"LocationConstraint": h.settings.s3_region}
        )
        calls = [good_call(rng, numbers, h.clock.now(), h.settings.staging_bucket) for _ in range(GOOD_CALLS)]
        for call, scenario, _ in calls:
            if scenario != "retention_elapsed":
                h.upload(call.staging_key, call.audio)
        sent, bad = interleaved(rng, numbers, calls, TOTAL_EVENTS, other)
        await h.send_records((key, value) for value, key in sent)
        await h.advance(minutes=10)  # past every disclosure grace

        lettered: set[str] = set()
        for letter in h.dead_letters:
            raw = b"".join(base64.b64decode(v) for v in (letter.key, letter.value) if v)
            found = markers(raw)
            assert found or not re.search(rb"good-[0-9a-f]{12}", raw), (
                f"a good event was dead-lettered: {letter}"
            )
            assert len(letter.error) > 30 and not re.search(r"Error\b|Traceback", letter.error), letter
            lettered |= found
        assert lettered == bad, f"{len(bad - lettered)} bad events without a dead letter"
        for call, scenario, _ in calls:
            assert OUTCOME_OF[scenario] <= h.types(call.call_id), (call.call_id, scenario)
            if scenario != "archived":
                assert h.lifecycle(call.call_id, "recording.rejected")[0]["reason"] == scenario

        texts = [json.dumps(e) for e in h.events]
        for letter in h.dead_letters:
            texts.append(letter.model_dump_json())
            texts += [base64.b64decode(v).decode("latin-1") for v in (letter.key, letter.value) if v]
        texts += [json.dumps(state, default=str) for state in h.state.values()]
        leaks = [run for text in texts if (run := numbers.found_in(text)) is not None]
        assert not leaks, f"{len(leaks)} phone numbers left call-events, such as {leaks[:3]}"
        assert len(texts) > TOTAL_EVENTS // 2  # the scan saw the letters, the events and the state
