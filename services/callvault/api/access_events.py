"""Every access is an event on `lifecycle`, and no data leaves before the broker has it.

Failing closed: if the event cannot be written, the coach gets a 503 and no
audio. An access the audit log does not show did not happen for the auditor,
so it must not happen at all.

The API does not wait for the broker to start: it connects in the background,
trying again with a growing pause, and until then answers every read 503 and
its `/readyz` 503. A broker that comes up later makes it ready with no restart
(a crash loop would hide the reason and hammer the broker as it comes up).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from callvault.contract.base import ContractModel
from callvault.settings import Settings
from callvault.stream.bus import make_producer, send_lifecycle

log = logging.getLogger("callvault.api")


class AccessNotLogged(RuntimeError):
    """The broker did not take the access event in time."""


NOT_CONNECTED = "the API is not connected to the broker yet, so no access could be logged"


class AccessLog:
    def __init__(self, settings: Settings, timeout_s: float = 10.0, retry_cap_s: float = 10.0) -> None:
        self._settings = settings
        self._timeout = timeout_s
        self._retry_cap = retry_cap_s
        self._producer: AIOKafkaProducer | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def start(self) -> None:
        """Begin connecting to the broker; returns at once (see the module's docstring)."""
        self._connecting = asyncio.create_task(self._connect())

    async def _connect(self) -> None:
        pause = 0.5
        while True:
            producer = make_producer(
                self._settings,
                max_batch_size=self._settings.producer_max_batch_bytes,
                linger_ms=0,
                request_timeout_ms=int(self._timeout * 1000),
            )
            try:
                await producer.start()
            except KafkaError as exc:
                with contextlib.suppress(Exception):
                    await producer.stop()
                log.warning(
                    "the broker at %s does not answer (%s); trying again in %.0f s",
                    self._settings.kafka_bootstrap, type(exc).__name__, pause,
                )  # fmt: skip
                await asyncio.sleep(pause)
                pause = min(pause * 2, self._retry_cap)
                continue
            self._producer = producer
            self._connected.set()
            log.info("connected to the broker at %s", self._settings.kafka_bootstrap)
            return

    async def stop(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        if self._producer is not None:
            await self._producer.stop()

    async def record(self, event: ContractModel) -> None:
        """Write one access event (a call's, an export's) and wait until the broker has it.

        Just after start (the command line's case) the connection may be moments away: it is
        waited for as long as a send would be, then refused."""
        if self._producer is None:
            try:
                await asyncio.wait_for(self._connected.wait(), self._timeout)
            except TimeoutError:
                raise AccessNotLogged(NOT_CONNECTED) from None
        assert self._producer is not None
        try:
            await asyncio.wait_for(send_lifecycle(self._producer, self._settings, [event]), self._timeout)
        except (TimeoutError, KafkaError) as exc:
            log.error("access event %s not written: %r", getattr(event, "event_id", "?"), exc)
            raise AccessNotLogged(str(exc)) from exc

    async def ready(self) -> None:
        """Raises unless the broker knows the lifecycle topic."""
        if self._producer is None:
            raise AccessNotLogged(NOT_CONNECTED)
        partitions = await asyncio.wait_for(
            self._producer.partitions_for(self._settings.lifecycle_topic), self._timeout
        )
        if not partitions:
            raise AccessNotLogged(f"topic {self._settings.lifecycle_topic} has no partitions")
