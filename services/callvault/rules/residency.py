"""Where callvault may keep data: the EEA, and outside it only what an operator adds with a reason.

The privacy statement promises servers inside the EEA as far as possible, and
outside it only where the Commission found the protection adequate or other
safeguards apply. So the allowed places are a list (AWS regions, or ISO 3166
countries for a store on premises), by default the EEA regions of AWS; any
entry outside the EEA needs a reason beside it, which is logged at start.
Pure decisions, no I/O: the check of a bucket's actual location is in
`storage/location.py`.
"""

from __future__ import annotations

import re

# The EU's 27 and Iceland, Liechtenstein, Norway (ISO 3166-1 alpha-2; Greece is GR).
EEA_COUNTRIES = frozenset(
    "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE IS LI NO".split()
)

# Where each AWS region stands (the regions an operator in Europe is likely to meet).
AWS_REGION_COUNTRY = {
    "eu-west-1": "IE",
    "eu-west-2": "GB",
    "eu-west-3": "FR",
    "eu-central-1": "DE",
    "eu-central-2": "CH",
    "eu-north-1": "SE",
    "eu-south-1": "IT",
    "eu-south-2": "ES",
    "me-central-1": "AE",
    "il-central-1": "IL",
    "ca-central-1": "CA",
    "us-east-1": "US",
    "us-east-2": "US",
    "us-west-1": "US",
    "us-west-2": "US",
    "ap-northeast-1": "JP",
    "ap-northeast-2": "KR",
    "ap-southeast-1": "SG",
    "ap-southeast-2": "AU",
    "ap-south-1": "IN",
    "sa-east-1": "BR",
    "af-south-1": "ZA",
}

EEA_REGIONS = ("eu-west-1", "eu-west-3", "eu-central-1", "eu-north-1", "eu-south-1", "eu-south-2")

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


def parse_places(text: str) -> frozenset[str]:
    """The allowed places of CALLVAULT_ALLOWED_REGIONS; raises ValueError naming what is not one."""
    places = {item.strip() for item in text.split(",") if item.strip()}
    odd = sorted(p for p in places if not (_REGION.match(p) or _COUNTRY.match(p)))
    if odd:
        raise ValueError(
            f"{', '.join(odd)} is neither an AWS region (such as eu-west-1) nor an ISO 3166 country "
            "code in capitals (such as BE)"
        )
    if not places:
        raise ValueError("lists no region: callvault would have nowhere to keep data")
    return frozenset(places)


def country_of(place: str) -> str | None:
    """The country of a region or country code; None for a region this table does not know."""
    return place if _COUNTRY.match(place) else AWS_REGION_COUNTRY.get(place)


def outside_eea(places: frozenset[str]) -> list[str]:
    """The allowed places not known to be in the EEA: each needs the operator's reason."""
    return sorted(p for p in places if country_of(p) not in EEA_COUNTRIES)


def check_country(country: str) -> str:
    """CALLVAULT_STORAGE_COUNTRY, checked: two capital letters."""
    if not _COUNTRY.match(country):
        raise ValueError(f"'{country}' is not an ISO 3166 country code in capitals, such as BE or NL")
    return country


Basis = str  # "reported" | "country" | "undeclared": what decides where a store's buckets are


def residency_basis(endpoint_host: str | None, country: str | None, dev: bool) -> Basis:
    """What decides where a store's buckets stand (issue 33).

    On AWS (no endpoint, or an `amazonaws.com` host) the region the store reports does, and a declared
    country is ignored: BE declared over buckets in us-east-1 proves nothing. Anywhere else the
    reported location is a name of the store's own (MinIO answers us-east-1, Ceph RGW `default`, and
    anything may answer eu-west-1), so the declared country decides, and must be given; only the
    embedded or a test stack (`dev`) falls back to what its store reports.
    """
    if endpoint_host is None or endpoint_host.endswith((".amazonaws.com", ".amazonaws.com.cn")):
        return "reported"
    if country is not None:
        return "country"
    return "reported" if dev else "undeclared"


def undeclared_problem(bucket: str, endpoint_host: str, reported: str) -> str:
    return (
        f"s3://{bucket} is in a store at {endpoint_host}, not AWS, which reports its location as "
        f"'{reported}': a name of its own that says nothing about the country it stands in; declare the "
        "country with CALLVAULT_STORAGE_COUNTRY (such as BE)"
    )


def residency_problem(bucket: str, reported: str, allowed: frozenset[str], country: str | None) -> str | None:
    """Why `bucket` may not be used where it is, in a sentence naming bucket and place; None if it may.

    `reported` is the location its store answers; with `country` declared (a store
    on premises), the country decides and the reported location is ignored:
    MinIO answers us-east-1 and Ceph RGW `default` wherever they stand.
    """
    if country is not None:
        if country in EEA_COUNTRIES or country in allowed:
            return None
        return (
            f"s3://{bucket} is in a store declared to stand in {country} (CALLVAULT_STORAGE_COUNTRY), "
            "outside the EEA and not in CALLVAULT_ALLOWED_REGIONS; callvault keeps data there only "
            "when that country is added with a reason"
        )
    if reported in allowed:
        return None
    if reported not in AWS_REGION_COUNTRY:
        return (
            f"s3://{bucket} reports its location as '{reported}', which is no AWS region; a store on "
            "premises must declare the country it stands in with CALLVAULT_STORAGE_COUNTRY (such as BE)"
        )
    return (
        f"s3://{bucket} is in {reported} ({AWS_REGION_COUNTRY[reported]}), which is not among the "
        f"allowed regions ({', '.join(sorted(allowed))}); callvault will not keep data there. A region "
        "outside the EEA may be added to CALLVAULT_ALLOWED_REGIONS, with CALLVAULT_ALLOWED_REGIONS_REASON "
        "naming its adequacy decision or safeguards; a store on premises that answers an AWS name "
        "declares its country with CALLVAULT_STORAGE_COUNTRY"
    )
