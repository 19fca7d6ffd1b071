"""A call's events read in one batch: the same outcome as one at a time, its state written once.

The worker reads `call-events` in batches. Until 2026-12-07 it wrote a call's state to its changelogged
table after every event; a payment call's eight events read together cost eight changelog records
and eight parses of a state that grows with each. `CallProcessor.handle_batch` folds them in order and
writes once, after the last, as Kafka Streams' record cache does.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from callvault.rules.call_state import CallState, Outcome
from callvault.simulation.audio import make_wav
from callvault.testing import Harness
from tests.integration.helpers import CallScript


class CountedStore(dict[bytes, Any]):
    """The call-state table, counting its writes as the changelog records they would be."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.writes: list[bytes] = []

    def __setitem__(self, key: bytes, value: Any) -> None:
        self.writes.append(key)
        super().__setitem__(key, value)


@pytest.fixture
async def h() -> Any:
    async with Harness() as harness:
        harness.processor.store = CountedStore(harness.processor.store)
        yield harness


def payment_call(h: Harness) -> CallScript:
    """A call whose recording pauses around a payment, its audio silent in the pause."""
    call = CallScript(
        call_id=f"c-batch-{uuid.uuid4().hex[:8]}",
        start=h.clock.now(),
        audio=make_wav(7, 30.0, ((0, 26),)),
    )
    h.upload(call.staging_key, call.audio)
    return call


def events(call: CallScript) -> list[dict[str, Any]]:
    return [call.started(), *call.paused_payment(), call.disclosure(), call.stored(), call.ended()]


def writes(h: Harness) -> list[bytes]:
    return h.processor.store.writes  # type: ignore[attr-defined, no-any-return]


def state(h: Harness, call: CallScript) -> CallState:
    found = h.processor.load(f"{call.tenant}/{call.call_id}".encode())
    assert found is not None
    return found


async def test_a_calls_events_in_one_batch_are_decided_as_one_at_a_time_with_one_write(h: Harness) -> None:
    apart, together = payment_call(h), payment_call(h)

    await h.send(*events(apart))
    await h.send(*events(together), together=True)

    assert {"recording.archived", "payment.secured", "metadata.archived"} <= h.types(apart.call_id)
    assert h.types(together.call_id) == h.types(apart.call_id)
    for call in (apart, together):
        assert state(h, call).recording_outcome is Outcome.ARCHIVED and state(h, call).payment_proven
        assert len(state(h, call).seen_event_ids) == 8
    assert writes(h).count(f"{apart.tenant}/{apart.call_id}".encode()) == 8, "one write an event, apart"
    assert writes(h).count(f"{together.tenant}/{together.call_id}".encode()) == 1, "one for the batch"


async def test_a_message_that_fails_leaves_the_state_the_others_made(h: Harness) -> None:
    call = payment_call(h)
    sent = events(call)
    failing_id = sent[2]["event_id"]  # payment.started
    advance = h.processor._advance

    async def advance_failing_on_it(state: CallState, *args: Any) -> CallState:
        if failing_id in state.seen_event_ids[-1:]:
            raise RuntimeError("the store went away")
        return await advance(state, *args)

    h.processor._advance = advance_failing_on_it  # type: ignore[method-assign]

    with pytest.raises(RuntimeError, match="the store went away"):
        await h.send(*sent, together=True)

    kept = state(h, call)
    assert failing_id not in kept.seen_event_ids, "the failed event is not in the state (its dead letter is)"
    assert [e["event_id"] for e in sent if e["event_id"] != failing_id] == list(kept.seen_event_ids)
    assert writes(h).count(f"{call.tenant}/{call.call_id}".encode()) == 1


async def test_a_state_an_older_version_kept_under_the_bare_call_id_is_moved_even_if_the_message_fails(
    h: Harness,
) -> None:
    """Versions before 2026-12-06 kept a call under its bare call id. The first message that finds it
    moves it under `{tenant}/{call_id}`; until 2026-12-07 a failure of that message lost the state."""
    call = payment_call(h)
    await h.send(call.started())
    key = f"{call.tenant}/{call.call_id}".encode()
    h.processor.store[call.call_id.encode()] = h.processor.store.pop(key)  # as an older version left it
    disclosure = call.disclosure()
    advance = h.processor._advance

    async def advance_failing(state: CallState, *args: Any) -> CallState:
        if state.seen_event_ids[-1] == disclosure["event_id"]:
            raise RuntimeError("the store went away")
        return await advance(state, *args)

    h.processor._advance = advance_failing  # type: ignore[method-assign]

    with pytest.raises(RuntimeError, match="the store went away"):
        await h.send(disclosure)

    assert call.call_id.encode() not in h.processor.store
    assert state(h, call).started is not None, "the state `call.started` made, under its new key"
