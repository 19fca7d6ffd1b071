"""Writing a command to `commands` and waiting for the worker's answer.

The answer is the lifecycle event whose `command_id` is the command's id, or the
dead letter that holds the command's bytes. Both watchers start at the topics'
ends before the command is sent, so nothing older is read.
"""

from __future__ import annotations

import base64
from typing import Any

from callvault.contract.commands import Command
from callvault.settings import Settings
from callvault.stream.bus import make_producer
from callvault.stream.watch import TopicWatcher


async def submit_command(settings: Settings, command: Command, wait_s: float) -> dict[str, Any] | str | None:
    """Send a command; then the event that proves it, the dead letter's sentence, or None in time."""
    if wait_s <= 0:
        await _send(settings, command)
        return None
    lifecycle = TopicWatcher(settings.kafka_bootstrap, settings.lifecycle_topic, "command_id")
    dead = TopicWatcher(settings.kafka_bootstrap, settings.deadletter_topic, "type")
    wanted = str(command.event_id)

    def refused() -> str | None:
        for letter in dead.records:
            raw = letter.get("value")
            if raw and wanted in base64.b64decode(raw).decode("utf-8", "replace"):
                return str(letter.get("error"))
        return None

    try:
        await lifecycle.start(from_end=True)
        await dead.start(from_end=True)
        await _send(settings, command)
        # wait_for looks again at least every half second, so a dead letter is seen too.
        await lifecycle.wait_for(lambda w: bool(w.by_key.get(wanted)) or refused() is not None, wait_s)
    except TimeoutError:
        return None
    finally:
        await lifecycle.stop()
        await dead.stop()
    return lifecycle.by_key[wanted][0] if lifecycle.by_key.get(wanted) else refused()


async def _send(settings: Settings, command: Command) -> None:
    producer = make_producer(settings.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.commands_topic, key=_key(command), value=command.to_json_bytes()
        )
    finally:
        await producer.stop()


def _key(command: Command) -> bytes:
    """The contract's key: the call for a hold, the subject's pseudonym for a subject request."""
    return str(getattr(command, "call_id", None) or getattr(command, "subject", "")).encode()
