"""Every access is an event on `lifecycle`, and no data leaves before the broker has it.

Failing closed: if the event cannot be written, the coach gets a 503 and no
audio. An access the audit log does not show did not happen for the auditor,
so it must not happen at all.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from callvault.contract.base import ContractModel
from callvault.settings import Settings
from callvault.stream.bus import make_producer, send_lifecycle

log = logging.getLogger("callvault.api")


class AccessNotLogged(RuntimeError):
    """The broker did not take the access event in time."""


class AccessLog:
    def __init__(self, settings: Settings, timeout_s: float = 10.0) -> None:
        self._settings = settings
        self._timeout = timeout_s
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self._producer = make_producer(
            self._settings.kafka_bootstrap,
            max_batch_size=self._settings.producer_max_batch_bytes,
            linger_ms=0,
            request_timeout_ms=int(self._timeout * 1000),
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def record(self, event: ContractModel) -> None:
        """Write one access event (a call's, an export's) and wait until the broker has it."""
        if self._producer is None:
            raise AccessNotLogged("the API's producer is not started")
        try:
            await asyncio.wait_for(send_lifecycle(self._producer, self._settings, [event]), self._timeout)
        except (TimeoutError, KafkaError) as exc:
            log.error("access event %s not written: %r", getattr(event, "event_id", "?"), exc)
            raise AccessNotLogged(str(exc)) from exc

    async def ready(self) -> None:
        """Raises unless the broker knows the lifecycle topic."""
        if self._producer is None:
            raise AccessNotLogged("the API's producer is not started")
        partitions = await asyncio.wait_for(
            self._producer.partitions_for(self._settings.lifecycle_topic), self._timeout
        )
        if not partitions:
            raise AccessNotLogged(f"topic {self._settings.lifecycle_topic} has no partitions")
