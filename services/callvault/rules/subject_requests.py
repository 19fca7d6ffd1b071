"""Data-subject requests and their deadlines: pure, no I/O.

The privacy statement answers every request within 1 month of its receipt, or
of the additional identity check where one was needed, extendable to 3 months
in all for complex or numerous requests (GDPR art. 12(3)). Months are calendar
months in the controller's zone, clamped like retention (31 January + 1 month =
28/29 February). A request is *open* until it is fulfilled; an open request
past its deadline is *overdue*.

A request filed with its requester's identity still to be checked waits: it is
not carried out, and its one-month clock does not run. Its `due_at` meanwhile
is the date by which the check itself must be done (`CALLVAULT_IDENTITY_CHECK_MAX`
after receipt), so a check left lying shows as overdue like any deadline. Once
the identity is verified, the month runs from that moment.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from callvault.contract.commands import SubjectRequest
from callvault.contract.fields import Tenant
from callvault.rules.durations import CalendarDuration, add_duration

ANSWER_WITHIN = CalendarDuration(months=1)
EXTENDED_AT_MOST = CalendarDuration(months=3)
RequestKind = Literal["access", "erase", "restrict", "unrestrict", "object", "rectify"]


class RequestStatus(StrEnum):
    RECEIVED = "received"  # recorded; the worker has not finished it yet
    FULFILLED = "fulfilled"
    REFUSED = "refused"  # the worker could not carry it out; a person must act
    FORWARDED = "forwarded"  # the client is the controller: passed to it, carried out on its instruction


class RequestRecord(BaseModel):
    """One request as the registry keeps it; the subject by pseudonym only."""

    request_id: str
    kind: RequestKind
    subject: str
    tenant: Tenant
    received_at: datetime
    due_at: datetime
    requested_by: str
    on_behalf_of: str | None = None
    verified_by: str | None = None
    reason: str
    status: RequestStatus = RequestStatus.RECEIVED
    extended_reason: str | None = None
    extended_by: str | None = None
    extended_on_behalf_of: str | None = None
    fulfilled_at: datetime | None = None
    refusal: str | None = None
    outcome: dict[str, Any] | None = Field(None, description="the lifecycle event that answered it")
    # Additive (2026-12-06): the identity check, where one was needed (see the module's docstring).
    identity_pending: bool = False
    agent: bool = False  # the subject is an agent (their id's pseudonym), not a caller or callee
    identity_verified_at: datetime | None = None
    extension_notified_on: datetime | None = None  # when the subject was told of the extension
    forwarded_to: str | None = None  # a processor tenant's contact, the request passed to it
    export_format: Literal["standard", "portable"] = "standard"  # an access request's
    deliver_to: str | None = None  # an access request's export sent there too (s3://bucket/prefix)
    # A rectification's: the call, the field and the digests the command signed; and, written by the
    # DPO's tools beside them, the corrected value (a participant's as its pseudonym) or the statement.
    # Only here, in the registry, which the DPO and the worker read: never on a topic.
    rectify: dict[str, str | None] | None = None
    instructed_by: str | None = None  # who at the client instructed a forwarded request carried out

    @property
    def is_open(self) -> bool:
        return self.status is not RequestStatus.FULFILLED

    @property
    def awaiting_identity(self) -> bool:
        """Filed before the requester's identity was checked, and not checked yet: not to be carried out."""
        return self.identity_pending and self.identity_verified_at is None

    @property
    def clock_started_at(self) -> datetime:
        """Where the answer's month counts from: receipt, or the identity check that was needed."""
        return self.identity_verified_at or self.received_at


def new_record(
    command: SubjectRequest, zone: ZoneInfo, identity_check_max: CalendarDuration
) -> RequestRecord:
    """The registry entry a new request starts as; its deadline runs from receipt, or (identity
    pending) its identity check is due `identity_check_max` after receipt."""
    received = command.request_received_at
    pending = command.identity_pending
    return RequestRecord(
        request_id=str(command.event_id),
        kind=command.type.removeprefix("subject."),  # type: ignore[arg-type]
        subject=command.subject,
        tenant=command.tenant,
        received_at=received,
        due_at=add_duration(received, identity_check_max, zone) if pending else due_at(received, zone),
        requested_by=command.requested_by,
        on_behalf_of=command.on_behalf_of,
        verified_by=command.verified_by,
        reason=command.reason,
        identity_pending=pending,
        agent=command.agent,
        export_format=getattr(command, "format", "standard"),
        deliver_to=getattr(command, "deliver_to", None),
        rectify=(
            {
                name: getattr(command, name)
                for name in ("call_id", "field", "value_digest", "statement_digest")
            }
            if command.type == "subject.rectify"
            else None
        ),
    )


def due_at(received_at: datetime, zone: ZoneInfo) -> datetime:
    return add_duration(received_at, ANSWER_WITHIN, zone)


def latest_due_at(received_at: datetime, zone: ZoneInfo) -> datetime:
    return add_duration(received_at, EXTENDED_AT_MOST, zone)


class IdentityRefused(ValueError):
    """An identity check the rules do not take; the message says why."""


def verify_identity(record: RequestRecord, by: str, at: datetime, zone: ZoneInfo) -> RequestRecord:
    """The request with its requester's identity checked at `at`: its month runs from then."""
    if not record.identity_pending:
        raise IdentityRefused(
            f"request {record.request_id} was not filed with its identity pending; its deadline runs "
            "from receipt"
        )
    if record.identity_verified_at is not None:
        raise IdentityRefused(
            f"request {record.request_id}'s identity was verified already, "
            f"at {record.identity_verified_at:%Y-%m-%d}"
        )
    if at < record.received_at:
        raise IdentityRefused("an identity cannot be verified before the request was received")
    return record.model_copy(
        update={"identity_verified_at": at, "verified_by": by, "due_at": due_at(at, zone)}
    )


class ExtensionRefused(ValueError):
    """An extension the rules do not allow; the message says why."""


def extend(
    record: RequestRecord, reason: str, by: str, zone: ZoneInfo, on_behalf_of: str | None = None
) -> RequestRecord:
    """The request with its deadline moved to 3 months after receipt (or after its identity check)."""
    if not record.is_open:
        raise ExtensionRefused(f"request {record.request_id} is already fulfilled")
    if record.awaiting_identity:
        raise ExtensionRefused(
            f"request {record.request_id} waits for its identity check, and its clock is not running yet"
        )
    if record.extended_reason is not None:
        raise ExtensionRefused(
            f"request {record.request_id} was already extended to {record.due_at:%Y-%m-%d}; "
            "3 months after receipt is the most the law allows"
        )
    return record.model_copy(
        update={
            "due_at": latest_due_at(record.clock_started_at, zone),
            "extended_reason": reason,
            "extended_by": by,
            "extended_on_behalf_of": on_behalf_of,
        }
    )


def days_left(record: RequestRecord, now: datetime) -> float:
    """Days until the deadline; negative once it has passed."""
    return (record.due_at - now).total_seconds() / 86400


def is_overdue(record: RequestRecord, now: datetime) -> bool:
    """Past its deadline and not answered; a forwarded request's deadline is the client's, not ours."""
    return record.is_open and record.status is not RequestStatus.FORWARDED and now > record.due_at


def open_requests(records: Iterable[RequestRecord]) -> list[RequestRecord]:
    """Open requests, the nearest deadline first."""
    return sorted((r for r in records if r.is_open), key=lambda r: (r.due_at, r.request_id))
