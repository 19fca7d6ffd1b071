"""The DPO's routes for client policies: read what applies to a tenant, its history, change it, and
cancel a version still pending.

The same steps as `callvault policy` (`stream.policy_changes`): a change is a
new version, stored beside the legal holds, the backstop kept in step, and
`policy.changed` on `lifecycle`. Changing is the DPO's alone; auditors read.
Only in the tenants the token names.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import FastAPI
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from callvault.api.deps import GrantDep, Refused, Services, SvcDep
from callvault.contract.fields import TENANT_PATTERN, Timestamp
from callvault.rules.access import Grant, Want
from callvault.rules.client_policy import (
    QUEUE_PATTERN,
    Payments,
    PolicyRefused,
    PolicyVersion,
    Scope,
    kms_key_at,
    pending_versions,
    terms_at,
    version_at,
)
from callvault.rules.data_classes import data_classes
from callvault.storage import policies
from callvault.stream.policy_changes import CALLVAULT_KEY, cancel_policy, change_kms_key, change_policy

TenantPath = Annotated[str, PathParam(pattern=TENANT_PATTERN)]


class PolicyChange(BaseModel):
    terms: dict[str, str] = Field(
        default_factory=dict, description='data class -> ISO 8601 duration, e.g. {"recording": "P7D"}'
    )
    queue: str | None = Field(None, pattern=QUEUE_PATTERN, description="a rule for this queue of the tenant")
    grace: str | None = Field(None, description="how long to wait for a disclosure, e.g. PT2M")
    recording_allowed: bool | None = Field(None, description="false: every recording is rejected")
    payments: Payments | None = Field(
        None,
        description="forbidden: a recording spanning any payment window is rejected (additive, 2026-12-06)",
    )
    reason: str = Field(min_length=1, max_length=2000, description="the contract clause or instruction")
    effective_at: Timestamp | None = Field(None, description="when it takes effect; now if absent")


class KeyChange(BaseModel):
    kms_key: str = Field(
        min_length=1, max_length=2048,
        description="the client's own KMS key's ARN (arn:aws:kms:REGION:ACCOUNT:key/ID, in an allowed "
        "region), or `callvault` for callvault's key for the tenant again (additive, 2026-12-06)",
    )  # fmt: skip
    reason: str = Field(min_length=1, max_length=2000, description="the contract clause or instruction")


class PolicyCancel(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, description="why the pending version is cancelled")


class ScopeView(BaseModel):
    scope: str = Field(description="`tenant`, or `queue <name>`")
    terms: dict[str, str]
    grace_s: float
    recording_allowed: bool
    payments_forbidden: bool = False


class PolicyView(BaseModel):
    tenant: str
    version: int | None = Field(description="the version in force; none: the defaults apply")
    kms_key: str | None = Field(
        None, description="the client's own KMS key new objects are sealed under; none: callvault's key"
    )
    scopes: list[ScopeView]
    pending: list[PolicyVersion] = Field(
        description="versions that take effect later: for each later instant, the one that will stand"
    )


def _may(grant: Grant, tenant: str, change: bool) -> None:
    want = Want.POLICIES if change else Want.POLICY_READ
    if not grant.may(want):
        verb = "change" if change else "read"
        raise Refused(403, f"the role {grant.role.value!r} may not {verb} client policies")
    if not grant.sees(tenant):
        raise Refused(403, f"your token does not cover tenant {tenant!r}")


async def _history(svc: Services, tenant: str) -> list[PolicyVersion]:
    meta = svc.settings.metadata_bucket
    return await svc.reader.runner.run("reading the policy", policies.history, meta, tenant)


def _view(tenant: str, history: list[PolicyVersion], now: datetime, svc: Services) -> PolicyView:
    current = version_at(history, now)
    scopes = []
    for queue in [None, *sorted(current.queues)] if current else [None]:
        terms = terms_at(history, queue, now, svc.settings.policy_defaults)
        scopes.append(
            ScopeView(
                scope="tenant" if queue is None else f"queue {queue}",
                terms={c.name: str(terms.retention.duration_for(c.name)) for c in data_classes()},
                grace_s=terms.grace.total_seconds(),
                recording_allowed=terms.recording_allowed,
                payments_forbidden=terms.payments_forbidden,
            )
        )
    return PolicyView(
        tenant=tenant,
        version=current.version if current else None,
        kms_key=kms_key_at(history, now),
        scopes=scopes,
        pending=pending_versions(history, now),
    )


def install(app: FastAPI) -> None:
    @app.get("/api/v1/policies/{tenant}", response_model=PolicyView, tags=["policies"],
             summary="What applies to a tenant now, scope by scope (dpo, auditor)")  # fmt: skip
    async def show(tenant: TenantPath, grant: GrantDep, svc: SvcDep) -> PolicyView:
        _may(grant, tenant, change=False)
        return _view(tenant, await _history(svc, tenant), svc.clock.now(), svc)

    @app.get("/api/v1/policies/{tenant}/history", response_model=list[PolicyVersion], tags=["policies"],
             summary="Every version of a tenant's policy (dpo, auditor)")  # fmt: skip
    async def history(tenant: TenantPath, grant: GrantDep, svc: SvcDep) -> list[PolicyVersion]:
        _may(grant, tenant, change=False)
        return await _history(svc, tenant)

    @app.post("/api/v1/policies/{tenant}", status_code=201, response_model=PolicyVersion, tags=["policies"],
              summary="A new version of a tenant's policy, proven by policy.changed (dpo)")  # fmt: skip
    async def change(tenant: TenantPath, body: PolicyChange, grant: GrantDep, svc: SvcDep) -> PolicyVersion:
        _may(grant, tenant, change=True)
        scope = Scope(
            terms=body.terms,
            grace=body.grace,
            recording_allowed=body.recording_allowed,
            payments=body.payments,
        )
        try:
            return await change_policy(
                svc.reader.s3, svc.settings, _emitter(svc), tenant, scope, queue=body.queue,
                changed_by=grant.subject, reason=body.reason, now=svc.clock.now(),
                effective_at=body.effective_at,
            )  # fmt: skip
        except PolicyRefused as exc:
            raise Refused(422, f"the policy of {tenant!r} was not changed: {exc}") from None

    @app.post(
        "/api/v1/policies/{tenant}/key", status_code=201, response_model=PolicyVersion, tags=["policies"],
        summary="New objects sealed under the client's own KMS key, or callvault's (dpo)",
    )  # fmt: skip
    async def key(tenant: TenantPath, body: KeyChange, grant: GrantDep, svc: SvcDep) -> PolicyVersion:
        _may(grant, tenant, change=True)
        try:
            return await change_kms_key(
                svc.reader.s3, svc.settings, _emitter(svc), tenant,
                None if body.kms_key == CALLVAULT_KEY else body.kms_key,
                changed_by=grant.subject, reason=body.reason, now=svc.clock.now(),
            )  # fmt: skip
        except PolicyRefused as exc:
            raise Refused(422, f"the policy of {tenant!r} was not changed: {exc}") from None

    @app.post("/api/v1/policies/{tenant}/versions/{version}/cancel", status_code=201,
              response_model=PolicyVersion, tags=["policies"],
              summary="Cancel a pending version, proven by policy.cancelled (dpo)")  # fmt: skip
    async def cancel(
        tenant: TenantPath, version: Annotated[int, PathParam(ge=1)], body: PolicyCancel, grant: GrantDep,
        svc: SvcDep,
    ) -> PolicyVersion:  # fmt: skip
        _may(grant, tenant, change=True)
        try:
            return await cancel_policy(
                svc.reader.s3, svc.settings, _emitter(svc), tenant, version, changed_by=grant.subject,
                reason=body.reason, now=svc.clock.now(),
            )  # fmt: skip
        except PolicyRefused as exc:
            raise Refused(422, f"the policy of {tenant!r} was not changed: {exc}") from None


def _emitter(svc: Services) -> Any:
    """Policy proofs go out like access events: acknowledged by the broker before the answer."""

    async def emit(events: Any) -> None:
        for event in events:
            await svc.access.record(event)

    return emit
