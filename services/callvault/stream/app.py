"""The faust app: topics, the call-state table, the agents and the wake-up timer.

Thin by design: decoding lives in `callvault.contract`, decisions in
`callvault.rules`, the per-call work in `callvault.stream.processor`.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import logging
import tempfile
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import faust
from aiokafka.errors import KafkaError
from faust.types import EventT

from callvault.clock import Clock, SystemClock
from callvault.contract.base import ContractModel
from callvault.contract.commands import Command, command_adapter
from callvault.contract.deadletter import SourcePosition
from callvault.contract.decoding import Rejected, decode_call_event, decode_with
from callvault.observability.logs import logging_config, where_it_failed
from callvault.observability.metrics import (
    CALLS_WAITING,
    CONSUMER_LAG,
    DEAD_LETTERS,
    EVENTS_IN,
    POLICY_VERSIONS,
    POLICY_VERSIONS_REFUSED,
    PURGE_PASSES,
    S3_REFUSED,
    SUBJECT_COMMANDS_WAITING,
    WORKER_READY,
    count_emitted,
)
from callvault.rules.audit_chain import LoggedRecord
from callvault.rules.call_state import TenantConflict
from callvault.rules.command_signature import Refusal
from callvault.rules.dead_letters import dead_letter_for
from callvault.settings import STATE_TABLE, Settings
from callvault.storage import store_profile
from callvault.storage.client import make_s3_client, make_staging_s3_client
from callvault.storage.holds import held_calls
from callvault.storage.policies import VersionCache, load_book, not_applied, refused_count, tenant_of
from callvault.storage.subject_flags import SubjectFlag, flagged_everywhere
from callvault.storage.tenants import closed_tenants, offboarded_sentence
from callvault.stream import faust_fixes, faust_flush, faust_stop
from callvault.stream.audit_archiver import AuditArchiver
from callvault.stream.bus import lifecycle_key
from callvault.stream.call_state_table import CallStateTable
from callvault.stream.command_errors import CommandRefused
from callvault.stream.command_gate import CommandGate, accepted_event, refused_event
from callvault.stream.command_lane import CommandLane
from callvault.stream.commands import CommandHandler, is_subject_command
from callvault.stream.health import HealthServer
from callvault.stream.input_mark import InputProgress, input_mark, published_at
from callvault.stream.kafka_security import faust_credentials
from callvault.stream.messages import CallMessage, calls_partition, to_fact, topic_key, wake_message
from callvault.stream.offloop import S3Runner
from callvault.stream.processor import CallProcessor
from callvault.stream.purger import Purger
from callvault.stream.residency_gate import ResidencyGate
from callvault.stream.worker_part import REGISTRIES_REFRESH_S

log = logging.getLogger("callvault.worker")
INPUT_LAG_SAID = timedelta(seconds=10)  # an intake this far behind the clock is logged (see _input_mark)

HOLDS_REFRESH_S = REGISTRIES_REFRESH_S  # how often each worker rereads the held calls (one listing)


def broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip()]


class Worker:
    """Builds and holds the faust app and the services its agents use."""

    def __init__(self, settings: Settings, clock: Clock | None = None, *, freeze_heap: bool = False) -> None:
        """`freeze_heap` (the `callvault worker` process, not a test's): once it has first joined its
        group and recovered its state, every object then alive (imports, app, clients, consumer) leaves
        the garbage collector's sight (`gc.freeze`), as in the API. A full collection no longer walks
        them, and stops the event loop for less: two in a `bench/payments.py` run of 400 calls, 98 to
        115 ms each before, 2.3 to 6.2 ms after (docs/benchmarks.md)."""
        faust_fixes.install()
        faust_flush.install()
        faust_stop.install(settings.stop_wait_s)
        self.settings = settings
        self.clock = clock or SystemClock()
        self.app = faust.App(
            settings.app_id,
            broker=broker_urls(settings.kafka_bootstrap),
            broker_credentials=faust_credentials(settings),  # TLS and SASL, as every other client
            store="memory://",
            datadir=str(Path(tempfile.gettempdir()) / f"callvault-{settings.app_id}"),
            topic_partitions=settings.partitions,
            # The changelog, the leader topic and any topic faust declares: as many replicas as callvault's.
            topic_replication_factor=settings.replication_factor,
            topic_allow_declare=True,
            consumer_auto_offset_reset="earliest",
            broker_session_timeout=settings.broker_session_timeout_s,
            broker_rebalance_timeout=settings.broker_rebalance_timeout_s,
            broker_heartbeat_interval=settings.broker_heartbeat_interval_s,
            broker_commit_interval=1.0,
            producer_acks=-1,
            producer_max_batch_size=settings.producer_max_batch_bytes,
            web_enabled=False,
        )
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        self.call_events = self.app.topic(settings.call_events_topic, **raw)
        self.calls = self.app.topic(
            settings.calls_topic, partitions=settings.partitions, internal=True, **raw
        )
        self.lifecycle = self.app.topic(settings.lifecycle_topic, **raw)
        self.deadletter = self.app.topic(settings.deadletter_topic, **raw)
        self.commands = self.app.topic(settings.commands_topic, **raw)
        # The topics the agents consume, whose committed offsets say how far behind the worker is.
        self._agent_topics = {
            settings.call_events_topic,
            settings.calls_topic,
            settings.lifecycle_topic,
            settings.commands_topic,
        }
        # A call's state sits in the changelog partition of the same number as its `calls`
        # partition, which is what faust recovers for a worker holding it (see call_state_table).
        self.table = self.app.tables.add(
            CallStateTable(
                self.app,
                name=STATE_TABLE,
                default=None,
                beacon=self.app.tables.beacon,
                partitions=settings.partitions,
                key_type=bytes,  # the raw serializer: changelog keys are `{tenant}/{call_id}` bytes
            )
        )
        # No S3 operation before the residency check passed (see stream/residency_gate.py).
        self.residency = ResidencyGate(settings, asyncio.Event())
        opened = self.residency.passed
        # botocore tries the archive's writes once: S3Runner is their one retry loop, and
        # it looks in the archive before it repeats a copy. botocore's own retry of a
        # copy whose answer was lost would archive the recording a second time.
        self.s3 = S3Runner(
            make_s3_client(settings, pool=settings.s3_max_concurrency, attempts=1),
            max_workers=settings.s3_max_concurrency,
            endpoint=settings.s3_endpoint,
            opened_by=opened,
        )
        staging = make_staging_s3_client(settings, attempts=1) if settings.staging_is_separate else None
        self.processor = CallProcessor(
            settings,
            self.table,
            self.s3,
            self.emit,
            self.clock,
            staging_s3=staging,
            registries=self._read_registries,
        )
        # Its own pool: a pass with thousands of HEADs and deletes must not queue
        # ahead of the archiving work of live calls.
        purge_threads = max(2, settings.s3_max_concurrency // 2)
        self.purger = Purger(
            settings,
            S3Runner(
                make_s3_client(settings, pool=purge_threads),
                max_workers=purge_threads,
                endpoint=settings.s3_endpoint,
                opened_by=opened,
            ),
            self.emit,
            self.clock,
        )
        self.audit = AuditArchiver(
            settings,
            S3Runner(
                make_s3_client(settings, pool=2),
                max_workers=2,
                endpoint=settings.s3_endpoint,
                opened_by=opened,
            ),
            self.clock,
        )
        self.command_handler = CommandHandler(
            settings,
            self.s3,
            self.emit,
            self.clock,
            on_hold=self._hold_changed,
            on_objection=self._objection_added,
        )
        self.command_gate = CommandGate(settings, self.s3, self.clock)
        # Subject commands, carried out one at a time beside the others (see _command).
        self.subject_lane: CommandLane[Command, EventT] = CommandLane(self._carry_out)
        self._pseudonym_key = settings.pseudonym_key.get_secret_value().encode()
        self._wakes_stale = True
        self._wake_sent: dict[bytes, datetime] = {}
        self.input = InputProgress()  # how far `call-events` is taken in: wake-ups wait for it
        self._input_behind = False
        self._policy_cache: VersionCache = {}  # client-policy versions read, by key and ETag
        self._profile_read = False  # storage init's measurement of the store, read once
        self._recovered_once = False
        self._freeze_heap = freeze_heap
        self.health = HealthServer(
            settings.worker_http_host,
            settings.worker_http_port,
            readiness=self._readiness,
            store_check=self._store_answers,
            before_scrape=self._update_gauges,
            notes=self._notes,
        )
        self._wire()

    # -- outputs ---------------------------------------------------------------------

    async def emit(self, events: Sequence[ContractModel]) -> None:
        """Send lifecycle events and wait until the broker has them."""
        pending = []
        for event in events:
            pending.append(await self.lifecycle.send(key=lifecycle_key(event), value=event.to_json_bytes()))
        await asyncio.gather(*pending)
        count_emitted(events)

    async def dead_letter(self, error: str, event: EventT) -> None:
        """Set an input aside with a sentence; its key, value and the sentence lose any phone number.

        Only `call-events` may carry raw numbers, and a producer may have put one in
        any field, in the key, or in a command: every topic's letters are redacted.
        """
        msg = event.message
        letter = dead_letter_for(
            error,
            SourcePosition(topic=msg.topic, partition=msg.partition, offset=msg.offset),
            msg.key,
            msg.value,
            self.clock.now(),
        )
        log.warning("dead letter at %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, letter.error)
        key = None if letter.key is None else base64.b64decode(letter.key)
        fut = await self.deadletter.send(key=key, value=letter.to_json_bytes())
        await fut
        DEAD_LETTERS.labels(msg.topic).inc()

    # -- health and metrics ------------------------------------------------------------

    def not_ready_because(self) -> list[str]:
        """Why the worker cannot do its share yet; empty once it has its partitions and its state."""
        if not self._recovered_once:
            return ["joining the consumer group and recovering call state"]
        if self.app.rebalancing:
            return ["rebalancing"]
        if self.app.in_recovery:
            return ["recovering call state from the changelog"]
        refused = [*self.s3.refusals, *self.purger.s3.refusals]
        if refused:
            return [f"S3 refuses callvault's own buckets ({said}); the work waits until it is fixed"
                    for said in refused]  # fmt: skip
        return []

    def _readiness(self) -> list[str]:
        """What /readyz lists: the residency check first (it is about S3, so the gauge leaves it out)."""
        waiting = [self.residency.waiting_for] if self.residency.waiting_for else []
        return waiting + self.not_ready_because()

    def _notes(self) -> list[str]:
        """What /readyz shows beside its status: each client-policy file skipped, by tenant and why."""
        return [
            f"client policy of tenant {tenant_of(key)!r}: s3://{self.settings.metadata_bucket}/{key} is not "
            f"applied: {why}"
            for key, why in not_applied(self._policy_cache)
        ]

    async def _store_answers(self) -> None:
        await asyncio.to_thread(self.s3.s3.head_bucket, Bucket=self.settings.recordings_bucket)

    def _update_gauges(self) -> None:
        CALLS_WAITING.set(len(self.processor.wakes))
        SUBJECT_COMMANDS_WAITING.set(len(self.subject_lane))
        S3_REFUSED.set(len({*self.s3.refusals, *self.purger.s3.refusals}))
        WORKER_READY.set(0 if self.not_ready_because() else 1)
        CONSUMER_LAG.clear()
        if not self.app.started:
            return  # a scrape before the app starts must not be what creates its consumer
        consumer = self.app.consumer
        try:
            assigned = consumer.assignment()
        except Exception:  # noqa: BLE001 - not started yet: no partitions, no lag
            return
        for tp in assigned:
            if tp.topic not in self._agent_topics:
                continue  # changelogs are read, never committed: their "lag" would mean nothing
            # faust's own record of what it committed, filled from the broker on assignment;
            # nothing committed yet means the group starts from the beginning.
            committed = consumer._committed_offset.get(tp) or 0  # noqa: SLF001
            high = consumer.highwater(tp)
            if high is not None:  # known after the first fetch from that partition
                CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, high - committed))

    # -- agents ----------------------------------------------------------------------

    def _wire(self) -> None:
        app = self.app

        @app.agent(self.call_events, name="intake")
        async def intake(stream: faust.StreamT) -> None:
            if not self.settings.intake_one_hop:  # turned off: every event through `calls`
                async for event in stream.events():
                    await self._intake(event, frozenset())
                    self._took(event)
                return
            # As on `calls` (below): acked once the batch is done, a call's messages in order,
            # calls side by side. The events this worker may process here are processed here;
            # the others go round through `calls` (see _take_call_event).
            batches = stream.take_events(self.settings.batch_size, within=self.settings.batch_wait_s)
            async for events in batches:
                held = self._calls_partitions_held()
                by_call: dict[bytes, list[tuple[CallMessage, EventT]]] = {}
                for event in events:
                    message = await self._intake(event, held)
                    if message is not None:  # grouped by call id, as on `calls`: see stream/messages.py
                        by_call.setdefault(topic_key(message.call_id), []).append((message, event))
                await asyncio.gather(*(self._handle_in_order(group) for group in by_call.values()))
                for event in events:
                    self._took(event)

        @app.agent(self.calls, name="calls")
        async def calls(stream: faust.StreamT) -> None:
            # A batch is acked only after its body returns, so offsets still follow
            # the S3 writes. Within it, one call's messages run in order and
            # different calls run side by side.
            batches = stream.take_events(self.settings.batch_size, within=self.settings.batch_wait_s)
            async for events in batches:
                by_call: dict[bytes, list[EventT]] = {}
                for event in events:
                    by_call.setdefault(event.message.key or b"", []).append(event)
                await asyncio.gather(*(self._call_in_order(group) for group in by_call.values()))

        @app.timer(self.settings.tick_interval_s, on_leader=False)
        async def wake_due_calls() -> None:
            await self._wake_due()

        @app.timer(HOLDS_REFRESH_S, on_leader=False)
        async def refresh_registries() -> None:
            try:
                await self._read_registries()
            except Exception:  # noqa: BLE001 - the purger rereads holds itself; the next tick tries again
                log.exception("could not refresh the legal holds, objections and client policies")

        # The audit log copied into the audit bucket; a batch is acked after its segments are stored.
        @app.agent(self.lifecycle, name="audit")
        async def audit(stream: faust.StreamT) -> None:
            segments = stream.take_events(
                self.settings.audit_segment_records, within=self.settings.audit_flush_s
            )
            async for events in segments:
                by_partition: dict[int, list[LoggedRecord]] = {}
                for event in events:
                    msg = event.message
                    by_partition.setdefault(msg.partition, []).append(
                        LoggedRecord(
                            msg.partition,
                            msg.offset,
                            msg.key.decode("utf-8", "replace") if msg.key is not None else None,
                            msg.value.decode("utf-8", "replace") if msg.value is not None else "",
                        )
                    )
                for partition, records in sorted(by_partition.items()):
                    await self.audit.archive(partition, records)

        @app.agent(self.commands, name="commands")
        async def commands(stream: faust.StreamT) -> None:
            # Acknowledged by hand: a subject command is, once its lane has carried it out.
            try:
                async for event in stream.noack().events():
                    if await self._command(event):
                        event.ack()
            finally:
                await self.subject_lane.stop()

        # One leader purges at a time; a pass that outlasts the interval delays the next.
        @app.timer(self.settings.purge_interval_s, on_leader=True)
        async def purge() -> None:
            await self._purge()

        # The leader signs the audit chain's heads: a period can then be verified on its own.
        @app.timer(self.settings.audit_checkpoint_s, on_leader=True)
        async def checkpoint_audit() -> None:
            try:
                await self.audit.checkpoint()
            except Exception:  # noqa: BLE001 - the next tick signs again; the chain itself is intact
                log.exception("audit checkpoint failed")

        @app.on_partitions_assigned.connect
        async def _assigned(sender: Any, assigned: Any, **_: Any) -> None:
            self._wakes_stale = True
            self.audit.forget()

        # Assignment comes before the table is recovered from its changelog; a rebuild
        # then would miss every restored call. Recovery's end says to look again.
        @app.on_rebalance_complete.connect
        async def _recovered(sender: Any, **_: Any) -> None:
            self._wakes_stale = True
            if self._freeze_heap and not self._recovered_once:
                gc.freeze()
            self._recovered_once = True

    async def _read_registries(self) -> None:
        """Legal holds, objections and client policies, as the processor must know them.

        Also called by the processor before its first call (`registries`): a worker that
        has just started must not archive under the defaults, or for an objecting
        subject, in the seconds before the timer's first tick.
        """
        meta = self.settings.metadata_bucket
        if not self._profile_read:
            profile = await self.s3.run("reading what storage init measured", store_profile.load, meta)
            self.processor.learn_store(profile)
            self._profile_read = True
        self.processor.held_calls = await self.s3.run("reading legal holds", held_calls, meta)
        self.processor.objecting = set(
            await self.s3.run("reading objections", flagged_everywhere, meta, SubjectFlag.OBJECTING)
        )
        self.processor.closed_tenants = await self.s3.run("reading offboarded tenants", closed_tenants, meta)
        book = await self.s3.run(
            "reading client policies", load_book, meta, self._policy_cache, bounds=self.settings.policy_bounds
        )
        self.processor.policies = book
        POLICY_VERSIONS.set(sum(len(history) for history in book.values()))
        POLICY_VERSIONS_REFUSED.set(refused_count(self._policy_cache))

    async def _intake(self, event: EventT, held: frozenset[int]) -> CallMessage | None:
        """The event's message, if this agent is to process it; None once it is forwarded or refused.

        Raises for nothing about the event itself. faust restarts an agent that raises, and
        the message it was on counts as read: it would vanish with no dead letter. So
        anything unforeseen about an event becomes a dead letter. A broker failure is not
        the event's fault and is not dead-lettered: a good event must not be set aside
        because the broker blinked."""
        EVENTS_IN.labels(event.message.topic).inc()
        try:
            taken = await self._take_call_event(event, held)
        except KafkaError:
            raise
        except Exception as exc:  # noqa: BLE001 - see the docstring
            log.error("could not take in a call event: %s", where_it_failed(exc))
            taken = f"callvault could not take in this call event ({type(exc).__name__})"
        if isinstance(taken, str):
            await self.dead_letter(taken, event)
            return None
        return taken

    async def _take_call_event(self, event: EventT, held: frozenset[int]) -> str | CallMessage | None:
        """Decode one call event: the sentence if it is refused; its message if this worker holds its
        call's `calls` partition (and so its state: it is processed here, a hop saved); else None,
        once forwarded to `calls` for whoever holds that partition.

        Forwarding is what a producer's own partitioner needs (Java's murmur2 and librdkafka's crc32
        place a call differently): a call event may sit on any partition. Keyed as callvault keys
        `calls`, on a topic of as many partitions, it sits on its call's own, and takes no hop.
        """
        msg = event.message
        result = decode_call_event(
            msg.key, msg.value, self.settings.max_event_bytes, source_buckets=self.settings.upload_buckets
        )
        if isinstance(result, Rejected):
            return result.error
        call_event = result.value
        if call_event.tenant in self.processor.closed_tenants:
            return offboarded_sentence(call_event.tenant)
        message = CallMessage(
            kind="fact",
            call_id=call_event.call_id,
            fact=to_fact(call_event, self._pseudonym_key),
            published_at=published_at(msg.timestamp),
        )
        if calls_partition(call_event.call_id, self.settings.partitions) in held:
            return message
        await self.calls.send(
            key=topic_key(call_event.call_id), value=message.model_dump_json(exclude_none=True).encode()
        )
        return None

    def _calls_partitions_held(self) -> frozenset[int]:
        """The `calls` partitions this worker holds now: their calls' states are here.

        None at all when `calls` has not as many partitions as callvault places states by
        (a topic made by hand): then every event goes round, as `calls` itself places it.
        """
        topic = self.settings.calls_topic
        if self.app.consumer.topic_partitions(topic) != self.settings.partitions:
            return frozenset()
        return frozenset(tp.partition for tp in self.app.consumer.assignment() if tp.topic == topic)

    async def _call_in_order(self, events: list[EventT]) -> None:
        readable: list[tuple[CallMessage, EventT]] = []
        for event in events:
            try:
                readable.append((CallMessage.model_validate_json(event.message.value), event))
            except Exception as exc:  # noqa: BLE001 - one bad message must not stop the others (see _intake)
                log.error("could not read a message of call %r: %s", event.message.key, where_it_failed(exc))
                await self.dead_letter(f"callvault could not read this message ({type(exc).__name__})", event)
        await self._handle_in_order(readable)

    async def _handle_in_order(self, messages: list[tuple[CallMessage, EventT]]) -> None:
        """A call's messages of one batch, in order; what fails becomes a dead letter of the event that
        brought it, and the others go on."""
        failures = await self.processor.handle_batch([message for message, _ in messages])
        for index, exc in failures:
            message, event = messages[index]
            if isinstance(exc, TenantConflict):
                await self.dead_letter(str(exc), event)
                continue
            log.error("could not process a message of call %r: %s", message.call_id, where_it_failed(exc))
            await self.dead_letter(f"callvault could not process this message ({type(exc).__name__})", event)

    def _hold_changed(self, ref: str, held: bool) -> None:
        if held:
            self.processor.held_calls.add(ref)
        else:
            self.processor.held_calls.discard(ref)

    def _objection_added(self, tenant_subject: str) -> None:
        self.processor.objecting.add(tenant_subject)

    async def _command(self, event: EventT) -> bool:
        """Admit a command and carry it out; False when it went to the subject lane instead, which
        acknowledges it once done (`stream/command_lane.py`): a hold never waits behind a subject's
        lookup of the whole index."""
        msg = event.message
        EVENTS_IN.labels(msg.topic).inc()
        decoded = decode_with(command_adapter, msg.value, "command", self.settings.max_event_bytes)
        if isinstance(decoded, Rejected):
            await self.dead_letter(decoded.error, event)
            return True
        try:
            admitted = await self.command_gate.admit(msg.value, decoded.value, msg.partition, msg.offset)
            if isinstance(admitted, Refusal):
                log.warning("command refused (%s): %s", admitted.reason, admitted.sentence)
                now = self.clock.now()
                await self.emit([refused_event(decoded.value, admitted, msg.partition, msg.offset, now)])
                await self.dead_letter(admitted.sentence, event)
                return True
            await self.emit(
                [accepted_event(msg.value, admitted, msg.partition, msg.offset, self.clock.now())]
            )
        except Exception as exc:  # noqa: BLE001 - one bad command must not stop the others (see _intake)
            await self._not_carried_out(exc, event)
            return True
        if is_subject_command(admitted):
            await self.subject_lane.put(admitted, event)
            return False
        await self._carry_out(admitted, event)
        return True

    async def _carry_out(self, command: Command, event: EventT) -> None:
        try:
            await self.command_handler.handle(command)
        except Exception as exc:  # noqa: BLE001 - one bad command must not stop the others (see _intake)
            await self._not_carried_out(exc, event)

    async def _not_carried_out(self, exc: Exception, event: EventT) -> None:
        """A command refused (its sentence) or failed (its kind, logged where): a dead letter says so."""
        if isinstance(exc, CommandRefused):
            await self.dead_letter(str(exc), event)
            return
        log.error("could not carry out a command: %s", where_it_failed(exc))
        await self.dead_letter(f"callvault could not carry out this command ({type(exc).__name__})", event)

    async def _purge(self) -> None:
        try:
            report = await self.purger.run_pass()
        except Exception:  # noqa: BLE001 - the next pass tries again; the journal keeps it whole
            log.exception("purge pass failed")
            PURGE_PASSES.labels("failed").inc()
            return
        PURGE_PASSES.labels("done").inc()
        if report.deleted or report.failed or report.recovered:
            log.info(
                "purge pass: %d deleted, %d kept by legal holds, %d failed, %d finished from the journal",
                len(report.deleted),
                len(report.held),
                len(report.failed),
                report.recovered,
            )

    def _took(self, event: EventT) -> None:
        msg = event.message
        self.input.took(msg.tp, msg.offset, msg.timestamp)

    def _input_mark(self, now: datetime) -> datetime | None:
        """How far this worker has taken in `call-events` (`stream.input_mark`); None while it cannot tell
        (joining, recovering, or a partition behind with nothing taken from it yet)."""
        if self.app.rebalancing or self.app.in_recovery:
            return None
        consumer = self.app.consumer
        topic = self.settings.call_events_topic
        committed = consumer._committed_offset  # noqa: SLF001 - faust's record of its commits (see _update_gauges)
        try:
            held = [tp for tp in consumer.assignment() if tp.topic == topic]
            parts = {tp: self.input.progress(tp, consumer.highwater(tp), committed.get(tp)) for tp in held}
        except Exception:  # noqa: BLE001 - not started, or a partition taken away meanwhile: nothing known
            return None
        mark = input_mark(now, parts.values())
        behind = mark is None or now - mark > INPUT_LAG_SAID
        if behind != self._input_behind:  # said once each way, and only for a lag worth an operator's eye
            self._input_behind = behind
            if behind:
                where = sorted(
                    f"{tp.topic}[{tp.partition}] at {p.next_offset} of {p.end}"
                    for tp, p in parts.items()
                    if p.end is None or p.next_offset < p.end
                )
                log.info("deadlines wait until the input is read up to them: %s", ", ".join(where))
            else:
                log.info("the input is read to its end: deadlines are judged by the clock")
        return mark

    async def _wake_due(self) -> None:
        if self._wakes_stale and not self.app.rebalancing and not self.app.in_recovery:
            self._wakes_stale = False
            count = self.processor.rebuild_wakes()
            log.info("tracking %d calls waiting for a deadline", count)
        now = self.clock.now()
        # A deadline is judged only once the input sent before it has been taken in.
        mark = self._input_mark(now)
        if mark is None:
            return
        resend_after = timedelta(seconds=max(10.0, 10 * self.settings.tick_interval_s))
        for key, due in list(self.processor.wakes.items()):
            if due > mark:
                continue
            sent = self._wake_sent.get(key)
            if sent is not None and now - sent < resend_after:
                continue
            self._wake_sent[key] = now
            partition_key, wake = wake_message(key)
            await self.calls.send(key=partition_key, value=wake.model_dump_json(exclude_none=True).encode())
        for key in [k for k in self._wake_sent if k not in self.processor.wakes]:
            del self._wake_sent[key]


def run_worker(settings: Settings) -> None:
    """Run the worker in the foreground until SIGINT/SIGTERM."""
    settings.check_production_ready()
    said = logging.getLogger("callvault.worker")
    for notice in (settings.plaintext_notice(), settings.encryption_notice()):
        if notice is not None:
            said.warning("%s", notice)
    if not settings.trusted_command_keys:
        said.warning(
            "CALLVAULT_COMMAND_KEYS names no key: every command (holds, subject requests) will be refused "
            "until it names whoever may issue them (`callvault keys new NAME`)"
        )
    worker = Worker(settings, freeze_heap=True)
    structured = settings.log_format == "json"
    faust_worker = faust.Worker(
        worker.app,
        worker.health,  # a service started before the app: probes answer while it joins and recovers
        worker.residency,  # checks where the buckets are while the app joins; S3 waits for it
        loglevel=settings.log_level.upper(),
        quiet=True,
        logging_config=logging_config("json", settings.log_level) if structured else None,
    )
    faust_worker.execute_from_commandline()
