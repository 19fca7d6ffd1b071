"""Writing a command to `commands` and waiting for the worker's answer.

The answer is the lifecycle event that names the command (see `answers`), or the
dead letter that holds the command's bytes. Both watchers start at the topics'
ends before the command is sent, so nothing older is read.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from aiokafka.errors import TopicAuthorizationFailedError

from callvault.contract.commands import (
    Command,
    SubjectCommandBase,
    SubjectExecute,
    SubjectExtend,
    SubjectVerifyIdentity,
)
from callvault.rules.command_signature import sign_document
from callvault.settings import Settings
from callvault.stream.bus import BrokerUnreachable, make_producer, start_client
from callvault.stream.watch import TopicWatcher

# What a request's story says before its answer: that it arrived, and what became of its clock.
NOT_AN_OUTCOME = frozenset(
    {
        "subject.request_received",
        "subject.identity_verified",
        "subject.request_extended",
        "subject.extension_notified",
        "subject.export_delivered",
    }
)


def answers(command: Command) -> Callable[[dict[str, Any]], bool]:
    """Which lifecycle event answers the command: a hold's names it as `command_id`; a subject
    request's outcome names it as `request_id` (its `subject.request_received` only says it arrived,
    and `command.accepted` only that a worker took it)."""
    wanted = str(command.event_id)
    if isinstance(command, SubjectExtend):
        return lambda e: (
            e.get("type") == "subject.request_extended" and e.get("request_id") == str(command.request_id)
        )
    if isinstance(command, SubjectVerifyIdentity | SubjectExecute):  # the request, carried out now
        asked = str(command.request_id)
        return lambda e: e.get("request_id") == asked and e.get("type") not in NOT_AN_OUTCOME
    if isinstance(command, SubjectCommandBase):
        return lambda e: e.get("request_id") == wanted and e.get("type") not in NOT_AN_OUTCOME
    # `command.accepted` names it too, but says only that the worker took it: what it did comes after.
    return lambda e: (
        e.get("command_id") == wanted and e.get("type") not in {"command.accepted", "command.refused"}
    )


class CannotSign(ValueError):
    """No key to sign commands with here: the sentence names the setting."""


def signed_value(settings: Settings, command: Command) -> bytes:
    """The command as written to `commands`: signed by whoever these settings say sends it."""
    try:
        identity = settings.command_identity()
    except ValueError as exc:
        raise CannotSign(str(exc)) from None
    return json.dumps(sign_document(json.loads(command.to_json_bytes()), identity)).encode()


async def submit_command(settings: Settings, command: Command, wait_s: float) -> dict[str, Any] | str | None:
    """Sign and send a command; then the event that answers it, the dead letter's sentence, or None
    in time. CannotSign, before anything is sent, if these settings have no signing key."""
    value = signed_value(settings, command)
    if wait_s <= 0:
        await _send(settings, command, value)
        return None
    lifecycle = TopicWatcher(settings, settings.lifecycle_topic, "type")
    dead = TopicWatcher(settings, settings.deadletter_topic, "type")
    wanted = str(command.event_id)
    is_answer = answers(command)

    def answer() -> dict[str, Any] | None:
        return next((e for e in lifecycle.records if is_answer(e)), None)

    def refused() -> str | None:
        for letter in dead.records:
            raw = letter.get("value")
            if raw and wanted in base64.b64decode(raw).decode("utf-8", "replace"):
                return str(letter.get("error"))
        return None

    try:
        await lifecycle.start(from_end=True)
        await dead.start(from_end=True)
        await _send(settings, command, value)
        # wait_for looks again at least every half second, so a dead letter is seen too.
        await lifecycle.wait_for(lambda w: answer() is not None or refused() is not None, wait_s)
    except TimeoutError:
        return None
    finally:
        await lifecycle.stop()
        await dead.stop()
    return answer() or refused()


async def _send(settings: Settings, command: Command, value: bytes) -> None:
    producer = make_producer(settings)
    await start_client(producer, settings)
    try:
        await producer.send_and_wait(settings.commands_topic, key=_key(command), value=value)
    except TopicAuthorizationFailedError as exc:
        raise BrokerUnreachable(
            f"the Kafka user {settings.kafka_sasl_username or '(anonymous)'!r} may not write "
            f"{settings.commands_topic}: its ACLs do not allow it (the DPO's user may)"
        ) from exc
    finally:
        await producer.stop()


def _key(command: Command) -> bytes:
    """The contract's key: the call for a hold, the subject's pseudonym for a subject request."""
    return str(getattr(command, "call_id", None) or getattr(command, "subject", "")).encode()
