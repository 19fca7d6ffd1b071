"""3,000 generated events, good and bad mixed, into the running worker on the real broker and store.

What must hold: the worker does not crash; every bad event is a dead letter with a
sentence; every good call gets its contract outcome; and no phone number, in any
form, reaches any topic but `call-events`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from callvault.embedded.processes import ChildProcess
from callvault.settings import Settings
from callvault.stream.bus import read_topic
from tests.faults.traffic import volume
from tests.hostile_events import OUTCOME_OF, Numbers, good_call, interleaved, markers
from tests.integration.helpers import Bus, CallScript

pytestmark = pytest.mark.integration

# The wiring's share: the worker's partitions keep moving and nothing leaks to a topic.
# The 10,000-event run of the same mix goes through the same processor in memory
# (tests/unit/test_hostile_stream_in_memory.py).
TOTAL_EVENTS = volume(1_000, 500)
GOOD_CALLS = volume(100, 50)  # four events each; the rest are bad, of every kind


async def _all_records(settings: Settings, topic: str) -> list[bytes]:
    found = []
    async for key, value in read_topic(settings.kafka_bootstrap, topic, idle_s=1.5, max_s=120):
        found.append((key or b"") + b"\n" + (value or b""))
    return found


@pytest.mark.timeout(900)
async def test_thousands_of_events_good_and_bad(settings: Settings, worker: ChildProcess) -> None:
    rng = random.Random(13)
    numbers = Numbers()
    async with Bus(settings) as bus:
        other = settings.staging_bucket.replace("-staging", "-elsewhere")
        await bus.create_bucket(other)
        now = datetime.now(UTC)
        calls = [good_call(rng, numbers, now, settings.staging_bucket) for _ in range(GOOD_CALLS)]
        uploads = [call for call, scenario, _ in calls if scenario != "retention_elapsed"]

        def upload(call: CallScript) -> None:
            bus.s3.put_object(Bucket=settings.staging_bucket, Key=call.staging_key, Body=call.audio)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(upload, uploads))

        sent, bad = interleaved(rng, numbers, calls, TOTAL_EVENTS, other)
        pending = [await bus.producer.send(settings.call_events_topic, value, key=key) for value, key in sent]
        await asyncio.gather(*pending)

        # Tansu's offsets in a batch's answer are not every record's own: letters are matched by marker.
        def marked(letter: dict[str, Any]) -> set[str]:
            return markers(b"".join(base64.b64decode(letter.get(f) or "") for f in ("key", "value")))

        def lettered(w: Any) -> set[str]:
            return set().union(*(marked(r) for r in w.records)) if w.records else set()

        await bus.dead.wait_for(lambda w: bad <= lettered(w), 300, "a dead letter for every bad event")

        def decided(w: Any) -> bool:
            return all(OUTCOME_OF[scenario] <= set(w.types_for(c.call_id)) for c, scenario, _ in calls)

        try:
            await bus.lifecycle.wait_for(decided, 300, "every good call's outcome")
        except TimeoutError:
            waiting = [
                c.call_id
                for c, sc, _ in calls
                if not OUTCOME_OF[sc] <= set(bus.lifecycle.types_for(c.call_id))
            ]
            raise AssertionError(f"{len(waiting)} good calls undecided, such as {waiting[:3]}") from None

        goods = {c.call_id for c, _, _ in calls}
        for letter in bus.dead.records:
            raw = b"".join(base64.b64decode(letter.get(f) or "") for f in ("key", "value")).decode("latin-1")
            assert not set(re.findall(r"good-[0-9a-f]{12}", raw)) & goods, (
                f"a good event was dead-lettered: {letter}"
            )
            if marked(letter) & bad:  # a sentence for a person, not an exception's name
                error = letter["error"]
                assert len(error) > 30 and not re.search(r"Error\b|Traceback", error), letter
        for call, scenario, _ in calls:
            if scenario != "archived":
                reason = bus.events_of(call.call_id, "recording.rejected")[0]["reason"]
                assert reason == scenario

    assert worker.alive()
    leaks: list[str] = []
    topics = [
        settings.lifecycle_topic,
        settings.deadletter_topic,
        settings.commands_topic,
        settings.calls_topic,
        f"{settings.app_id}-call-state-changelog",
    ]
    for topic in topics:
        for blob in await _all_records(settings, topic):
            texts = [blob.decode("utf-8", "replace")]
            if topic == settings.deadletter_topic:
                letter = json.loads(blob.split(b"\n", 1)[1])
                texts += [
                    base64.b64decode(letter[f]).decode("latin-1") for f in ("key", "value") if letter.get(f)
                ]
            for text in texts:
                if (run := numbers.found_in(text)) is not None:
                    leaks.append(f"{topic}: {run!r} in {text[:200]!r}")
    assert not leaks, f"{len(leaks)} phone numbers left call-events, such as {leaks[:3]}"
