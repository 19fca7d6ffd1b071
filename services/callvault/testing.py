"""callvault's worker logic in memory, on a clock the test turns: for callvault's suite and for producers.

Feed your platform's events, see the outcomes callvault will give them::

    async with Harness() as h:
        h.upload("acme/c-1.wav", audio)
        await h.send(started, disclosure, stored, ended)
        assert h.types("c-1") >= {"recording.archived", "metadata.archived"}
        await h.advance(days=31)                      # a month later: the recording is purged
        assert "recording.deleted" in h.types("c-1")

It drives the real pieces, not copies of their logic: the decoder, the
`CallProcessor`, the `Purger` and the `CommandHandler` (with its subject
handler), on a dict for the call-state table, moto's in-process S3 (object
lock, versions, tags) and a `FixedClock`. What it leaves out is the wiring:
Kafka, partitions, offsets, faust's timers. Those stay on the real stack
(`tests/integration`, `tests/faults`).

Between steps the harness does what the worker's timers do: it rereads the
legal holds and objections, wakes the calls whose deadline came, and runs a
purge pass. `advance()` turns the clock and then does the same, so a month of
retention takes a call to `advance(days=31)`, not a month.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from pydantic import SecretStr

from callvault.clock import FixedClock
from callvault.contract.base import ContractModel
from callvault.contract.commands import Command, command_adapter
from callvault.contract.deadletter import DeadLetter, SourcePosition
from callvault.contract.decoding import Rejected, decode_call_event, decode_with
from callvault.rules.client_policy import Payments, PolicyVersion, Scope
from callvault.rules.command_signature import Refusal, new_identity, seed_text, sign_document
from callvault.rules.dead_letters import dead_letter_for
from callvault.settings import Settings
from callvault.storage import store_profile
from callvault.storage.bootstrap import init_storage
from callvault.storage.client import make_s3_client
from callvault.storage.holds import held_calls
from callvault.storage.policies import load_book
from callvault.storage.sealing import Keyring, read_plain
from callvault.storage.subject_flags import SubjectFlag, flagged_everywhere
from callvault.storage.tenants import closed_tenants, offboarded_sentence
from callvault.stream.command_errors import CommandRefused
from callvault.stream.command_gate import CommandGate, accepted_event, refused_event
from callvault.stream.commands import CommandHandler
from callvault.stream.messages import CallMessage, to_fact, wake_message
from callvault.stream.offloop import S3Runner
from callvault.stream.policy_changes import (
    cancel_policy,
    change_kms_key,
    change_policy,
    change_role,
    change_site,
)
from callvault.stream.processor import CallProcessor
from callvault.stream.purger import Purger

DEFAULT_START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
# moto answers for any credentials; these only satisfy boto3, and name no real store.
_IN_PROCESS = {"s3_endpoint": "", "s3_access_key": "testing", "s3_secret_key": SecretStr("testing")}


def read_archived(s3: Any, settings: Settings, bucket: str, key: str, version: str | None = None) -> bytes:
    """An archived object's plaintext, opened under its client's key (the stored bytes are sealed)."""
    return read_plain(s3, Keyring.for_settings(settings), bucket, key, version)[0]


class Harness:
    """One callvault worker's logic, in memory. Use it as an async context manager."""

    def __init__(self, settings: Settings | None = None, *, start: datetime = DEFAULT_START) -> None:
        base = settings or Settings()
        # In-process S3 is reached through boto3 with no endpoint (moto intercepts it).
        update: dict[str, Any] = dict(_IN_PROCESS)
        if not base.command_keys:  # its own issuer, trusted by its own worker: no published key
            issuer = new_identity("harness")
            update["command_signing_key"] = SecretStr(seed_text(issuer))
            update["command_keys"] = f"{issuer.name}={issuer.public_key}"
        self.settings = base.model_copy(update=update)
        self.clock = FixedClock(start)
        self.events: list[dict[str, Any]] = []  # every lifecycle event, in order, as JSON objects
        self.dead_letters: list[DeadLetter] = []
        self._offset = 0
        self._mock: Any = None

    # -- set-up -------------------------------------------------------------------------

    async def __aenter__(self) -> Harness:
        from moto import mock_aws  # the `embedded` extra: moto's in-process S3

        self._mock = mock_aws()
        self._mock.start()  # patches botocore process-wide until __aexit__: one harness at a time
        try:
            self.s3 = make_s3_client(self.settings)
            await asyncio.to_thread(init_storage, self.s3, self.settings)  # boto3: off the loop
        except BaseException:
            self._mock.stop()
            raise
        runner = S3Runner(self.s3, max_workers=4, endpoint=None, backoff_cap_s=0.05, give_up_after=5)
        self._runner = runner
        self.state: dict[bytes, dict[str, Any]] = {}
        self.processor = CallProcessor(self.settings, self.state, runner, self._emit, self.clock)
        profile = await asyncio.to_thread(store_profile.load, self.s3, self.settings.metadata_bucket)
        self.processor.learn_store(profile)
        self.purger = Purger(self.settings, runner, self._emit, self.clock)
        self.gate = CommandGate(self.settings, runner, self.clock)
        self.commands = CommandHandler(
            self.settings,
            runner,
            self._emit,
            self.clock,
            on_hold=self._hold_changed,
            on_objection=self.processor.objecting.add,
        )
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._runner.close()
        if self._mock is not None:
            self._mock.stop()

    # -- inputs -------------------------------------------------------------------------

    def upload(self, key: str, body: bytes, bucket: str | None = None) -> None:
        """Put a recording where the platform would: the staging bucket, unless told."""
        self.s3.put_object(Bucket=bucket or self.settings.staging_bucket, Key=key, Body=body)

    async def send(
        self,
        *events: dict[str, Any] | bytes,
        key: bytes | None = None,
        sent_at: datetime | None = None,
        together: bool = False,
    ) -> None:
        """Each event as the intake would take it off `call-events`, then its call's processing.

        A dict is sent as JSON keyed by its `call_id` (or `key`); bytes are sent as they are.
        `sent_at`: when the events reached Kafka (their records' timestamp), for a backlog read
        later than it was sent; by default, now. `together`: read in one batch, as the worker reads
        a backlog (`send_records`).
        """

        def record(event: dict[str, Any] | bytes) -> tuple[bytes | None, bytes]:
            if isinstance(event, bytes):
                return key, event
            return key if key is not None else str(event.get("call_id")).encode(), json.dumps(event).encode()

        await self.send_records((record(event) for event in events), sent_at=sent_at, together=together)

    async def send_records(
        self,
        records: Iterable[tuple[bytes | None, bytes]],
        *,
        sent_at: datetime | None = None,
        together: bool = False,
    ) -> None:
        """Records as a producer writes them to `call-events`, (key, value) bytes, in order;
        then the timers once. For streams too long to turn the timers after every event.

        One at a time, each message's work is done and its call's state written before the next is
        read, as when events arrive apart. `together`: all of them in one batch, as the worker reads
        a backlog, each call's state written once after its last (`CallProcessor.handle_batch`); a
        message that fails is raised once the batch is done, the others having gone on.
        """
        if not together:
            for key, value in records:
                message = self._decode(key, value, sent_at)
                if message is not None:
                    await self.processor.handle(message)
            await self._timers()
            return
        messages = [m for key, value in records if (m := self._decode(key, value, sent_at)) is not None]
        failures = await self.processor.handle_batch(messages)
        await self._timers()
        for _, exc in failures:
            raise exc

    async def command(
        self, command: Command | dict[str, Any], *, sign: bool = True, at: SourcePosition | None = None
    ) -> SourcePosition:
        """A command as the commands agent would take it; a refusal becomes a dead letter.

        Signed, as the CLI signs, with these settings' `command_identity()` (the dev key)
        unless `sign=False` or it already carries a signature: a forgery is sent as given.
        `at` delivers it again at the position an earlier call returned, as Kafka does
        after a crash. The position it was taken at is returned.
        """
        value = command if isinstance(command, dict) else json.loads(command.to_json_bytes())
        if sign and "signature" not in value:
            value = sign_document(value, self.settings.command_identity())
        raw = json.dumps(value).encode()
        position = at or self._position(self.settings.commands_topic)
        decoded = decode_with(command_adapter, raw, "command", self.settings.max_event_bytes)
        if isinstance(decoded, Rejected):
            self._dead(decoded.error, position, None, raw)
            return position
        admitted = await self.gate.admit(raw, decoded.value, position.partition, position.offset)
        if isinstance(admitted, Refusal):
            now = self.clock.now()
            await self._emit(
                [refused_event(decoded.value, admitted, position.partition, position.offset, now)]
            )
            self._dead(admitted.sentence, position, None, raw)
            return position
        now = self.clock.now()
        await self._emit([accepted_event(raw, admitted, position.partition, position.offset, now)])
        try:
            await self.commands.handle(admitted)
        except CommandRefused as exc:
            self._dead(str(exc), position, None, raw)
        await self._timers()
        return position

    async def set_policy(
        self,
        tenant: str,
        *,
        queue: str | None = None,
        reason: str = "client contract",
        effective_at: datetime | None = None,
        recording_allowed: bool | None = None,
        grace: str | None = None,
        payments: Payments | None = None,
        **terms: str,
    ) -> PolicyVersion:
        """A client-policy change as `callvault policy set` makes it (`recording="P7D"`, ...);
        then the timers, so that the worker and the purger apply it."""
        change = Scope(terms=terms, grace=grace, recording_allowed=recording_allowed, payments=payments)
        version = await change_policy(
            self.s3, self.settings, self._emit, tenant, change, queue=queue, changed_by="dpo@harness",
            reason=reason, now=self.clock.now(), effective_at=effective_at,
        )  # fmt: skip
        await self._timers()
        return version

    async def set_site(self, tenant: str, site: str, *, allow: bool, reason: str = "client") -> PolicyVersion:
        """`callvault policy allow-site` (allow) or `deny-site`; then the timers."""
        version = await change_site(
            self.s3, self.settings, self._emit, tenant, site, allow=allow, changed_by="dpo@harness",
            reason=reason, now=self.clock.now(),
        )  # fmt: skip
        await self._timers()
        return version

    async def set_role(
        self,
        tenant: str,
        role: str | None,
        contact: str | None = None,
        reason: str = "data processing agreement",
    ) -> PolicyVersion:
        """`callvault policy set TENANT --role ... --contact ...`; then the timers."""
        version = await change_role(
            self.s3, self.settings, self._emit, tenant, role, contact, changed_by="dpo@harness",  # type: ignore[arg-type]
            reason=reason, now=self.clock.now(),
        )  # fmt: skip
        await self._timers()
        return version

    async def set_kms_key(
        self, tenant: str, kms_key: str | None, reason: str = "the client brings its own key"
    ) -> PolicyVersion:
        """`callvault policy set TENANT --kms-key ARN` (None: `callvault`); then the timers."""
        version = await change_kms_key(
            self.s3, self.settings, self._emit, tenant, kms_key, changed_by="dpo@harness", reason=reason,
            now=self.clock.now(),
        )  # fmt: skip
        await self._timers()
        return version

    async def cancel_policy(
        self, tenant: str, version: int, reason: str = "sent by mistake"
    ) -> PolicyVersion:
        """`callvault policy cancel`; then the timers."""
        replaced = await cancel_policy(
            self.s3, self.settings, self._emit, tenant, version, changed_by="dpo@harness", reason=reason,
            now=self.clock.now(),
        )  # fmt: skip
        await self._timers()
        return replaced

    async def advance(self, **delta: float) -> None:
        """Turn the clock (`days=31`, `minutes=5`, ...), then what the worker's timers would do."""
        self.clock.advance(timedelta(**delta))
        await self._timers()

    # -- what came out ------------------------------------------------------------------

    def lifecycle(self, call_id: str | None = None, type_: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if (call_id is None or e.get("call_id") == call_id) and (type_ is None or e.get("type") == type_)
        ]

    def types(self, call_id: str) -> set[str]:
        return {str(e["type"]) for e in self.lifecycle(call_id)}

    def read(self, bucket: str, key: str, version: str | None = None) -> bytes:
        """An archived object's plaintext, opened under its client's key as callvault's readers open it
        (`get_object` gives the stored bytes, sealed)."""
        return read_archived(self.s3, self.settings, bucket, key, version)

    def objects(self, bucket: str) -> list[str]:
        """Every key in a bucket (all versions counted once), sorted."""
        keys: set[str] = set()
        for page in self.s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            keys.update(v["Key"] for v in (*page.get("Versions", ()), *page.get("DeleteMarkers", ())))
        return sorted(keys)

    # -- the worker's steps -------------------------------------------------------------

    async def _emit(self, events: Sequence[ContractModel]) -> None:
        self.events.extend(json.loads(e.to_json_bytes()) for e in events)

    def _position(self, topic: str) -> SourcePosition:
        self._offset += 1
        return SourcePosition(topic=topic, partition=0, offset=self._offset)

    def _dead(self, error: str, position: SourcePosition, key: bytes | None, value: bytes | None) -> None:
        self.dead_letters.append(dead_letter_for(error, position, key, value, self.clock.now()))

    def _decode(self, key: bytes | None, value: bytes, sent_at: datetime | None = None) -> CallMessage | None:
        """The record's message as the intake decodes it; None, and a dead letter, when it is refused."""
        position = self._position(self.settings.call_events_topic)
        result = decode_call_event(key, value, self.settings.max_event_bytes, self.settings.upload_buckets)
        if isinstance(result, Rejected):
            self._dead(result.error, position, key, value)
            return None
        event = result.value
        if event.tenant in self.processor.closed_tenants:
            self._dead(offboarded_sentence(event.tenant), position, key, value)
            return None
        pseudonym_key = self.settings.pseudonym_key.get_secret_value().encode()
        return CallMessage(
            kind="fact",
            call_id=event.call_id,
            fact=to_fact(event, pseudonym_key),
            published_at=sent_at,  # None: judged at the clock, as a record read at once
        )

    async def _timers(self) -> None:
        """The registries reread, due calls woken (until none is due), and one purge pass."""
        meta = self.settings.metadata_bucket
        self.processor.held_calls = await asyncio.to_thread(held_calls, self.s3, meta)
        self.processor.objecting = set(
            await asyncio.to_thread(flagged_everywhere, self.s3, meta, SubjectFlag.OBJECTING)
        )
        self.processor.policies = await asyncio.to_thread(
            load_book, self.s3, meta, bounds=self.settings.policy_bounds
        )
        self.processor.closed_tenants = await asyncio.to_thread(closed_tenants, self.s3, meta)
        for _ in range(100):  # a wake-up may schedule another at the same instant
            now = self.clock.now()
            due = [k for k, at in self.processor.wakes.items() if at <= now]
            if not due:
                break
            for key in due:
                await self.processor.handle(wake_message(key)[1])
        await self.purger.run_pass()
        if await self.purger.finish_scan():  # a listing ran beside the pass: act on it now
            await self.purger.run_pass()

    def _hold_changed(self, ref: str, held: bool) -> None:
        if held:
            self.processor.held_calls.add(ref)
        else:
            self.processor.held_calls.discard(ref)
