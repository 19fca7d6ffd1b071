"""The internal `calls` topic: validated, pseudonymized facts and wake-ups.

A call's state lives with the worker that holds the call's partition of this
topic (`calls_partition`, Kafka's default partitioner on the call id). The
intake forwards call events here, re-keyed with callvault's own partitioner,
whatever partitioner the platform's producer used: only those of calls its
worker does not hold, as it processes the others itself (every one with
`CALLVAULT_INTAKE_ONE_HOP=false`); the timer's wake-ups come here too.

A call is (tenant, call_id): the table keeps each call's state under
`{tenant}/{call_id}`, and every message names both. The topic is still
partitioned by the call id alone, as `call-events` is: the calls of two tenants
that share an id then meet on one partition (in order, never side by side), and
a call whose state an older version kept under its bare id is still found on
the partition it lives on, so an upgrade loses no call in flight.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from aiokafka.partitioner import murmur2
from pydantic import BaseModel, ConfigDict

from callvault.contract.call_events import CallEvent, CallStarted
from callvault.rules.call_ref import call_ref, parse_call_ref
from callvault.rules.call_state import CallFact, StartFacts
from callvault.rules.pseudonym import agent_pseudonym, pseudonymize


class CallMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["fact", "wake"]
    call_id: str
    fact: CallFact | None = None
    tenant: str | None = None  # a wake-up's call; None for one kept under an older version's key
    # When the platform's event reached Kafka (its record's timestamp): the time a fact is judged at,
    # so a deadline is never judged passed on input the worker had not read yet (a backlog after a
    # restart). None for wake-ups (sent only once the input is read that far: `input_mark`) and for
    # messages of an older version.
    published_at: datetime | None = None

    @property
    def call_tenant(self) -> str | None:
        return self.fact.tenant if self.fact is not None else self.tenant

    @property
    def state_key(self) -> bytes:
        """Where the call-state table keeps this message's call: `{tenant}/{call_id}`."""
        tenant = self.call_tenant
        if tenant is None:
            return self.call_id.encode()  # a wake-up of a call an older version keyed by its id
        return call_ref(tenant, self.call_id).encode()


def topic_key(call_id: str) -> bytes:
    """The `calls` topic's key: the call id, as producers key `call-events` (see above)."""
    return call_id.encode()


def calls_partition(call_id: str, partitions: int) -> int:
    """The `calls` partition of a call: what the producer's default partitioner (Kafka's murmur2,
    as aiokafka and the Java client compute it) makes of `topic_key(call_id)`."""
    return (murmur2(topic_key(call_id)) & 0x7FFFFFFF) % partitions


def state_partition(state_key: bytes, partitions: int) -> int:
    """The changelog partition of a call's state: the number of the call's `calls` partition.

    faust recovers, for each partition of `calls` a worker holds, the changelog partition of
    that number, and nothing else: a state kept anywhere else would be missing after a rebalance.
    The state key is `{tenant}/{call_id}`, or the bare id an older version used; either way the
    call id decides, as it decides the `calls` partition.
    """
    text = state_key.decode()
    ref = parse_call_ref(text)
    return calls_partition(text if ref is None else ref.call_id, partitions)


def wake_message(state_key: bytes) -> tuple[bytes, CallMessage]:
    """The topic key and wake-up for the call the table keeps under `state_key`."""
    text = state_key.decode()
    ref = parse_call_ref(text)
    if ref is None:  # kept by an older version under the bare id
        return topic_key(text), CallMessage(kind="wake", call_id=text)
    return topic_key(ref.call_id), CallMessage(kind="wake", call_id=ref.call_id, tenant=ref.tenant)


def to_fact(event: CallEvent, key: bytes) -> CallFact:
    """Strip personal data: phone numbers become pseudonyms before leaving `call-events`."""
    if isinstance(event, CallStarted):
        return StartFacts(
            event_id=str(event.event_id),
            call_id=event.call_id,
            tenant=event.tenant,
            occurred_at=event.occurred_at,
            direction=event.direction,
            caller=pseudonymize(key, event.tenant, event.caller),
            callee=pseudonymize(key, event.tenant, event.callee),
            agent_id=event.agent_id,
            agent=agent_pseudonym(key, event.tenant, event.agent_id),
            language=event.language,
            queue=event.queue,
        )
    return event
