"""The door of `commands`: only a command its issuer signed, taken once and in time, gets through.

The worker's agent and the in-memory harness both pass every decoded command
through `CommandGate.admit` before carrying it out. What comes out is the same
command with `requested_by` replaced by the verified key's name (so every event
it causes names who really sent it), or a `Refusal`, which the caller turns into
a dead letter and a `command.refused` event (`refused_event`).

The decisions are in `callvault.rules.command_signature`; this adds the ledger of
ids already taken (`callvault.storage.command_ledger`) and the clock.
"""

from __future__ import annotations

import json
from datetime import datetime

from callvault.clock import Clock
from callvault.contract.base import deterministic_id
from callvault.contract.commands import Command
from callvault.contract.lifecycle import CommandAccepted, CommandRefusedEvent
from callvault.rules.command_signature import (
    Refusal,
    Verified,
    check_age,
    check_signature,
    replay_verdict,
    replayed,
)
from callvault.settings import Settings
from callvault.storage.command_ledger import LedgerEntry, first_taken, note_taken
from callvault.stream.offloop import S3Runner


class CommandGate:
    def __init__(self, settings: Settings, s3: S3Runner, clock: Clock) -> None:
        self.keys = settings.trusted_command_keys
        self.window = settings.command_window
        self.bucket = settings.metadata_bucket
        self.s3 = s3
        self.clock = clock

    async def admit(self, raw: bytes, command: Command, partition: int, offset: int) -> Command | Refusal:
        """The command as it counts (signer verified), or why it does not.

        `raw` is the record's value, already decoded into `command`: the signature is
        checked over what was sent, not over callvault's rendering of it.
        """
        verdict = check_signature(json.loads(raw), self.keys)
        if isinstance(verdict, Refusal):
            return verdict
        command_id = str(command.event_id)
        seen = await self.s3.run("reading the ledger of commands", first_taken, self.bucket, command_id)
        here = (partition, offset)
        taken = replay_verdict(seen.position if seen is not None else None, here)
        if taken == "replayed" and seen is not None:
            return replayed(command_id, verdict.name, seen.position)
        if taken == "first":
            now = self.clock.now()
            late = check_age(command.requested_at, now, self.window, verdict.name)
            if late is not None:
                return late
            entry = LedgerEntry(
                command_id=command_id,
                partition=partition,
                offset=offset,
                signed_by=verdict.name,
                taken_at=now,
            )
            await self.s3.run("noting the command in the ledger", note_taken, self.bucket, entry)
        return _as_verified(command, verdict)


def _as_verified(command: Command, verdict: Verified) -> Command:
    return command.model_copy(update={"requested_by": verdict.name})


def accepted_event(
    raw: bytes, admitted: Command, partition: int, offset: int, now: datetime
) -> CommandAccepted:
    """The proof a command counts, with the command as sent: emitted before it is carried out, so no
    hold or subject request stands in the log without it. The same id if Kafka delivers it again."""
    return CommandAccepted(
        event_id=deterministic_id("command.accepted", str(admitted.event_id), str(partition), str(offset)),
        occurred_at=now,
        command_id=str(admitted.event_id),
        command_type=admitted.type,
        tenant=getattr(admitted, "tenant", None),
        signed_by=admitted.requested_by,
        command=json.loads(raw),
    )


def refused_event(
    command: Command, refusal: Refusal, partition: int, offset: int, now: datetime
) -> CommandRefusedEvent:
    """The proof a command did not count; the same id if Kafka delivers the command again."""
    return CommandRefusedEvent(
        event_id=deterministic_id("command.refused", str(command.event_id), str(partition), str(offset)),
        occurred_at=now,
        command_id=str(command.event_id),
        command_type=command.type,
        tenant=getattr(command, "tenant", None),
        claimed_signer=refusal.claimed_signer,
        reason=refusal.reason,
        detail=refusal.sentence,
    )
