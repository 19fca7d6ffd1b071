"""The internal `calls` topic: validated, pseudonymized facts and wake-ups, keyed by call_id.

The intake re-keys every call event onto this topic with callvault's own
partitioner, so the call-state table is co-partitioned with it whatever
partitioner the platform's producer used; and the timer's wake-ups pass through
the same agent as the events, so every state change happens in one place.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from callvault.contract.call_events import CallEvent, CallStarted
from callvault.rules.call_state import CallFact, StartFacts
from callvault.rules.pseudonym import pseudonymize


class CallMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["fact", "wake"]
    call_id: str
    fact: CallFact | None = None


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
            language=event.language,
        )
    return event
