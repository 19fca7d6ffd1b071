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
    SubjectRequest,
    SubjectRestrict,
    SubjectUnrestrict,
)
from callvault.contract.explain import describe_errors
from callvault.contract.fields import E164, Tenant
from callvault.rules.pseudonym import pseudonymize
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
) -> SubjectRequest:
    if kind not in KINDS:
        raise BadRequest(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    for adapter, value, name in ((_tenant, tenant, "tenant"), (_phone, phone, "phone")):
        try:
            adapter.validate_python(value)
        except ValidationError as exc:
            # `from None`, and only the messages: the number stays out of tracebacks and answers.
            raise BadRequest(describe_errors(exc.errors(include_url=False), lambda _, n=name: n)) from None
    if received_at is not None and received_at > now:
        raise BadRequest("received_at: a request cannot be received in the future")
    subject = pseudonymize(settings.pseudonym_key.get_secret_value().encode(), tenant, phone)
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
        )
    except ValidationError as exc:
        raise BadRequest(describe_errors(exc.errors(include_url=False))) from None


async def file_request(
    settings: Settings, command: SubjectRequest, wait_s: float
) -> tuple[RequestRecord, dict[str, Any] | str | None]:
    """Record the request, send it, and (if `wait_s`) wait for the worker's answer."""
    record = new_record(command, settings.zone, settings.identity_check)

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
