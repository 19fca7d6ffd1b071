"""10,000 generated events, good and bad mixed, into the running worker on the real broker and store.

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
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from callvault.embedded.processes import ChildProcess
from callvault.settings import Settings
from callvault.stream.bus import read_topic
from tests.integration.helpers import Bus, CallScript, new_call_id

pytestmark = pytest.mark.integration

TOTAL_EVENTS = 10_000
GOOD_CALLS = 750  # four events each; the rest of the 10,000 are bad
OUTCOME_OF = {  # scenario -> the lifecycle types that say the contract's outcome came
    "archived": {"recording.archived", "metadata.archived"},
    "disclosure_missing": {"disclosure.missing", "recording.rejected", "metadata.archived"},
    "retention_elapsed": {"recording.rejected", "metadata.archived"},
}


class Numbers:
    """Fresh phone numbers, and a check for any of them in any spelling."""

    def __init__(self) -> None:
        self._next = random.randrange(10**6)
        self.tails: set[str] = set()  # the last nine digits: what identifies a number in every form

    def new(self) -> str:
        self._next += 1
        number = f"+32479{self._next % 10**6:06d}"
        self.tails.add(number[-9:])
        return number

    _RUN = re.compile(r"(?:\+|\\u002[bB])?[\d(][\d \-./()]{6,}\d")

    def found_in(self, text: str) -> str | None:
        for run in self._RUN.findall(text):
            digits = re.sub(r"\D", "", run)
            for start in range(len(digits) - 8):
                if digits[start : start + 9] in self.tails:
                    return run
        return None


def _spellings(number: str) -> list[str]:
    national = "0" + number[3:]
    return [
        number,
        number[1:],
        f"{number[:3]}-{number[3:6]}-{number[6:8]}-{number[8:10]}-{number[10:]}",
        f"{number[:3]}.{number[3:6]}.{number[6:]}",
        f"{national[:4]}/{national[4:6]}.{national[6:8]}.{national[8:]}",
        f"{number[:3]} (0){number[3:6]} {number[6:]}",
    ]


MARKER = re.compile(r"bad-\d{6}x")


def _bad_event(
    rng: random.Random, numbers: Numbers, good: CallScript, other_bucket: str, seq: int
) -> tuple[bytes | None, bytes]:
    """One event the contract refuses, of a kind picked at random; most carry a number somewhere.

    Each carries its marker `bad-NNNNNNx` (too few digits to look like a number) in
    its key or value, so its dead letter can be told apart.
    """
    number = numbers.new()
    spelled = rng.choice(_spellings(number))
    call_id = f"bad-{seq:06d}x"
    base = {**CallScript(call_id=call_id, caller=number).started()}
    kind = rng.randrange(14)
    if kind == 0:
        return b"{not json " + spelled.encode() + b" " + call_id.encode(), call_id.encode()
    if kind == 1:
        deep = b'{"m":"' + call_id.encode() + b'","a":' + b'{"a":' * 999 + b"1" + b"}" * 1000
        return deep, call_id.encode()
    if kind == 2:
        return json.dumps(base).replace('"agent-7"', "9" * 5000).encode(), call_id.encode()
    if kind == 3:
        return json.dumps(base).replace('"agent-7"', "NaN").encode(), call_id.encode()
    if kind == 4:
        text = json.dumps(base)
        return (text[:-1] + f', "caller": "{spelled}"}}').encode(), call_id.encode()  # the key twice
    if kind == 5:
        return json.dumps({**base, "call_id": call_id + "\n"}).encode(), call_id.encode()
    if kind == 6:
        return json.dumps(
            {**base, "caller": spelled if spelled != number else number + "\n"}
        ).encode(), call_id.encode()
    if kind == 7:
        stored = {
            **good.stored(),
            "call_id": call_id,
            "source_uri": f"s3://{other_bucket}/payroll/{number}.xlsx",
        }
        return json.dumps(stored).encode(), call_id.encode()
    if kind == 8:
        return json.dumps(base).encode(), spelled.encode()  # keyed by the number
    if kind == 9:
        return json.dumps({**base, "occurred_at": "9999-12-31T23:30:00-01:00"}).encode(), call_id.encode()
    if kind == 10:
        return json.dumps({**base, "agent_id": f"a\n{spelled}"}).encode(), call_id.encode()
    if kind == 11:
        return json.dumps({**base, "type": spelled}).encode(), call_id.encode()
    if kind == 12:
        return json.dumps({**base, "language": "\ud800", "note": spelled}).encode(), call_id.encode()
    # Not a bare digit string: "32479..." is a well-formed tenant, and would rightly be taken.
    return json.dumps({**base, "tenant": f"{spelled}+"}).encode(), call_id.encode()


def _good_call(
    rng: random.Random, numbers: Numbers, bus: Bus
) -> tuple[CallScript, str, list[dict[str, Any]]]:
    scenario = rng.choices(list(OUTCOME_OF), weights=[70, 15, 15])[0]
    start = datetime.now(UTC) - (
        timedelta(days=45) if scenario == "retention_elapsed" else timedelta(minutes=2)
    )
    call = bus.script(
        call_id=new_call_id("good"), caller=numbers.new(), start=start, audio=b"RIFF" + uuid.uuid4().bytes
    )
    events = [call.started(), call.stored(), call.ended()]
    interrupted = scenario == "disclosure_missing"
    events.insert(1, call.disclosure(completed=not interrupted))
    return call, scenario, events


async def _all_records(settings: Settings, topic: str) -> list[bytes]:
    found = []
    async for key, value in read_topic(settings.kafka_bootstrap, topic, idle_s=1.5, max_s=120):
        found.append((key or b"") + b"\n" + (value or b""))
    return found


@pytest.mark.timeout(900)
async def test_ten_thousand_events_good_and_bad(settings: Settings, worker: ChildProcess) -> None:
    rng = random.Random(13)
    numbers = Numbers()
    async with Bus(settings) as bus:
        other = settings.staging_bucket.replace("-staging", "-elsewhere")
        await bus.create_bucket(other)
        calls = [_good_call(rng, numbers, bus) for _ in range(GOOD_CALLS)]
        uploads = [call for call, scenario, _ in calls if scenario != "retention_elapsed"]

        def upload(call: CallScript) -> None:
            bus.s3.put_object(Bucket=settings.staging_bucket, Key=call.staging_key, Body=call.audio)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(upload, uploads))

        # Interleave: each call's events stay in their order, bad ones fall in between.
        streams: list[list[tuple[bytes | None, bytes, bool]]] = [
            [(json.dumps(e).encode(), c.call_id.encode(), False) for e in events] for c, _, events in calls
        ]
        bad_count = TOTAL_EVENTS - sum(len(s) for s in streams)
        streams += [[(*_bad_event(rng, numbers, calls[0][0], other, i), True)] for i in range(bad_count)]
        order = [i for i, s in enumerate(streams) for _ in s]
        rng.shuffle(order)
        cursor = [0] * len(streams)
        pending: list[asyncio.Future[Any]] = []
        for i in order:
            value, key, _ = streams[i][cursor[i]]
            cursor[i] += 1
            pending.append(await bus.producer.send(settings.call_events_topic, value, key=key))
        await asyncio.gather(*pending)
        # Tansu's offsets in a batch's answer are not every record's own: letters are matched by marker.
        bad = {f"bad-{i:06d}x" for i in range(bad_count)}

        def marked(letter: dict[str, Any]) -> set[str]:
            raw = b"".join(base64.b64decode(letter.get(f) or "") for f in ("key", "value"))
            return set(MARKER.findall(raw.decode("latin-1")))

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
