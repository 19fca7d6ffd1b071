"""Commands on `commands`: written by the CLI or the API, carried out by the worker.

A participant is named by pseudonym only; whoever writes a command pseudonymizes
the phone number first (see `callvault.rules.pseudonym`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from callvault.contract.base import ContractModel
from callvault.contract.fields import CallId, Tenant, Timestamp


class CommandBase(ContractModel):
    event_id: uuid.UUID
    requested_by: Annotated[str, Field(min_length=1, max_length=256)] = Field(
        description="who the sender says asked; the worker replaces it with the verified key's name"
    )
    requested_at: Timestamp
    reason: Annotated[str, Field(min_length=1, max_length=2000)]
    # Additive (2026-12-02): the proof of who sent it (see callvault.rules.command_signature).
    signed_by: Annotated[str, Field(max_length=256)] | None = Field(
        default=None, description="the name of the key that signed the command (CALLVAULT_COMMAND_KEYS)"
    )
    signature: Annotated[str, Field(max_length=256)] | None = Field(
        default=None, description="Ed25519, hex, over the canonical JSON of the command without `signature`"
    )
    on_behalf_of: Annotated[str, Field(min_length=1, max_length=256)] | None = Field(
        default=None, description="the person a signing service (the API) sent it for: the token's subject"
    )


class _HoldCommand(CommandBase):
    call_id: CallId
    tenant: Tenant | None = Field(
        default=None,
        description="the call's tenant; needed only to hold a call that has nothing archived yet",
    )


class LegalHoldPlace(_HoldCommand):
    type: Literal["legal_hold.place"] = "legal_hold.place"


class LegalHoldRelease(_HoldCommand):
    type: Literal["legal_hold.release"] = "legal_hold.release"


class SubjectCommandBase(CommandBase):
    subject: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="HMAC pseudonym")]
    tenant: Tenant
    verified_by: str | None = Field(
        default=None, description="who verified the requester's identity (outside callvault)"
    )
    # Additive (v1.1): the deadline runs from when the controller received the request,
    # which may be days before anyone typed the command.
    received_at: Timestamp | None = Field(
        default=None, description="when the request reached the controller; `requested_at` if absent"
    )

    # Additive (2026-12-06): the subject is an agent (`subject` their id's pseudonym): see `subject.erase`.
    agent: bool = Field(
        default=False,
        description="the subject is an agent: an erasure removes their id from the calls' metadata (the "
        "recordings follow their own term), an objection refuses later recordings of their calls",
    )
    # Additive (2026-12-06): the requester's identity still to be checked; see `SubjectVerifyIdentity`.
    identity_pending: bool = Field(
        default=False,
        description="filed before the requester's identity was checked: not carried out, and its month "
        "not running, until `subject.verify_identity`",
    )

    @property
    def request_received_at(self) -> datetime:
        return self.received_at or self.requested_at


class SubjectAccess(SubjectCommandBase):
    type: Literal["subject.access"] = "subject.access"
    # Additive (2026-12-06): portability (GDPR art. 20).
    format: Literal["standard", "portable"] = Field(
        default="standard",
        description="portable: each call as a published schema's JSON and a manifest of SHA-256s",
    )
    deliver_to: Annotated[str, Field(pattern=r"^s3://[a-z0-9.-]{3,63}(/.*)?$")] | None = Field(
        default=None,
        description="another organisation's bucket (s3://bucket/prefix) to send the export to",
    )


class SubjectRectify(SubjectCommandBase):
    """Additive (2026-12-06): a correction or a completion of one call's metadata (see
    `callvault.rules.rectification` for the fields). The corrected value or the subject's statement is
    not in the command (nor, so, in `command.accepted` and the audit log): the request's registry entry
    holds it, and the command signs its HMAC under the tenant's pseudonym key, which the worker checks."""

    type: Literal["subject.rectify"] = "subject.rectify"
    call_id: CallId
    field: Literal["participants.caller", "participants.callee", "agent_id", "queue", "language"]
    value_digest: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = Field(
        default=None, description="HMAC of the corrected value (a participant's: of its pseudonym)"
    )
    statement_digest: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = Field(
        default=None, description="HMAC of the subject's supplementary statement"
    )


class SubjectErase(SubjectCommandBase):
    type: Literal["subject.erase"] = "subject.erase"


class SubjectRestrict(SubjectCommandBase):
    type: Literal["subject.restrict"] = "subject.restrict"


class SubjectUnrestrict(SubjectCommandBase):
    type: Literal["subject.unrestrict"] = "subject.unrestrict"


class SubjectObject(SubjectCommandBase):
    type: Literal["subject.object"] = "subject.object"


class SubjectExtend(CommandBase):
    """Additive (v1.1): a request found complex or numerous gets up to 3 months in all."""

    type: Literal["subject.extend"] = "subject.extend"
    request_id: uuid.UUID = Field(description="the `event_id` of the subject command to extend")
    tenant: Tenant
    # Additive (2026-12-06): the subject must be told of an extension, and why, within the first month.
    notified_on: Timestamp | None = Field(
        default=None, description="when the subject was told of the extension; `requested_at` if absent"
    )


class SubjectVerifyIdentity(CommandBase):
    """Additive (2026-12-06): the identity check a request filed with `identity_pending` waited for is
    done; the request's month runs from `verified_at`, and the worker carries it out."""

    type: Literal["subject.verify_identity"] = "subject.verify_identity"
    request_id: uuid.UUID = Field(
        description="the `event_id` of the subject command whose identity was checked"
    )
    tenant: Tenant
    verified_by: Annotated[str, Field(min_length=1, max_length=256)] = Field(
        description="who checked the requester's identity (outside callvault)"
    )
    verified_at: Timestamp | None = Field(
        default=None, description="when the identity was checked; `requested_at` if absent"
    )


class SubjectExecute(CommandBase):
    """Additive (2026-12-06): a request forwarded to a processor tenant's client, carried out now that
    the client (the controller) instructs it."""

    type: Literal["subject.execute"] = "subject.execute"
    request_id: uuid.UUID = Field(description="the `event_id` of the forwarded request")
    tenant: Tenant
    instructed_by: Annotated[str, Field(min_length=1, max_length=256)] = Field(
        description="who at the client instructed it, and how (a ticket, a letter)"
    )


Command = Annotated[
    LegalHoldPlace
    | LegalHoldRelease
    | SubjectAccess
    | SubjectErase
    | SubjectRestrict
    | SubjectUnrestrict
    | SubjectObject
    | SubjectRectify
    | SubjectExtend
    | SubjectVerifyIdentity
    | SubjectExecute,
    Field(discriminator="type"),
]
command_adapter: TypeAdapter[Command] = TypeAdapter(Command)

SubjectRequest = (
    SubjectAccess | SubjectErase | SubjectRestrict | SubjectUnrestrict | SubjectObject | SubjectRectify
)
