"""The agents never raise: what faust would do with an exception is worse than a dead letter.

faust runs each agent under a supervisor (`Agent._execute_actor`): an exception
marks the actor crashed and a fresh one is started, and the message it was on
counts as read, so it is never seen again. Before issue 13 a call event nested
1,000 deep vanished that way, with no dead letter and no outcome. Here the
intake, fed a message whose handling raises something nobody foresaw, turns it
into a dead letter instead.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from callvault.clock import FixedClock
from callvault.settings import Settings
from callvault.stream.app import Worker
from callvault.stream.messages import calls_partition


@dataclass
class _Message:
    topic: str
    partition: int = 0
    offset: int = 41
    key: bytes | None = b"+32470123456"
    value: bytes | None = b'{"caller": "+32470123456"}'
    timestamp: float = 1796590800.0  # when the record reached Kafka (2026-12-06 21:00 UTC)


@dataclass
class _Event:
    message: _Message


@pytest.fixture
def app_worker() -> Worker:
    # Nothing connects until the app starts: the broker and store need not exist.
    return Worker(Settings(kafka_bootstrap="127.0.0.1:1", s3_endpoint="http://127.0.0.1:1"))


async def test_an_unforeseen_failure_in_the_intake_is_a_dead_letter(
    app_worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    letters: list[tuple[str, Any]] = []

    async def boom(event: Any, held: frozenset[int]) -> str | None:
        raise KeyError("+32470123456")  # its text quotes the input: it must not reach the sentence

    async def dead_letter(error: str, event: Any) -> None:
        letters.append((error, event))

    monkeypatch.setattr(app_worker, "_take_call_event", boom)
    monkeypatch.setattr(app_worker, "dead_letter", dead_letter)
    event = _Event(_Message(app_worker.settings.call_events_topic))
    assert await app_worker._intake(event, frozenset()) is None  # type: ignore[arg-type]  # noqa: SLF001
    assert letters == [("callvault could not take in this call event (KeyError)", event)]


@pytest.mark.parametrize("holds_it", [True, False])
async def test_the_intake_processes_a_call_whose_partition_it_holds_and_passes_on_the_others(
    app_worker: Worker, monkeypatch: pytest.MonkeyPatch, holds_it: bool
) -> None:
    sent: list[tuple[bytes, bytes]] = []

    async def send(key: bytes, value: bytes) -> None:
        sent.append((key, value))

    monkeypatch.setattr(app_worker.calls, "send", send)
    started = (
        b'{"type":"call.started","event_id":"6f1c1f55-9f1b-4a55-8f0e-7a0d2b1e1c12","call_id":"c-7",'
        b'"tenant":"acme","occurred_at":"2026-12-06T10:00:00+00:00","direction":"inbound",'
        b'"caller":"+32470123456","callee":"+3225550100","agent_id":"a-1","language":"nl"}'
    )
    event = _Event(_Message(app_worker.settings.call_events_topic, partition=3, key=b"c-7", value=started))
    own = calls_partition("c-7", app_worker.settings.partitions)  # wherever the event itself sits
    held = frozenset({own}) if holds_it else frozenset(range(app_worker.settings.partitions)) - {own}
    message = await app_worker._intake(event, held)  # type: ignore[arg-type]  # noqa: SLF001
    if holds_it:
        assert message is not None and message.call_id == "c-7" and not sent
        assert message.published_at is not None and message.published_at.timestamp() == 1796590800.0
    else:
        assert message is None and [key for key, _ in sent] == [b"c-7"]
    for text in [message.model_dump_json() if message else "", *(value.decode() for _, value in sent)]:
        assert "470123456" not in text  # pseudonymized either way


async def test_a_command_whose_handling_raises_is_a_dead_letter(
    app_worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    letters: list[str] = []

    async def boom(command: Any) -> None:
        raise RuntimeError("+32470123456")

    async def dead_letter(error: str, event: Any) -> None:
        letters.append(error)

    async def admitted(raw: bytes, command: Any, partition: int, offset: int) -> Any:
        return command  # signatures are tests/unit/test_signed_commands_in_memory.py's

    async def emit(events: Any) -> None:
        emitted.extend(e.type for e in events)

    emitted: list[str] = []
    monkeypatch.setattr(app_worker.command_gate, "admit", admitted)
    monkeypatch.setattr(app_worker, "emit", emit)  # no broker here: command.accepted goes nowhere
    monkeypatch.setattr(app_worker.command_handler, "handle", boom)
    monkeypatch.setattr(app_worker, "dead_letter", dead_letter)
    hold = b'{"type":"legal_hold.place","event_id":"6f1c1f55-9f1b-4a55-8f0e-7a0d2b1e1c11","call_id":"c-1",'
    hold += b'"requested_by":"dpo","requested_at":"2026-12-01T10:00:00Z","reason":"dispute"}'
    event = _Event(_Message(app_worker.settings.commands_topic, key=b"c-1", value=hold))
    await app_worker._command(event)  # type: ignore[arg-type]  # noqa: SLF001
    assert letters == ["callvault could not carry out this command (RuntimeError)"]
    assert emitted == ["command.accepted"], "proven before it is carried out"


async def test_the_log_of_an_unforeseen_failure_names_no_input(
    app_worker: Worker, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def boom(event: Any, held: frozenset[int]) -> str | None:
        raise ValueError(f"caller {event.message.key.decode()} is odd")  # the input, quoted

    async def dead_letter(error: str, event: Any) -> None:
        pass

    monkeypatch.setattr(app_worker, "_take_call_event", boom)
    monkeypatch.setattr(app_worker, "dead_letter", dead_letter)
    event = _Event(_Message(app_worker.settings.call_events_topic))
    await app_worker._intake(event, frozenset())  # type: ignore[arg-type]  # noqa: SLF001
    assert "ValueError" in caplog.text and "test_agent_guards.py" in caplog.text  # where it happened
    assert "470123456" not in caplog.text


@pytest.mark.parametrize("freeze", [True, False])
async def test_the_worker_process_freezes_its_heap_once_it_has_first_recovered(freeze: bool) -> None:
    worker = Worker(
        Settings(kafka_bootstrap="127.0.0.1:1", s3_endpoint="http://127.0.0.1:1"), freeze_heap=freeze
    )
    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        await worker.app.on_rebalance_complete.send()
        assert (gc.get_freeze_count() > 0) is freeze, "only `callvault worker` freezes, not a test's worker"
        assert worker.not_ready_because() != ["joining the consumer group and recovering call state"]
    finally:
        gc.unfreeze()  # the test session's heap is the collector's again


async def test_a_deadline_wakes_its_call_only_once_the_input_is_read_up_to_it(
    app_worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker behind on `call-events` (a backlog after a restart) must not decide a call whose
    settling event may wait in that backlog: its wake-up waits for the input mark."""
    due = datetime(2026, 12, 6, 21, 0, tzinfo=UTC)
    app_worker.clock = FixedClock(due + timedelta(minutes=10))
    app_worker._wakes_stale = False  # noqa: SLF001 - the table is not read here
    app_worker.processor.wakes = {b"acme/c-7": due}
    sent: list[bytes] = []

    async def send(key: bytes, value: bytes) -> None:
        sent.append(key)

    monkeypatch.setattr(app_worker.calls, "send", send)
    marks = iter([None, due - timedelta(seconds=1), due])
    monkeypatch.setattr(app_worker, "_input_mark", lambda now: next(marks))
    await app_worker._wake_due()  # noqa: SLF001 - joining: nothing known to be read
    await app_worker._wake_due()  # noqa: SLF001 - read up to a second before the deadline
    assert sent == []
    await app_worker._wake_due()  # noqa: SLF001 - read up to it
    assert sent == [b"c-7"]
