"""Events the contract refuses, of every kind, mixed among good calls: what the hostile-input tests send.

Shared by the real-stack run (`tests/integration/test_hostile_stream.py`) and
the in-memory one (`tests/unit/test_hostile_stream_in_memory.py`), so both send
the same kinds of event and check for phone numbers the same way.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from datetime import datetime, timedelta
from typing import Any

from tests.integration.helpers import CallScript, new_call_id

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
    # Identifiers callvault writes by the thousand (event ids, hashes, pseudonyms): a run of
    # digits across a UUID's hyphen is not a number someone spelled, and is left out.
    _IDS = re.compile(
        r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-f]{32,}"
    )

    def found_in(self, text: str) -> str | None:
        for run in self._RUN.findall(self._IDS.sub(" ", text)):
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


def bad_event(
    rng: random.Random, numbers: Numbers, good: CallScript, other_bucket: str, seq: int
) -> tuple[bytes, bytes | None]:
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


def good_call(
    rng: random.Random, numbers: Numbers, now: datetime, staging_bucket: str
) -> tuple[CallScript, str, list[dict[str, Any]]]:
    """A call that must get its contract outcome, of a scenario picked at random."""
    scenario = rng.choices(list(OUTCOME_OF), weights=[70, 15, 15])[0]
    start = now - (timedelta(days=45) if scenario == "retention_elapsed" else timedelta(minutes=2))
    call = CallScript(
        call_id=new_call_id("good"), caller=numbers.new(), start=start,
        audio=b"RIFF" + uuid.uuid4().bytes, staging_bucket=staging_bucket,
    )  # fmt: skip
    events = [call.started(), call.stored(), call.ended()]
    interrupted = scenario == "disclosure_missing"
    events.insert(1, call.disclosure(completed=not interrupted))
    return call, scenario, events


def interleaved(
    rng: random.Random,
    numbers: Numbers,
    calls: list[tuple[CallScript, str, list[dict[str, Any]]]],
    total: int,
    other_bucket: str,
) -> tuple[list[tuple[bytes, bytes | None]], set[str]]:
    """(value, key) of every event in a random order that keeps each call's own; the bad markers.

    Bad events fill the total up to `total`, falling in between the good ones.
    """
    streams: list[list[tuple[bytes, bytes | None]]] = [
        [(json.dumps(e).encode(), c.call_id.encode()) for e in events] for c, _, events in calls
    ]
    bad_count = total - sum(len(s) for s in streams)
    streams += [[bad_event(rng, numbers, calls[0][0], other_bucket, i)] for i in range(bad_count)]
    order = [i for i, s in enumerate(streams) for _ in s]
    rng.shuffle(order)
    cursor = [0] * len(streams)
    sent = []
    for i in order:
        sent.append(streams[i][cursor[i]])
        cursor[i] += 1
    return sent, {f"bad-{i:06d}x" for i in range(bad_count)}


def markers(raw: bytes) -> set[str]:
    """The bad events' markers in a dead letter's key and value."""
    return set(MARKER.findall(raw.decode("latin-1")))
