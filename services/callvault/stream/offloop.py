"""S3 calls off the event loop, in a bounded pool, retried until the store answers.

A failing store must not lose an event: the caller awaits until the call
succeeds, so its Kafka offset is not committed before the write it depends on.
The partition waits; the log says why.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from callvault.observability.metrics import S3_ERRORS, s3_error_code
from callvault.storage.errors import describe

T = TypeVar("T")
log = logging.getLogger("callvault.s3")


class StorageFault(RuntimeError):
    """An S3 operation reported a failure in its answer (a batch delete error, say)."""


class S3Runner:
    def __init__(
        self,
        s3: BaseClient,
        *,
        max_workers: int,
        endpoint: str | None,
        backoff_cap_s: float = 30.0,
        give_up_after: int | None = None,
    ) -> None:
        self.s3 = s3
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="callvault-s3")
        self._endpoint = endpoint
        self._cap = backoff_cap_s
        # None: retry until the store answers (the worker). A number: a person is waiting.
        self._give_up_after = give_up_after

    async def run(
        self, what: str, fn: Callable[..., T], /, *args: Any, on: BaseClient | None = None, **kwargs: Any
    ) -> T:
        """`fn(client, *args, **kwargs)` in the pool, with this runner's client or the one `on` names."""
        loop = asyncio.get_running_loop()
        call = functools.partial(fn, on or self.s3, *args, **kwargs)
        attempt = 0
        while True:
            try:
                return await loop.run_in_executor(self._pool, call)
            except (BotoCoreError, ClientError, StorageFault) as exc:
                S3_ERRORS.labels(s3_error_code(exc)).inc()
                attempt += 1
                if self._give_up_after is not None and attempt >= self._give_up_after:
                    raise
                delay = min(self._cap, 0.25 * 2**attempt)
                log.warning(
                    "%s failed: %s; retrying in %.1fs (attempt %d)",
                    what,
                    describe(exc, self._endpoint) if not isinstance(exc, StorageFault) else exc,
                    delay,
                    attempt,
                )
                await asyncio.sleep(delay)

    async def once(self, fn: Callable[..., T], /, *args: Any) -> T:
        """`fn(*args)` in the pool, not retried: for a step that cannot be repeated, like reading a body."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
