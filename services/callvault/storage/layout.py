"""Where archived objects live and how they are tagged: the contract's storage layout."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from urllib.parse import quote

from callvault.contract.fields import format_rfc3339


def _date_prefix(tenant: str, moment: datetime) -> str:
    return day_prefix(tenant, moment.astimezone(UTC).date())


def day_prefix(tenant: str, day: date) -> str:
    """`{tenant}/{YYYY}/{MM}/{DD}`: every archived key of one tenant and UTC day starts so."""
    return f"{tenant}/{day:%Y}/{day:%m}/{day:%d}"


def recording_key(tenant: str, call_id: str, recording_started_at: datetime, ext: str) -> str:
    """`{tenant}/{YYYY}/{MM}/{DD}/{call_id}.{ext}`, dated by the recording's start in UTC."""
    return f"{_date_prefix(tenant, recording_started_at)}/{call_id}.{ext}"


def metadata_key(tenant: str, call_id: str, call_started_at: datetime) -> str:
    """`{tenant}/{YYYY}/{MM}/{DD}/{call_id}.json`, dated by the call's start in UTC."""
    return metadata_key_of_day(tenant, call_id, call_started_at.astimezone(UTC).date())


def metadata_key_of_day(tenant: str, call_id: str, day: date) -> str:
    return f"{day_prefix(tenant, day)}/{call_id}.json"


def lifecycle_tags(
    retention_class: str, expires_at: datetime, tenant: str, policy_version: int | None = None
) -> dict[str, str]:
    tags = {
        "retention-class": str(retention_class),
        "expires-at": format_rfc3339(expires_at),
        "tenant": tenant,
    }
    if policy_version is not None:
        tags["policy-version"] = str(policy_version)
    return tags


# User metadata on archived objects that says how their due date was found: with it the purger
# can apply a client policy's later shortening (one HEAD, as for the due date itself).
STARTED_META = "started-at"  # the instant the term counts from
ARCHIVED_META = "archived-at"  # when it was archived: which policy version dated it
QUEUE_META = "queue"
POLICY_META = "policy-version"
# The newest version of the tenant's policy the worker had read when it dated the object (0: none). A
# worker learns of a new version within seconds: an object archived in between is dated by the one
# before, and this tells the purger so (issue 31).
KNOWN_META = "policy-known"


def dating_metadata(
    started_at: datetime,
    archived_at: datetime,
    queue: str | None,
    policy_version: int | None,
    policy_known: int | None = None,
) -> dict[str, str]:
    meta = {STARTED_META: format_rfc3339(started_at), ARCHIVED_META: format_rfc3339(archived_at)}
    if queue is not None:
        meta[QUEUE_META] = queue
    if policy_version is not None:
        meta[POLICY_META] = str(policy_version)
    if policy_known is not None:
        meta[KNOWN_META] = str(policy_known)
    return meta


def tagging_header(tags: dict[str, str]) -> str:
    """The URL-encoded form S3 takes in `x-amz-tagging`."""
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in tags.items())


@dataclass(frozen=True, slots=True)
class ArchiveKey:
    tenant: str
    day: date
    call_id: str


_ARCHIVE_KEY = re.compile(
    r"^(?P<tenant>[a-z0-9-]{1,64})/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/(?P<call>[A-Za-z0-9._:-]{1,128})\.[a-z0-9]+$"
)


def parse_archive_key(key: str) -> ArchiveKey | None:
    """The parts of a key laid out as above; None for anything else found in a bucket."""
    match = _ARCHIVE_KEY.fullmatch(key)
    if match is None:
        return None
    try:
        day = date(int(match["y"]), int(match["m"]), int(match["d"]))
    except ValueError:
        return None
    return ArchiveKey(match["tenant"], day, match["call"])
