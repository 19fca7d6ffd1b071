"""S3 calls off the event loop, in a bounded pool, retried until the store answers.

A failing store must not lose an event: the caller awaits until the call
succeeds, so its Kafka offset is not committed before the write it depends on.
The partition waits; the log (and, for a refusal of callvault's own buckets,
the worker's readiness) says why. A producer's source is the exception: see
`run`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from callvault.observability.metrics import S3_ERRORS, s3_error_code
from callvault.storage.errors import (
    SourceFault,
    SourceUnreadable,
    StorageFault,
    answer_of,
    describe,
    is_permanent,
)

T = TypeVar("T")
log = logging.getLogger("callvault.s3")


__all__ = ["S3Runner", "SourceUnreadable", "StorageFault"]

Probe = Callable[[], Awaitable[bool]]


class S3Runner:
    def __init__(
        self,
        s3: BaseClient,
        *,
        max_workers: int,
        endpoint: str | None,
        backoff_cap_s: float = 30.0,
        give_up_after: int | None = None,
        opened_by: asyncio.Event | None = None,
    ) -> None:
        self.s3 = s3
        # Set once callvault may use its buckets (the worker's residency check); None: at once.
        self._opened_by = opened_by
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="callvault-s3")
        self._endpoint = endpoint
        self._cap = backoff_cap_s
        # None: retry until the store answers (the worker). A number: a person is waiting.
        self._give_up_after = give_up_after
        # Operations waiting on a permanent refusal of callvault's own buckets, by what they do.
        self._refused: dict[str, str] = {}

    async def run(
        self,
        what: str,
        fn: Callable[..., T],
        /,
        *args: Any,
        on: BaseClient | None = None,
        stuck_after_s: float | None = None,
        still_answering: Probe | None = None,
        attempts: int | None = None,
        **kwargs: Any,
    ) -> T:
        """`fn(client, *args, **kwargs)` in the pool, with this runner's client or the one `on` names.

        Transient faults are retried until the store answers. A `SourceFault` (what
        `fn` says went wrong with a producer's source) ends in `SourceUnreadable`
        when the refusal is permanent, or when it has lasted `stuck_after_s` while
        `still_answering()` shows the store serving others: one upload must not
        hold its partition, but an outage of the whole store still blocks.
        `attempts` caps the tries of this one call (otherwise the runner's own cap, if any).
        """
        if self._opened_by is not None and not self._opened_by.is_set():
            await self._opened_by.wait()
        give_up_after = attempts if attempts is not None else self._give_up_after
        loop = asyncio.get_running_loop()
        call = functools.partial(fn, on or self.s3, *args, **kwargs)
        attempt = 0
        started = time.monotonic()
        while True:
            try:
                result = await loop.run_in_executor(self._pool, call)
            except SourceFault as fault:
                exc: BaseException = fault.cause
                S3_ERRORS.labels(s3_error_code(exc)).inc()
                said = describe(exc, self._endpoint)
                answer = answer_of(exc)
                if is_permanent(exc):
                    raise SourceUnreadable(f"the store answered {answer}") from exc
                if give_up_after is not None and attempt + 1 >= give_up_after:
                    raise SourceUnreadable(f"the store answered {answer}") from exc
                waited = time.monotonic() - started
                if stuck_after_s is not None and waited >= stuck_after_s and still_answering is not None:
                    if await still_answering():
                        raise SourceUnreadable(
                            f"the store kept failing ({answer}) for {waited:.0f} s "
                            "while it answered other requests"
                        ) from exc
            except (BotoCoreError, ClientError, StorageFault) as exc:
                S3_ERRORS.labels(s3_error_code(exc)).inc()
                said = describe(exc, self._endpoint) if not isinstance(exc, StorageFault) else str(exc)
                if give_up_after is not None and attempt + 1 >= give_up_after:
                    raise
                if is_permanent(exc):
                    # callvault's own buckets refuse it: a misconfiguration. Wait, and say so.
                    self._refused[what] = said
                    log.error("%s is refused: %s; waiting until an operator fixes it", what, said)
            else:
                self._refused.pop(what, None)
                return result
            attempt += 1
            delay = min(self._cap, 0.25 * 2**attempt)
            log.warning("%s failed: %s; retrying in %.1fs (attempt %d)", what, said, delay, attempt)
            await asyncio.sleep(delay)

    @property
    def refusals(self) -> list[str]:
        """What the store refuses for good right now (callvault's own buckets): each answer once, no keys."""
        return sorted(set(self._refused.values()))

    async def once(self, fn: Callable[..., T], /, *args: Any) -> T:
        """`fn(*args)` in the pool, not retried: for a step that cannot be repeated, like reading a body."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
