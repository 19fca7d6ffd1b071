"""Processing sites: where a person reading a client's data sits, and whether that client allows it. Pure.

The privacy statement keeps data inside the EEA as far as possible, and the
group's site outside it (Morocco) takes part only when a client asks for it.
Operators declare their sites with the country each stands in
(`CALLVAULT_SITES=be-machelen=BE,nl-weert=NL,ma-rabat=MA`); a token names the
site of the person it is for. Once sites are declared, a token without one is
refused (fail closed); with none declared, sites are not checked. A site in
the EEA may read any tenant the token covers; one outside only the tenants
whose client policy allows it (`callvault policy allow-site`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

from callvault.rules.residency import EEA_COUNTRIES, check_country

SITE_PATTERN = r"^[a-z0-9-]{1,64}$"
_SITE = re.compile(SITE_PATTERN)


def parse_sites(text: str) -> dict[str, str]:
    """`site=COUNTRY,...` as a mapping; a ValueError naming the bad entry."""
    sites: dict[str, str] = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        name, sep, country = entry.partition("=")
        name, country = name.strip(), country.strip().upper()
        if not sep or _SITE.fullmatch(name) is None:
            raise ValueError(f"{entry!r} is not site=COUNTRY (a site is 1 to 64 of a-z, 0-9 and '-')")
        if name in sites:
            raise ValueError(f"the site {name!r} is declared twice")
        sites[name] = check_country(country)
    return sites


def in_eea(country: str) -> bool:
    return country in EEA_COUNTRIES


def site_refusal(
    site: str | None, sites: Mapping[str, str], tenant: str, allowed_sites: Collection[str]
) -> str | None:
    """Why a person at `site` may not read `tenant`'s data; None when they may.

    `allowed_sites`: the sites outside the EEA the tenant's policy allows now.
    """
    if not sites:
        return None  # no sites declared: not checked
    if site is None:
        return "this callvault declares its processing sites and the token names none; get one with --site"
    country = sites.get(site)
    if country is None:
        return f"the token's site {site!r} is not one this callvault declares (CALLVAULT_SITES)"
    if in_eea(country) or site in allowed_sites:
        return None
    return (
        f"the site {site} is in {country}, outside the EEA, and tenant {tenant!r} has not allowed "
        "processing there (callvault policy allow-site)"
    )
