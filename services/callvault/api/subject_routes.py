"""The DPO's routes: file a data-subject request, follow it, extend it, fetch its export.

The same steps as `callvault subject`: the number is pseudonymized at once
(`stream.subject_client`), the request recorded with its deadline and sent on
`commands`; the worker carries it out. Answers are 202 with the request, whose
status the DPO then follows. Only the `dpo` role, and only in its tenants.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from callvault.api.deps import GrantDep, Refused, Services, SvcDep
from callvault.api.sites import check_site, site_refusal_for
from callvault.contract.commands import Command, SubjectExecute, SubjectExtend, SubjectVerifyIdentity
from callvault.contract.fields import TENANT_PATTERN, Timestamp
from callvault.contract.lifecycle import AccessedWhat
from callvault.rules import evidence
from callvault.rules.access import Grant, Want
from callvault.rules.subject_requests import RequestRecord, days_left, is_overdue, new_record, open_requests
from callvault.storage.subject_requests import get_request, list_requests, put_request
from callvault.stream.command_client import CannotSign, submit_command
from callvault.stream.subject_client import (
    BadRequest,
    export_link,
    export_link_expiry,
    subject_command,
    with_values,
)


class NewRequest(BaseModel):
    kind: Literal["access", "erase", "restrict", "unrestrict", "object", "rectify"]
    phone: str | None = Field(
        None, description="the participant's number, E.164; pseudonymized at once, never stored"
    )
    agent: str | None = Field(None, description="in place of a number: the subject is an agent, by their id")
    tenant: str = Field(pattern=TENANT_PATTERN)
    reason: str = Field(min_length=1, max_length=2000, description="the request as received")
    verified_by: str | None = Field(None, description="who verified the requester's identity")
    received_at: Timestamp | None = Field(None, description="when it reached you; the deadline runs from it")
    format: Literal["standard", "portable"] = Field(
        "standard", description="an access request's export: portable = published JSON schema, SHA-256s"
    )
    deliver_to: str | None = Field(None, description="a portable export also sent to s3://BUCKET/PREFIX")
    call_id: str | None = Field(None, description="a rectification's call")
    field: str | None = Field(None, description="a rectification's field (see `callvault subject rectify`)")
    value: str | None = Field(
        None, description="a correction's value (a participant's: E.164, pseudonymized)"
    )
    statement: str | None = Field(None, description="a completion's statement")
    identity_pending: bool = Field(
        False,
        description="the identity is still to be checked: not carried out, its month not running, until "
        "POST .../identity-verified",
    )


class Extension(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, description="why the request is complex or numerous")
    notified_on: Timestamp | None = Field(None, description="when the subject was told of it; now if absent")


class Instruction(BaseModel):
    instructed_by: str = Field(
        min_length=1, max_length=256, description="who at the client instructed it, how"
    )


class IdentityCheck(BaseModel):
    verified_by: str = Field(min_length=1, max_length=256, description="who checked the requester's identity")
    verified_at: Timestamp | None = Field(None, description="when; now if absent")


class RequestView(BaseModel):
    request_id: str
    kind: str
    subject: str = Field(description="the pseudonym; the number is never kept")
    tenant: str
    received_at: datetime
    due_at: datetime
    days_left: float
    overdue: bool
    status: str
    extended_reason: str | None
    verified_by: str | None
    identity_pending: bool = Field(description="filed before the requester's identity was checked")
    identity_verified_at: datetime | None
    forwarded_to: str | None = Field(description="a processor tenant's contact the request was passed to")
    instructed_by: str | None = Field(description="who at the client instructed a forwarded request")
    requested_by: str
    refusal: str | None
    outcome: dict[str, Any] | None
    export_link: str | None = Field(None, description="download link of an access request's export")


def _view(record: RequestRecord, now: datetime, link: str | None = None) -> RequestView:
    return RequestView(
        **record.model_dump(
            include={
                "request_id",
                "kind",
                "subject",
                "tenant",
                "received_at",
                "due_at",
                "extended_reason",
                "verified_by",
                "identity_pending",
                "identity_verified_at",
                "forwarded_to",
                "instructed_by",
                "requested_by",
                "refusal",
                "outcome",
            }  # fmt: skip
        ),
        days_left=round(days_left(record, now), 2),
        overdue=is_overdue(record, now),
        status=record.status.value,
        export_link=link,
    )


def _dpo_of(grant: Grant, tenant: str | None) -> None:
    if not grant.may(Want.SUBJECT_REQUESTS):
        raise Refused(403, f"the role {grant.role.value!r} may not handle data-subject requests")
    if tenant is not None and not grant.sees(tenant):
        raise Refused(403, f"your token does not cover tenant {tenant!r}")


TenantPath = Annotated[str, PathParam(pattern=TENANT_PATTERN)]
RequestPath = Annotated[uuid.UUID, PathParam(description="the request id")]


def install(app: FastAPI) -> None:
    @app.post("/api/v1/subject-requests", status_code=202, response_model=RequestView, tags=["subjects"],
              summary="File a data-subject request (dpo)")  # fmt: skip
    async def file(request: Request, body: NewRequest, grant: GrantDep, svc: SvcDep) -> RequestView:
        _dpo_of(grant, body.tenant)
        await check_site(svc, request, grant, body.tenant, None, "subject_request")
        now = svc.clock.now()
        asked = None
        if body.kind == "rectify":
            asked = {
                "call_id": body.call_id,
                "field": body.field,
                "value": body.value,
                "statement": body.statement,
            }
        try:
            command = subject_command(
                svc.settings,
                body.kind,
                body.phone or "",
                body.tenant,
                command_id=uuid.uuid4(),
                requested_by=grant.subject,
                reason=body.reason,
                verified_by=body.verified_by,
                received_at=body.received_at,
                now=now,
                on_behalf_of=grant.subject,  # the command is signed by the API's own key
                identity_pending=body.identity_pending,
                export_format=body.format,
                deliver_to=body.deliver_to,
                rectify=asked,
                agent=body.agent,
            )
            record = with_values(
                svc.settings, new_record(command, svc.settings.zone, svc.settings.identity_check), asked
            )
        except BadRequest as exc:
            raise Refused(422, str(exc)) from None
        meta = svc.settings.metadata_bucket
        await svc.reader.runner.run("recording the request", put_request, meta, record)
        await _send(svc, command)
        return _view(record, now)

    @app.get("/api/v1/subject-requests", response_model=list[RequestView], tags=["subjects"],
             summary="Requests with their deadlines (dpo); open ones unless all=true")  # fmt: skip
    async def listing(
        grant: GrantDep,
        svc: SvcDep,
        tenant: Annotated[str | None, Query(pattern=TENANT_PATTERN)] = None,
        all: bool = False,  # noqa: A002 - the query parameter's name
    ) -> list[RequestView]:
        _dpo_of(grant, tenant)
        meta = svc.settings.metadata_bucket
        records = await svc.reader.runner.run("listing requests", list_requests, meta, tenant)
        readable = {t: await site_refusal_for(svc, grant, t) is None for t in {r.tenant for r in records}}
        mine = [r for r in records if grant.sees(r.tenant) and readable[r.tenant]]  # as a search does
        shown = sorted(mine, key=lambda r: r.due_at) if all else open_requests(mine)
        now = svc.clock.now()
        return [_view(r, now) for r in shown]

    @app.get("/api/v1/subject-requests/{tenant}/{request_id}", response_model=RequestView, tags=["subjects"],
             summary="One request; an access request's export link once fulfilled (dpo)")  # fmt: skip
    async def one(
        request: Request,
        tenant: TenantPath,
        request_id: RequestPath,
        grant: GrantDep,
        svc: SvcDep,
        purpose: Annotated[
            str,
            Query(min_length=3, max_length=200, description="why the export's link is handed out; logged"),
        ] = "answering the access request",
    ) -> RequestView:
        record = await _filed(svc, request, grant, tenant, request_id, "export")
        now = svc.clock.now()
        outcome = record.outcome or {}
        link = None
        if outcome.get("export_uri"):
            expires = datetime.fromisoformat(outcome["export_expires_at"])
            uri = outcome["export_uri"]
            link = await svc.reader.runner.run("signing a link", export_link, svc.settings, uri, expires, now)
            if link is not None:  # handing it out is an access: logged first, as for a call
                await svc.access.record(
                    evidence.export_accessed(
                        record,
                        accessed_by=grant.subject,
                        role=grant.role.value,
                        purpose=purpose,
                        link_expires_at=export_link_expiry(svc.settings, expires, now),
                        handout_id=request.state.request_id,
                        api_request_id=request.state.request_id,
                        now=now,
                    )
                )
        return _view(record, now, link)

    @app.post("/api/v1/subject-requests/{tenant}/{request_id}/extend", status_code=202,
              response_model=RequestView, tags=["subjects"],
              summary="Extend an open request to 3 months after receipt, once (dpo)")  # fmt: skip
    async def extend(
        request: Request, tenant: TenantPath, request_id: RequestPath, body: Extension, grant: GrantDep,
        svc: SvcDep,
    ) -> RequestView:  # fmt: skip
        record = await _filed(svc, request, grant, tenant, request_id)
        if not record.is_open:
            raise Refused(409, f"request {request_id} is already fulfilled")
        about = _about_request(svc, grant, tenant, request_id, body.reason)
        await _send(svc, SubjectExtend(**about, notified_on=body.notified_on))
        return _view(record, svc.clock.now())

    @app.post("/api/v1/subject-requests/{tenant}/{request_id}/execute", status_code=202,
              response_model=RequestView, tags=["subjects"],
              summary="Carry out a forwarded request on the client's instruction (dpo)")  # fmt: skip
    async def execute(
        request: Request, tenant: TenantPath, request_id: RequestPath, body: Instruction, grant: GrantDep,
        svc: SvcDep,
    ) -> RequestView:  # fmt: skip
        record = await _filed(svc, request, grant, tenant, request_id)
        if record.forwarded_to is None:
            raise Refused(409, f"request {request_id} was not forwarded to a client: callvault answers it")
        about = _about_request(svc, grant, tenant, request_id, "the client's instruction")
        await _send(svc, SubjectExecute(**about, instructed_by=body.instructed_by))
        return _view(record, svc.clock.now())

    @app.post("/api/v1/subject-requests/{tenant}/{request_id}/identity-verified", status_code=202,
              response_model=RequestView, tags=["subjects"],
              summary="The identity is checked: its month starts, it is carried out (dpo)")  # fmt: skip
    async def identity_verified(
        request: Request, tenant: TenantPath, request_id: RequestPath, body: IdentityCheck, grant: GrantDep,
        svc: SvcDep,
    ) -> RequestView:  # fmt: skip
        record = await _filed(svc, request, grant, tenant, request_id)
        if not record.awaiting_identity:
            raise Refused(409, f"request {request_id} does not wait for an identity check")
        about = _about_request(svc, grant, tenant, request_id, "identity verified")
        await _send(
            svc, SubjectVerifyIdentity(**about, verified_by=body.verified_by, verified_at=body.verified_at)
        )
        return _view(record, svc.clock.now())


async def _filed(
    svc: Services,
    request: Request,
    grant: Grant,
    tenant: str,
    request_id: uuid.UUID,
    what: AccessedWhat = "subject_request",
) -> RequestRecord:
    """A filed request a DPO reads or acts on: the role, the tenant and the reader's site checked (a
    refusal logged as reading `what`), then the request read."""
    _dpo_of(grant, tenant)
    await check_site(svc, request, grant, tenant, None, what)
    return await _record(svc, tenant, request_id)


def _about_request(
    svc: Services, grant: Grant, tenant: str, request_id: uuid.UUID, reason: str
) -> dict[str, Any]:
    """What every command on a filed request carries: new id, the token's subject, now, the reason."""
    return {
        "event_id": uuid.uuid4(),
        "requested_by": grant.subject,
        "requested_at": svc.clock.now(),
        "reason": reason,
        "request_id": request_id,
        "tenant": tenant,
        "on_behalf_of": grant.subject,
    }


async def _send(svc: Services, command: Command) -> None:
    """Signed with the API's own key (CALLVAULT_COMMAND_SIGNING_KEY), for the token's subject."""
    try:
        await submit_command(svc.settings, command, 0)
    except CannotSign as exc:
        raise Refused(503, f"the API cannot send commands: {exc}") from None


async def _record(svc: Services, tenant: str, request_id: uuid.UUID) -> RequestRecord:
    meta = svc.settings.metadata_bucket
    record = await svc.reader.runner.run("reading the request", get_request, meta, tenant, str(request_id))
    if record is None:
        raise Refused(404, f"no subject request {request_id} in tenant {tenant!r}")
    return record
