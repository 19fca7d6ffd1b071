"""Filing a data-subject request: what the CLI and the API share.

The phone number is turned into the tenant's pseudonym here, before anything
is written anywhere; the number itself goes no further than this function.
The request is recorded in the registry (so its deadline shows even if no
worker is running), then sent on `commands`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from botocore.client import BaseClient
from pydantic import TypeAdapter, ValidationError

from callvault.contract.commands import (
    SubjectAccess,
    SubjectErase,
    SubjectObject,
    SubjectRectify,
    SubjectRequest,
    SubjectRestrict,
    SubjectUnrestrict,
)
from callvault.contract.explain import describe_errors
from callvault.contract.fields import E164, Tenant
from callvault.rules.pseudonym import agent_pseudonym, pseudonymize
from callvault.rules.subject_requests import RequestRecord, new_record
from callvault.settings import Settings
from callvault.storage.client import make_s3_client
from callvault.storage.exports import presign
from callvault.storage.subject_requests import put_request
from callvault.stream.command_client import submit_command

KINDS: dict[str, type[SubjectRequest]] = {
    "access": SubjectAccess,
    "erase": SubjectErase,
    "restrict": SubjectRestrict,
    "unrestrict": SubjectUnrestrict,
    "object": SubjectObject,
    "rectify": SubjectRectify,
}
_phone: TypeAdapter[str] = TypeAdapter(E164)
_tenant: TypeAdapter[str] = TypeAdapter(Tenant)


class BadRequest(ValueError):
    """The request cannot be filed; the message names the field and never repeats the number."""


def subject_command(
    settings: Settings,
    kind: str,
    phone: str,
    tenant: str,
    *,
    command_id: Any,
    requested_by: str,
    reason: str,
    verified_by: str | None,
    received_at: datetime | None,
    now: datetime,
    on_behalf_of: str | None = None,
    identity_pending: bool = False,
    export_format: str = "standard",
    deliver_to: str | None = None,
    rectify: dict[str, str | None] | None = None,
    agent: str | None = None,
) -> SubjectRequest:
    """The command for a request; a phone number (the subject's, and a rectified participant's) goes no
    further than here: it becomes the tenant's pseudonym. `rectify`: call_id, field, value or statement."""
    if kind not in KINDS:
        raise BadRequest(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    if kind != "access" and (export_format != "standard" or deliver_to is not None):
        raise BadRequest("a format and a recipient belong to an access request")
    if deliver_to is not None and export_format != "portable":
        raise BadRequest("--deliver-to sends a portable export: give --format portable too")
    extra: dict[str, Any] = {"format": export_format, "deliver_to": deliver_to} if kind == "access" else {}
    if (kind == "rectify") != (rectify is not None):
        raise BadRequest("a rectification names a call and a field, and only a rectification does")
    if agent is not None and (phone or kind in ("rectify",)):
        raise BadRequest("an agent is named by --agent in place of a number, on access, erase, restrict, "
                         "unrestrict and object")  # fmt: skip
    if agent is not None and not (0 < len(agent) <= 64):
        raise BadRequest("agent: an agent id of 1 to 64 characters")
    checks = [(_tenant, tenant, "tenant")] + ([] if agent is not None else [(_phone, phone, "phone")])
    for adapter, value, name in checks:
        try:
            adapter.validate_python(value)
        except ValidationError as exc:
            # `from None`, and only the messages: the number stays out of tracebacks and answers.
            raise BadRequest(describe_errors(exc.errors(include_url=False), lambda _, n=name: n)) from None
    if received_at is not None and received_at > now:
        raise BadRequest("received_at: a request cannot be received in the future")
    key = settings.pseudonym_key.get_secret_value().encode()
    subject = agent_pseudonym(key, tenant, agent) if agent is not None else pseudonymize(key, tenant, phone)
    if rectify is not None:  # the values stay in the registry; the command signs their HMAC
        extra = {"call_id": rectify.get("call_id"), "field": rectify.get("field")}
        for name, text in rectify_values(settings, tenant, rectify).items():
            extra[f"{name}_digest"] = pseudonymize(key, tenant, text) if text is not None else None
    try:
        return KINDS[kind](
            event_id=command_id,
            requested_by=requested_by,
            requested_at=now,
            reason=reason,
            subject=subject,
            tenant=tenant,
            verified_by=verified_by,
            received_at=received_at,
            on_behalf_of=on_behalf_of,
            identity_pending=identity_pending,
            agent=agent is not None,
            **extra,
        )
    except ValidationError as exc:
        raise BadRequest(describe_errors(exc.errors(include_url=False))) from None


def rectify_values(settings: Settings, tenant: str, rectify: dict[str, str | None]) -> dict[str, str | None]:
    """What the registry keeps of a rectification: the corrected value (a participant's number as its
    pseudonym) or the statement."""
    value = rectify.get("value")
    if value is not None and str(rectify.get("field", "")).startswith("participants."):
        try:
            _phone.validate_python(value)
        except ValidationError:
            raise BadRequest("value: a participant is corrected to an E.164 number (+32470123456)") from None
        value = pseudonymize(settings.pseudonym_key.get_secret_value().encode(), tenant, value)
    return {"value": value, "statement": rectify.get("statement")}


def with_values(
    settings: Settings, record: RequestRecord, rectify: dict[str, str | None] | None
) -> RequestRecord:
    """The registry entry with a rectification's values beside the digests its command signs."""
    if rectify is None or record.rectify is None:
        return record
    return record.model_copy(
        update={"rectify": {**record.rectify, **rectify_values(settings, record.tenant, rectify)}}
    )


async def file_request(
    settings: Settings, command: SubjectRequest, wait_s: float, rectify: dict[str, str | None] | None = None
) -> tuple[RequestRecord, dict[str, Any] | str | None]:
    """Record the request (a rectification's values in the registry only), send it, and (if `wait_s`)
    wait for the worker's answer."""
    record = with_values(settings, new_record(command, settings.zone, settings.identity_check), rectify)

    def put() -> None:  # building a boto3 client blocks too: both off the loop
        put_request(make_s3_client(settings, attempts=2), settings.metadata_bucket, record)

    await asyncio.to_thread(put)
    return record, await submit_command(settings, command, wait_s)


def export_link(
    s3: BaseClient, settings: Settings, export_uri: str, expires_at: datetime, now: datetime
) -> str | None:
    """A download link for an export, never valid past the export itself; None once it expired."""
    left = int((expires_at - now).total_seconds())
    if left <= 0:
        return None
    bucket, _, key = export_uri.removeprefix("s3://").partition("/")
    if bucket != settings.exports_bucket:
        raise ValueError(f"an export lies in the exports bucket {settings.exports_bucket!r}, not {bucket!r}")
    return presign(s3, bucket, key, min(settings.export_link_s, left))


def export_link_expiry(settings: Settings, expires_at: datetime, now: datetime) -> datetime:
    """When a link handed out now stops working: its own life, never past the export's."""
    return min(expires_at, now + timedelta(seconds=settings.export_link_s))
