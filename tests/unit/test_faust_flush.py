"""The producer buffer's flush, which faust runs before a commit, waits for every buffered write."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.producer import ProducerBuffer

from callvault.stream import faust_flush

SLOW_S = 0.35  # longer than faust's 0.1 s: a busy loop, or aiokafka waiting for room or metadata


class SlowChannel:
    """A topic whose hand-over to the producer takes SLOW_S, as it may on a loaded worker."""

    def __init__(self) -> None:
        self.published: list[str] = []

    async def publish_message(self, fut: Any, wait: bool = False) -> None:
        await asyncio.sleep(SLOW_S)
        self.published.append(fut.message.key)


def _message(channel: SlowChannel, key: str) -> Any:
    return SimpleNamespace(message=SimpleNamespace(channel=channel, key=key))


@pytest.fixture
def patched(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(ProducerBuffer, "flush", faust_flush._flush)  # as install() leaves it
    monkeypatch.setattr(ProducerBuffer, "_send_pending", faust_flush._send_pending)
    yield


async def _flushed_after_two_writes(buffer: ProducerBuffer) -> tuple[list[str], SlowChannel]:
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))  # type: ignore[assignment]
    channel = SlowChannel()
    await buffer.start()
    try:
        buffer.put(_message(channel, "state-1"))
        buffer.put(_message(channel, "state-2"))
        await asyncio.sleep(0)  # the buffer's task takes the first one in hand
        await buffer.flush()
        return list(channel.published), channel
    finally:
        with contextlib.suppress(RuntimeError):  # faust's stop flushes too, and refuses what is left
            await buffer.stop()


@pytest.mark.usefixtures("patched")
async def test_a_flush_returns_only_once_every_write_is_handed_over() -> None:
    flushed, _ = await _flushed_after_two_writes(ProducerBuffer())
    assert flushed == ["state-1", "state-2"]


async def test_faust_s_own_flush_returned_with_writes_in_the_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Why the fix exists: unpatched, the commit that follows would count these writes as sent."""
    monkeypatch.setattr(ProducerBuffer, "flush", faust_flush._original_flush)  # as faust ships it, even
    monkeypatch.setattr(ProducerBuffer, "_send_pending", faust_flush._original_send_pending)  # if installed
    flushed, _ = await _flushed_after_two_writes(ProducerBuffer())
    assert flushed != ["state-1", "state-2"]


@pytest.mark.usefixtures("patched")
async def test_a_long_wait_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="callvault.worker")
    await _flushed_after_two_writes(ProducerBuffer())
    assert any("faust's own flush would have committed without them" in r.message for r in caplog.records)


@pytest.mark.usefixtures("patched")
async def test_a_stopped_buffer_is_not_waited_for() -> None:
    buffer = ProducerBuffer()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))  # type: ignore[assignment]
    await buffer.flush()  # never started, nothing buffered: returns at once
    buffer.put(_message(SlowChannel(), "state-1"))
    with pytest.raises(RuntimeError, match="Producer not Running"):
        await buffer.flush()  # faust's own answer: it cannot be flushed, and says so


def test_install_patches_faust_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ProducerBuffer, "flush", faust_flush._original_flush)
    monkeypatch.setattr(ProducerBuffer, "_send_pending", faust_flush._original_send_pending)
    faust_flush.install()
    faust_flush.install()
    assert ProducerBuffer.flush is faust_flush._flush
    assert ProducerBuffer._send_pending is faust_flush._send_pending
