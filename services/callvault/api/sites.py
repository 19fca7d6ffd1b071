"""The site rule at the API's edge: a person at a site outside the EEA reads a tenant only while its
client policy allows that site (issue 17), on every route that reads or acts on the tenant's data:
calls, audio, links, searches, and the DPO's subject requests and their exports (issue 31)."""

from __future__ import annotations

from fastapi import Request

from callvault.api.deps import Refused, Services
from callvault.contract.lifecycle import AccessedWhat
from callvault.rules.access import Grant
from callvault.rules.client_policy import allowed_sites_at
from callvault.rules.evidence import access_refused
from callvault.rules.sites import site_refusal


async def site_refusal_for(svc: Services, grant: Grant, tenant: str) -> str | None:
    """Why the reader's site may not read this tenant now; None when it may (or sites are not declared)."""
    sites = svc.settings.site_countries
    if not sites:
        return None
    allowed = allowed_sites_at((await svc.reader.policies()).get(tenant, []), svc.clock.now())
    return site_refusal(grant.site, sites, tenant, allowed)


async def check_site(
    svc: Services, request: Request, grant: Grant, tenant: str, call_id: str | None, what: AccessedWhat
) -> None:
    """Refuse (403, with a `recording.access_refused` event) a read from a site the tenant has not allowed."""
    reason = await site_refusal_for(svc, grant, tenant)
    if reason is None:
        return
    country = svc.settings.site_countries.get(grant.site or "")
    refusal = access_refused(
        grant, tenant, call_id, what, reason, request.state.request_id, svc.clock.now(), country
    )
    await svc.access.record(refusal)
    raise Refused(403, reason)
