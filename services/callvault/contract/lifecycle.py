"""Lifecycle events: callvault's own output on `lifecycle`, the audit log.

Ids are deterministic (see `callvault.contract.base.deterministic_id`): the same
input replayed gives the same ids, so a consumer dedupes on `event_id`.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter

from callvault.contract.base import ContractModel
from callvault.contract.fields import CallId, Sha256Hex, Tenant, Timestamp
from callvault.contract.roles import Role

RejectReason = Literal[
    "disclosure_missing",
    "objected",
    "checksum_mismatch",
    "source_missing",
    "retention_elapsed",
    "source_unreadable",  # additive (2026-12-01): the store refuses the source for good
    "recording_not_allowed",  # additive (2026-12-01): the tenant's client policy forbids recording
    "card_data_exposed",  # additive (2026-12-06): a payment window outside a recording pause
    "pause_not_silent",  # additive (2026-12-06): the audio of a recording pause is not silent
]
# Additive (2026-12-02): why a command does not count (see callvault.rules.command_signature).
CommandRefusalReason = Literal["unsigned", "unknown_key", "bad_signature", "replayed", "too_old"]
# "contract_end": additive (2026-12-01), the client's data erased at the end of its contract.
# "card_data_exposed": additive (2026-12-06), a late payment event showed card data in an archived recording.
DeletionReason = Literal[
    "retention_elapsed", "erasure_request", "objection", "contract_end", "card_data_exposed"
]


class ObjectRef(ContractModel):
    bucket: str
    key: str
    sha256: Sha256Hex
    size_bytes: Annotated[int, Field(ge=0)]
    version_id: str | None = None


class LifecycleBase(ContractModel):
    event_id: uuid.UUID
    call_id: CallId
    tenant: Tenant
    occurred_at: Timestamp


class DisclosureVerified(LifecycleBase):
    type: Literal["disclosure.verified"] = "disclosure.verified"
    recording_event_id: uuid.UUID
    disclosure_event_id: uuid.UUID
    prompt_id: str
    played_at: Timestamp
    recording_started_at: Timestamp


class DisclosureMissing(LifecycleBase):
    type: Literal["disclosure.missing"] = "disclosure.missing"
    recording_event_id: uuid.UUID
    recording_started_at: Timestamp
    detail: Literal["no_disclosure", "disclosure_incomplete", "disclosure_after_recording_start"]
    waited_s: Annotated[float, Field(ge=0, description="how long callvault waited for one")]


def _policy_known() -> Any:
    return Field(
        None,
        ge=0,
        description="additive (2026-12-05): the newest version of the tenant's policy the worker had read "
        "when it dated the object (0: none); a newer one in force then dates it instead",
    )


def _policy_version() -> Any:
    return Field(
        None,
        ge=1,
        description="additive (2026-12-01): the client-policy version that dated it; none: the defaults",
    )


def _queue(when: str) -> Any:
    return Field(None, description=f"additive (2026-12-01): the call's queue, if known {when}")


def _stored_sha256() -> Any:
    return Field(
        None,
        description="SHA-256 of the stored bytes, sealed under the client's key (object.sha256 stays the "
        "plaintext's); absent: stored unsealed",
    )


def _key_id() -> Any:
    return Field(None, description="the KMS key that wrapped the object's data key; absent: stored unsealed")


class RecordingArchived(LifecycleBase):
    type: Literal["recording.archived"] = "recording.archived"
    recording_event_id: uuid.UUID
    object: ObjectRef
    source_uri: str
    recording_started_at: Timestamp
    expires_at: Timestamp
    policy_version: int | None = _policy_version()
    policy_known: int | None = _policy_known()
    queue: str | None = _queue("at archive")
    stored_sha256: Sha256Hex | None = _stored_sha256()
    key_id: str | None = _key_id()


class RecordingRejected(LifecycleBase):
    type: Literal["recording.rejected"] = "recording.rejected"
    recording_event_id: uuid.UUID
    reason: RejectReason
    detail: str = Field(description="a sentence for a person")
    source_uri: str
    source_deleted: bool


class PausedSpan(ContractModel):
    """A recording pause: on the clock, and where it lies in the audio (milliseconds from its start)."""

    started_at: Timestamp
    ended_at: Timestamp
    mode: Literal["silence", "skip"]
    audio_start_ms: Annotated[int, Field(ge=0)]
    audio_end_ms: Annotated[int, Field(ge=0)]
    resumed: bool = Field(description="false: never resumed, the pause ran to the recording's end")


class PaymentWindow(ContractModel):
    started_at: Timestamp
    ended_at: Timestamp


class PaymentSecured(LifecycleBase):
    """Additive (2026-12-06): an archived recording spans payments, each inside a pause, its audio checked."""

    type: Literal["payment.secured"] = "payment.secured"
    recording_event_id: uuid.UUID
    recording_started_at: Timestamp
    recording_ended_at: Timestamp
    pauses: list[PausedSpan]
    windows: list[PaymentWindow]
    margin_s: Annotated[float, Field(ge=0, description="how far each pause reached beyond each window")]
    audio_checked: bool = Field(
        description="false: a format judged by the events alone (`detail` says which)"
    )
    loudest_paused_dbfs: float | None = Field(
        description="the loudest 100 ms window of the paused audio, in dBFS (-120: digital silence)"
    )
    silence_threshold_dbfs: float
    detail: str = Field(description="a sentence for a person")


class MetadataArchived(LifecycleBase):
    type: Literal["metadata.archived"] = "metadata.archived"
    object: ObjectRef
    call_started_at: Timestamp
    expires_at: Timestamp
    policy_version: int | None = _policy_version()
    policy_known: int | None = _policy_known()
    queue: str | None = _queue("when written")
    stored_sha256: Sha256Hex | None = _stored_sha256()
    key_id: str | None = _key_id()


class ObjectDeleted(LifecycleBase):
    """The proof that every version of an archived object is gone; each data class names its own type."""

    object: ObjectRef
    due_at: Timestamp
    deleted_at: Timestamp
    lateness_s: float
    reason: DeletionReason
    versions_deleted: Annotated[int, Field(ge=0)] = 0
    policy_version: int | None = _policy_version()


class RecordingDeleted(ObjectDeleted):
    type: Literal["recording.deleted"] = "recording.deleted"


class MetadataDeleted(ObjectDeleted):
    type: Literal["metadata.deleted"] = "metadata.deleted"


class DeletionRefused(LifecycleBase):
    """Additive (2026-12-02): the store refused to delete an object that is due (an object-lock hold set
    outside callvault, a bucket policy). Sent once per object and streak of refused passes: its
    `passes` is then 1; the purger tries again every pass, and a later success is proven as usual."""

    type: Literal["deletion.refused"] = "deletion.refused"
    bucket: str
    key: str
    version_id: str = Field(description="the object's newest version the purger asked the store to delete")
    retention_class: str
    due_at: Timestamp
    answer: str = Field(description="what the store answered (its code and message)")
    first_refused_at: Timestamp
    passes: Annotated[int, Field(ge=1)] = Field(description="purge passes refused in this streak so far")


class RecordingAccessed(LifecycleBase):
    type: Literal["recording.accessed"] = "recording.accessed"
    accessed_by: str
    role: Role
    purpose: str
    what: Literal["audio", "metadata"] = "audio"
    # Additive (v1.1): the grant the access was made under, so an audit can check it.
    token_id: str | None = Field(None, description="the `jti` of the token used")
    granted_tenants: list[str] | None = Field(None, description="the tenants the token allowed ('*': all)")
    request_id: str | None = Field(None, description="the API request, as in its access log")
    client_request_id: str | None = Field(
        None, description="additive (2026-12-01): a trusted proxy's X-Request-ID, kept apart from callvault's"
    )
    site: str | None = Field(None, description="additive (2026-12-01): the reader's processing site")
    site_country: str | None = Field(None, description="additive (2026-12-01): that site's ISO 3166 country")


# What a refused read asked for: a call's audio or metadata, a search, or (additive, 2026-12-05) a
# data-subject request of the tenant or its export.
AccessedWhat = Literal["audio", "metadata", "search", "subject_request", "export"]


class RecordingAccessRefused(ContractModel):
    """Additive (2026-12-01): a read refused for the reader's site. Keyed by call, else by tenant."""

    type: Literal["recording.access_refused"] = "recording.access_refused"
    event_id: uuid.UUID
    call_id: CallId | None = Field(None, description="the call asked for; none for a search")
    tenant: Tenant
    occurred_at: Timestamp
    what: AccessedWhat
    accessed_by: str
    role: Role
    site: str | None
    site_country: str | None
    reason: str = Field(description="why, in a sentence")
    token_id: str | None = None
    request_id: str | None = None


class LegalHoldPlaced(LifecycleBase):
    type: Literal["legal_hold.placed"] = "legal_hold.placed"
    command_id: uuid.UUID
    requested_by: str = Field(description="the name of the key that signed the command")
    on_behalf_of: str | None = Field(None, description="additive (2026-12-02): for whom the API sent it")
    reason: str


class LegalHoldReleased(LifecycleBase):
    type: Literal["legal_hold.released"] = "legal_hold.released"
    command_id: uuid.UUID
    requested_by: str = Field(description="the name of the key that signed the command")
    on_behalf_of: str | None = Field(None, description="additive (2026-12-02): for whom the API sent it")
    reason: str


class CommandAccepted(ContractModel):
    """Additive (2026-12-05): a command the worker verified and carries out, as it was sent, signature
    included, so an auditor holding the public keys can check it again and tie each hold and subject
    request to the command that caused it. Keyed by its tenant, if any."""

    type: Literal["command.accepted"] = "command.accepted"
    event_id: uuid.UUID
    occurred_at: Timestamp
    command_id: str = Field(description="the command's `event_id`")
    command_type: str
    tenant: Tenant | None = None
    signed_by: str = Field(description="the name of the key that signed it (verified)")
    command: dict[str, Any] = Field(
        description="the command as sent: its fields, `signed_by` and `signature`"
    )


class CommandRefusedEvent(ContractModel):
    """Additive (2026-12-02): a command that does not count, and why. Keyed by its tenant, if any.

    Named `...Event` beside `callvault.stream.command_errors.CommandRefused`, the exception.
    """

    type: Literal["command.refused"] = "command.refused"
    event_id: uuid.UUID
    occurred_at: Timestamp
    command_id: str = Field(description="the command's `event_id`")
    command_type: str
    tenant: Tenant | None = None
    claimed_signer: str | None = Field(description="the `signed_by` it came with, if any (unverified)")
    reason: CommandRefusalReason
    detail: str = Field(description="why, in a sentence")


class PolicyChanged(ContractModel):
    """Additive (2026-12-01): a new version of a tenant's client policy. Keyed on `lifecycle` by tenant."""

    type: Literal["policy.changed"] = "policy.changed"
    event_id: uuid.UUID
    tenant: Tenant
    occurred_at: Timestamp
    version: Annotated[int, Field(ge=1)]
    changes: dict[str, Any] = Field(description="what this version changed (`queue` names a queue rule)")
    changed_by: str
    reason: str
    effective_at: Timestamp
    policy: dict[str, Any] = Field(description="the whole policy as it stands from `effective_at`")


class PolicyCancelled(ContractModel):
    """Additive (2026-12-02): a pending client-policy version cancelled before it took effect (issue 32).

    The version `replaced_by` (proven by its own `policy.changed`) takes effect at the cancelled
    one's instant with what stood before it, so the cancelled version is never in force.
    Keyed on `lifecycle` by tenant.
    """

    type: Literal["policy.cancelled"] = "policy.cancelled"
    event_id: uuid.UUID
    tenant: Tenant
    occurred_at: Timestamp
    version: Annotated[int, Field(ge=1)] = Field(description="the version cancelled")
    effective_at: Timestamp = Field(description="when the cancelled version would have taken effect")
    replaced_by: Annotated[int, Field(ge=1)] = Field(
        description="the version that restores what stood before"
    )
    cancelled_by: str
    reason: str


class _TenantEvent(ContractModel):
    """Additive (2026-12-01): what was done with a whole client's data. Keyed on `lifecycle` by tenant."""

    event_id: uuid.UUID
    tenant: Tenant
    occurred_at: Timestamp
    requested_by: str
    reason: str


class TenantReturned(_TenantEvent):
    type: Literal["tenant.returned"] = "tenant.returned"
    destination: str = Field(description="where the data went: s3://bucket/prefix, the client's")
    counts: dict[str, int] = Field(description="files returned by data class")
    manifest_sha256: Sha256Hex = Field(description="SHA-256 of manifest.json, which lists each file's")


class TenantErased(_TenantEvent):
    type: Literal["tenant.erased"] = "tenant.erased"
    counts: dict[str, int] = Field(description="objects (every version) erased by kind")
    held_calls: list[CallId] = Field(default_factory=list, description="calls a legal hold keeps; left")


class TenantKeyDestroyed(_TenantEvent):
    """Additive (2026-12-06, issue 29): the client's KMS key scheduled for destruction after its erasure:
    from then on nothing sealed under it opens, a replica or a restored old version included."""

    type: Literal["tenant.key_destroyed"] = "tenant.key_destroyed"
    key_id: str = Field(description="the KMS key's ARN")
    deletion_date: Timestamp = Field(description="when the KMS destroys it (its pending window ends)")


class ObjectSealed(LifecycleBase):
    """Additive (2026-12-06, issue 29): an object archived before sealing, sealed in place by
    `callvault storage encrypt-existing`: a new version under the client's key, the old one removed.
    The log names every version that holds data, so `audit verify-store` knows the new one."""

    type: Literal["object.sealed"] = "object.sealed"
    object: ObjectRef = Field(description="the new, sealed version (sha256: its plaintext's, unchanged)")
    replaced_version_ids: list[str] = Field(description="the unsealed versions it replaces, removed")
    stored_sha256: Sha256Hex = Field(description="SHA-256 of the stored, sealed bytes")
    key_id: str = Field(description="the KMS key that wraps its data key")


class TenantEnabled(_TenantEvent):
    """An offboarded tenant taken on again: its events are accepted from now."""

    type: Literal["tenant.enabled"] = "tenant.enabled"


class SubjectEventBase(ContractModel):
    """Subject-rights outcomes name the subject by pseudonym, never by number."""

    event_id: uuid.UUID
    subject: str
    tenant: Tenant
    occurred_at: Timestamp
    request_id: uuid.UUID
    calls: Annotated[int, Field(ge=0)] = 0
    recordings: Annotated[int, Field(ge=0)] = 0
    metadata: Annotated[int, Field(ge=0)] = 0
    instructed_by: str | None = Field(
        None,
        description="additive (2026-12-06): a forwarded request, carried out on the client's instruction",
    )


class SubjectAccessFulfilled(SubjectEventBase):
    type: Literal["subject.access_fulfilled"] = "subject.access_fulfilled"
    export_uri: str | None = None
    export_expires_at: Timestamp | None = None
    export_format: Literal["standard", "portable"] = Field("standard", description="additive (2026-12-06)")
    delivered_to: str | None = Field(
        None, description="additive (2026-12-06): see `subject.export_delivered`"
    )


class SubjectErased(SubjectEventBase):
    type: Literal["subject.erased"] = "subject.erased"
    held_calls: list[CallId] = Field(default_factory=list)


class SubjectRestricted(SubjectEventBase):
    type: Literal["subject.restricted"] = "subject.restricted"


class SubjectUnrestricted(SubjectEventBase):
    type: Literal["subject.unrestricted"] = "subject.unrestricted"


class SubjectObjected(SubjectEventBase):
    type: Literal["subject.objected"] = "subject.objected"
    held_calls: list[CallId] = Field(
        default_factory=list, description="additive (v1.1): calls whose recordings a legal hold kept"
    )


# Additive (v1.1): a request's deadline is in the audit log, so a replay can tell
# an answered request from an overdue one without any other source.
class SubjectRequestReceived(SubjectEventBase):
    type: Literal["subject.request_received"] = "subject.request_received"
    kind: Literal["access", "erase", "restrict", "unrestrict", "object", "rectify"]
    received_at: Timestamp
    due_at: Timestamp = Field(
        description="the answer's deadline; with `identity_pending`, the identity check's (2026-12-06)"
    )
    requested_by: str = Field(description="the name of the key that signed the command")
    on_behalf_of: str | None = Field(None, description="additive (2026-12-02): for whom the API sent it")
    verified_by: str | None = None
    reason: str
    identity_pending: bool = Field(
        False,
        description="additive (2026-12-06): waits for `subject.identity_verified`; its month not running",
    )


class SubjectIdentityVerified(SubjectEventBase):
    """Additive (2026-12-06): the identity check a request waited for is done; its month runs from now."""

    type: Literal["subject.identity_verified"] = "subject.identity_verified"
    verified_by: str
    verified_at: Timestamp
    due_at: Timestamp = Field(description="the answer's deadline: 1 month after `verified_at`")
    requested_by: str = Field(description="the name of the key that signed the command")


class SubjectRequestExtended(SubjectEventBase):
    type: Literal["subject.request_extended"] = "subject.request_extended"
    due_at: Timestamp = Field(description="the new deadline, at most 3 months after receipt")
    requested_by: str = Field(description="the name of the key that signed the command")
    on_behalf_of: str | None = Field(None, description="additive (2026-12-02): for whom the API sent it")
    reason: str


class SubjectRectified(SubjectEventBase):
    """Additive (2026-12-06): a call's metadata corrected or completed at the subject's request. Never the
    values: the field, the document's new version, a digest of what it said before."""

    type: Literal["subject.rectified"] = "subject.rectified"
    call_id: CallId
    field: str
    document_version: str | None = Field(description="the metadata document's version that holds it")
    previous_digest: str | None = Field(
        None, description="HMAC pseudonym of the previous value (the tenant's key); None for a completion"
    )
    statement_added: bool = False
    recipients: list[str] = Field(
        default_factory=list,
        description="earlier exports of the subject's data (their request ids, and where one was delivered), "
        "whom the DPO tells of the correction (art. 19)",
    )


class SubjectForwarded(SubjectEventBase):
    """Additive (2026-12-06): a request on the calls of a tenant whose data callvault processes for the
    client (policy `role: processor`) is not carried out but passed to the client, the controller, who
    answers the subject and whose deadline it is; `subject.execute` carries it out on its instruction."""

    type: Literal["subject.forwarded"] = "subject.forwarded"
    kind: Literal["access", "erase", "restrict", "unrestrict", "object", "rectify"]
    contact: str = Field(description="where the client takes its subjects' requests (its policy's contact)")


class SubjectExportDelivered(SubjectEventBase):
    """Additive (2026-12-06): a portable export sent, as the subject asked, to another organisation."""

    type: Literal["subject.export_delivered"] = "subject.export_delivered"
    export_uri: str = Field(description="the export in callvault's exports bucket")
    delivered_to: str = Field(description="s3://bucket/key it was copied to")
    sha256: Sha256Hex = Field(description="of the ZIP as delivered")
    size_bytes: Annotated[int, Field(ge=0)]


class SubjectExtensionNotified(SubjectEventBase):
    """Additive (2026-12-06): when the subject was told of the extension (and why), which the law wants
    within the first month; the replay flags an extension without it."""

    type: Literal["subject.extension_notified"] = "subject.extension_notified"
    notified_on: Timestamp
    due_at: Timestamp = Field(description="the extended deadline the subject was told")


class SubjectExportDeleted(SubjectEventBase):
    """The copy made for an access request, erased when its short life ends."""

    type: Literal["subject.export_deleted"] = "subject.export_deleted"
    export_uri: str
    due_at: Timestamp
    deleted_at: Timestamp


class SubjectExportAccessed(SubjectEventBase):
    """Additive (2026-12-01): a download link to an export was handed out.

    The export holds every recording of a person: handing out its link is an
    access like opening a call, with who, why and through which request.
    """

    type: Literal["subject.export_accessed"] = "subject.export_accessed"
    accessed_by: str
    role: str | None = Field(None, description="the API token's role; None from the command line")
    purpose: str
    export_uri: str
    link_expires_at: Timestamp
    api_request_id: str | None = Field(None, description="callvault's id of the API request, if any")


LifecycleEvent = Annotated[
    DisclosureVerified
    | PaymentSecured
    | DisclosureMissing
    | RecordingArchived
    | RecordingRejected
    | MetadataArchived
    | RecordingDeleted
    | MetadataDeleted
    | RecordingAccessed
    | LegalHoldPlaced
    | LegalHoldReleased
    | SubjectAccessFulfilled
    | SubjectErased
    | SubjectRestricted
    | SubjectUnrestricted
    | SubjectObjected
    | SubjectRequestReceived
    | SubjectRequestExtended
    | SubjectIdentityVerified
    | SubjectExtensionNotified
    | SubjectForwarded
    | SubjectRectified
    | SubjectExportDelivered
    | SubjectExportDeleted
    | SubjectExportAccessed
    | PolicyChanged
    | PolicyCancelled
    | DeletionRefused
    | RecordingAccessRefused
    | TenantReturned
    | TenantErased
    | TenantKeyDestroyed
    | ObjectSealed
    | TenantEnabled
    | CommandAccepted
    | CommandRefusedEvent,
    Field(discriminator="type"),
]
lifecycle_adapter: TypeAdapter[LifecycleEvent] = TypeAdapter(LifecycleEvent)
