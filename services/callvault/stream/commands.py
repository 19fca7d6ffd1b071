"""Carrying out commands from `commands`: legal holds here; subject requests in `subjects`.

A hold is recorded in the registry first (that alone stops the purger), then the
S3 object-lock legal hold is set on every version of the call's objects, then
`legal_hold.placed` proves it. Each step is idempotent, so a redelivered command
repeats them and emits the same event id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from callvault.clock import Clock
from callvault.contract.commands import (
    Command,
    LegalHoldPlace,
    LegalHoldRelease,
    SubjectCommandBase,
    SubjectExecute,
    SubjectExtend,
    SubjectVerifyIdentity,
)
from callvault.rules import evidence
from callvault.rules.call_ref import call_ref
from callvault.rules.data_classes import data_classes
from callvault.settings import Settings
from callvault.storage import holds as registry
from callvault.storage.layout import parse_archive_key
from callvault.stream.bus import Emit
from callvault.stream.command_errors import CommandRefused
from callvault.stream.offloop import S3Runner
from callvault.stream.subjects import SubjectHandler
from callvault.stream.worker_part import WorkerPart

log = logging.getLogger("callvault.commands")

# The subject commands: carried out by `SubjectHandler`, in a lane of their own (`stream/command_lane.py`).
SUBJECT_COMMANDS = (SubjectCommandBase, SubjectExtend, SubjectVerifyIdentity, SubjectExecute)


def is_subject_command(command: Command) -> bool:
    """Whether `command` is a data subject's (it may run for minutes), not a hold's."""
    return isinstance(command, SUBJECT_COMMANDS)


class CommandHandler(WorkerPart):
    def __init__(
        self,
        settings: Settings,
        s3: S3Runner,
        emit: Emit,
        clock: Clock,
        on_hold: Callable[[str, bool], None] = lambda ref, held: None,  # `{tenant}/{call_id}`
        on_objection: Callable[[str], None] = lambda tenant_subject: None,
    ) -> None:
        super().__init__(settings, s3, emit, clock)
        # Tells this worker's archiver at once; other workers reread the registry.
        self.on_hold = on_hold
        self.subjects = SubjectHandler(settings, s3, emit, clock, on_objection=on_objection)

    async def handle(self, command: Command) -> None:
        if isinstance(command, LegalHoldPlace):
            await self._place(command)
        elif isinstance(command, LegalHoldRelease):
            await self._release(command)
        elif is_subject_command(command):
            await self.subjects.handle(command)  # type: ignore[arg-type]
        else:
            raise CommandRefused(f"{command.type} is not carried out by this version of callvault")

    async def _call_objects(self, call_id: str, tenant: str | None) -> dict[str, list[tuple[str, str]]]:
        """The call's versions in each bucket: of that tenant, or (tenant unknown) of every tenant."""
        found = {}
        for bucket in (c.bucket(self.settings) for c in data_classes()):
            found[bucket] = await self.s3.run(
                f"finding the objects of call {call_id}", registry.find_call_versions, bucket, call_id, tenant
            )
        return found

    @staticmethod
    def _tenants_of(objects: dict[str, list[tuple[str, str]]]) -> list[str]:
        tenants = set()
        for targets in objects.values():
            for key, _ in targets:
                parsed = parse_archive_key(key)
                if parsed is not None:
                    tenants.add(parsed.tenant)
        return sorted(tenants)

    @staticmethod
    def _one_tenant(call_id: str, tenants: list[str], where: str) -> str | None:
        if len(tenants) > 1:
            raise CommandRefused(
                f"call {call_id!r} {where} for more than one tenant ({', '.join(tenants)}); "
                "a call is its tenant's: name the tenant (`--tenant` on the command line)"
            )
        return tenants[0] if tenants else None

    async def _set_locks(self, objects: dict[str, list[tuple[str, str]]], on: bool) -> list[str]:
        said = []
        for bucket, targets in objects.items():
            result = await self.s3.run(
                f"setting object-lock legal holds in {bucket}",
                registry.set_object_lock_hold,
                bucket,
                targets,
                on,
            )
            said.append(f"{bucket}: {result}")
        return said

    async def _place(self, command: LegalHoldPlace) -> None:
        tenant = command.tenant
        objects = await self._call_objects(command.call_id, tenant)
        if tenant is None:
            tenant = self._one_tenant(command.call_id, self._tenants_of(objects), "is archived")
        if tenant is None:
            raise CommandRefused(
                f"call {command.call_id!r} has nothing archived and the command names no tenant; "
                "to hold a call ahead of its recording, give its tenant"
            )
        record = registry.HoldRecord(
            call_id=command.call_id,
            tenant=tenant,
            reason=command.reason,
            placed_by=command.requested_by,
            placed_at=command.requested_at,
            command_id=str(command.event_id),
        )
        meta = self.settings.metadata_bucket
        await self.s3.run(f"recording the hold on {command.call_id}", registry.put_hold, meta, record)
        self.on_hold(record.ref, True)
        locks = await self._set_locks(objects, on=True)
        log.info("legal hold placed on call %s of %s (%s)", command.call_id, tenant, "; ".join(locks))
        await self.emit([evidence.legal_hold_event(command, tenant, self.clock.now())])

    async def _release(self, command: LegalHoldRelease) -> None:
        meta = self.settings.metadata_bucket
        tenant = command.tenant
        if tenant is None:
            holds = await self.s3.run("reading the holds", registry.holds_of_call, meta, command.call_id)
            tenant = self._one_tenant(command.call_id, sorted({h.tenant for h in holds}), "is held")
        objects = await self._call_objects(command.call_id, tenant)
        if tenant is None:
            tenant = self._one_tenant(command.call_id, self._tenants_of(objects), "is archived")
        if tenant is None:
            raise CommandRefused(
                f"call {command.call_id!r} is not under a legal hold and has nothing archived"
            )
        # Locks first, registry last: until the registry entry goes, the purger keeps away.
        self.on_hold(call_ref(tenant, command.call_id), False)
        locks = await self._set_locks(objects, on=False)
        await self.s3.run(
            f"removing the hold on {command.call_id}", registry.remove_hold, meta, tenant, command.call_id
        )
        log.info("legal hold released on call %s of %s (%s)", command.call_id, tenant, "; ".join(locks))
        await self.emit([evidence.legal_hold_event(command, tenant, self.clock.now())])
