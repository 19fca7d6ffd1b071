"""A fix for faust-streaming 0.15: a stopping worker waited as long as the audit flush, or until killed.

What happened (measured: SIGTERM to exit took 25.7 s with one call handled,
the audit agent's 30 s flush; the suite's stop gave up after 10 s and killed
the worker, so every worker stop there cost 10 s): on stop, faust stops the
fetcher, then waits until every message that reached an agent is acked
(`Consumer.wait_empty`). The audit agent gathers `lifecycle` records with
`stream.take(n, within=CALLVAULT_AUDIT_FLUSH_S)`, which hands them over only
when the segment is full or its time is up, so the stop waited for that.

The fix bounds that one wait, on stop only. What the agents finish within
`CALLVAULT_STOP_WAIT_S` (5 s) is committed. If some messages are still not
done then, this worker commits nothing more: stopping a stream makes faust ack
a `take` batch its agent never finished (the batch generator's `finally`), and
faust's last commit would count it done (seen: the audit archive lost the
three records a stopped worker held). Those messages are read again by whoever
owns the partition next, as after a kill, which callvault is built to survive
(every step is idempotent). A rebalance still waits as faust does: there the
streams keep running, so `take` hands its records over on time.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from faust.app.base import App
from faust.transport.consumer import Consumer

log = logging.getLogger("callvault.worker")

_original_wait_empty = App._consumer_wait_empty
_original_commit = Consumer.commit
_FROZEN = "_callvault_commits_frozen"


_stop_wait_s = 5.0  # set by install(): long enough for an S3 write in flight, well inside a pod's grace


async def _consumer_wait_empty(self: Any, consumer: Any, logger: Any) -> None:
    if not self.should_stop:  # a rebalance: faust's own wait
        await _original_wait_empty(self, consumer, logger)
        return
    # faust's loop, with a deadline: it cannot be cancelled from outside, since its
    # wait for an ack swallows CancelledError.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _stop_wait_s
    while consumer._unacked_messages and loop.time() < deadline:  # noqa: SLF001 - faust's own
        await consumer.commit()
        if not consumer._unacked_messages:  # noqa: SLF001
            break
        await consumer._wait_for_ack(timeout=1)  # noqa: SLF001
        consumer._clean_unacked_messages()  # noqa: SLF001
    await consumer.commit_and_end_transactions()  # what was finished, so it is not done twice
    left = len(consumer._unacked_messages)  # noqa: SLF001
    if left:
        setattr(consumer, _FROZEN, True)
        log.info(
            "stopping: %d messages not finished after %.0f s are left uncommitted, to be read again",
            left,
            _stop_wait_s,
        )


async def _commit(self: Any, *args: Any, **kwargs: Any) -> bool:
    if getattr(self, _FROZEN, False):
        return False  # stopping with unfinished messages: see the module's docstring
    return bool(await _original_commit(self, *args, **kwargs))


def install(stop_wait_s: float) -> None:
    """Patch faust's app once; idempotent."""
    global _stop_wait_s
    _stop_wait_s = stop_wait_s
    if App._consumer_wait_empty is not _consumer_wait_empty:
        App._consumer_wait_empty = _consumer_wait_empty  # type: ignore[method-assign]
        Consumer.commit = _commit  # type: ignore[method-assign]
