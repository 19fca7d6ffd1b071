"""Writing a command to `commands` and waiting for the worker's answer.

The answer is the lifecycle event whose `command_id` is the command's id, or the
dead letter that holds the command's bytes. Both watchers start at the topics'
ends before the command is sent, so nothing older is read.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

from callvault.contract.commands import Command
from callvault.settings import Settings
from callvault.stream.bus import make_producer
from callvault.stream.watch import TopicWatcher


async def submit_command(settings: Settings, command: Command, wait_s: float) -> dict[str, Any] | str | None:
    """Send a command; then the event that proves it, the dead letter's sentence, or None in time."""
    watchers = []
    if wait_s > 0:
        watchers = [
            await TopicWatcher(settings.kafka_bootstrap, settings.lifecycle_topic, "command_id").start(
                from_end=True
            ),
            await TopicWatcher(settings.kafka_bootstrap, settings.deadletter_topic, "type").start(
                from_end=True
            ),
        ]
    producer = make_producer(settings.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.commands_topic, key=_key(command), value=command.to_json_bytes()
        )
    finally:
        await producer.stop()
    if not watchers:
        return None
    lifecycle, dead = watchers
    wanted = str(command.event_id)

    def refused() -> str | None:
        for letter in dead.records:
            raw = letter.get("value")
            if raw and wanted in base64.b64decode(raw).decode("utf-8", "replace"):
                return str(letter.get("error"))
        return None

    try:
        await asyncio.wait_for(
            _until(lambda: bool(lifecycle.by_key.get(wanted)) or refused() is not None), wait_s
        )
    except TimeoutError:
        return None
    finally:
        for watcher in watchers:
            await watcher.stop()
    if lifecycle.by_key.get(wanted):
        return lifecycle.by_key[wanted][0]
    return refused()


def _key(command: Command) -> bytes:
    """The contract's key: the call for a hold, the subject's pseudonym for a subject request."""
    return str(getattr(command, "call_id", None) or getattr(command, "subject", "")).encode()


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.2)
