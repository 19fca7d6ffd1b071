"""A fix for faust-streaming 0.15: a commit did not wait for the table writes it covers.

A table write (the call's new state) does not reach the broker at once: faust puts it in its
producer's buffer, which a task of its own hands to aiokafka one message at a time. Before it
commits a partition's offsets, faust flushes that buffer (`ProducerBuffer.flush`), so that what
processing those messages wrote is with the broker before they count as done. But that flush
gives up as soon as 0.1 s pass without one message being handed over, and it does not count the
message the task is handing over at that moment (taken from the queue, not yet with aiokafka).
On a busy event loop either is easy, and the commit then moves past messages whose state was
never sent: a worker killed right after loses it for good, as the next worker starts after them.
Found by reading faust while looking for the cause of undecided calls in
`tests/faults/test_killed_worker.py` (which turned out to be another: `rules.call_state.wake_at`);
`tests/unit/test_faust_flush.py` shows faust's flush returning with writes still buffered. It
happens: in 9 runs of that test on 2026-12-07 (three at a time), two commits logged the wait below,
for 7 and for 3 state records that faust's flush would have left behind; in one `bench/payments.py`
run the same night (the default path, six workers in turn), 26 commits did, for 1 to 32 records.

So the flush waits, as aiokafka's own does, until the buffer is empty and nothing is being
handed over, while the producer runs. A wait that outlasts faust's 0.1 s is logged (a commit
faust would have made without those records), and every 10 s after that, with how many wait.
A stopping producer, and a flush of at most n (`wait_until_ebb`), behave as faust's did.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from faust.transport.producer import ProducerBuffer

log = logging.getLogger("callvault.worker")

FAUST_GAVE_UP_S = 0.1  # faust's own wait for one message before its flush returned
SAID_EVERY_S = 10.0  # a flush still waiting says so this often
_SENDING = "_callvault_sending"  # messages taken from the queue and not yet handed to aiokafka

_original_send_pending = ProducerBuffer._send_pending
_original_flush = ProducerBuffer.flush


def _sending(buffer: Any) -> int:
    return int(getattr(buffer, _SENDING, 0))


async def _send_pending(self: Any, fut: Any) -> None:
    setattr(self, _SENDING, _sending(self) + 1)
    try:
        await _original_send_pending(self, fut)
    finally:
        setattr(self, _SENDING, _sending(self) - 1)


def _draining(buffer: Any) -> bool:
    """Whether the buffer's own task still hands messages over (else a wait would never end)."""
    return bool(buffer.state == "running" and not buffer.should_stop)


async def _flush(self: Any) -> None:
    """Return once every buffered message is with aiokafka, whose flush then waits for the broker."""
    began = time.monotonic()
    said_at: float | None = None
    while self.size or _sending(self):
        if not _draining(self):
            await _original_flush(self)  # faust's own: raises if messages are left, returns otherwise
            return
        waited = time.monotonic() - began
        if waited > FAUST_GAVE_UP_S and (said_at is None or waited - said_at >= SAID_EVERY_S):
            said_at = waited
            log.info(
                "a commit waits for %d state records to reach the producer (%.1f s so far); "
                "faust's own flush would have committed without them",
                self.size + _sending(self),
                waited,
            )
        self.message_sent.clear()
        try:
            await asyncio.wait_for(self.message_sent.wait(), timeout=FAUST_GAVE_UP_S)
        except TimeoutError:
            continue


def install() -> None:
    """Patch faust's producer buffer once; idempotent."""
    if ProducerBuffer.flush is not _flush:
        ProducerBuffer._send_pending = _send_pending  # type: ignore[method-assign]
        ProducerBuffer.flush = _flush  # type: ignore[method-assign]
