"""The subject index: from a participant's pseudonym to the calls they took part in.

Metadata is laid out by tenant and day, so "every call of this person" would
otherwise mean reading six months of documents. The index answers it from
small entries in the metadata bucket, **one per call**, whose key names every
subject of the call:
`_callvault/subject-index/{tenant}/calls/{call_id}/{pseudonym}.{pseudonym}….json`
(sorted). A lookup lists the tenant's entries and reads the bodies of those
whose key names the subject.

Why one entry per call and not one per subject (the layout until 2026-12-07,
`_callvault/subject-index/{tenant}/{pseudonym}/{call_id}.json`, still read and
still deleted): a call has up to three subjects (caller, callee, agent), and
an entry per subject made indexing three PUTs of the seven S3 requests an
archived call cost; with one it is one PUT, and a purge drops a call's entries
with one listing instead of one per subject. The price is paid by the rare
reader: a subject request lists the tenant's whole index, one LIST per 1,000
calls the tenant keeps, where it listed the subject's own prefix before.

An entry must not outlive the data it points to. It is written just before the
call's metadata and carries the metadata's tags (the lifecycle backstop covers
it); the metadata document names its participants in its user metadata
(`SUBJECTS_META`), so whoever deletes the document (the purger, an erasure)
deletes the entries of that call with it. Blocking (boto3): call off the loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from botocore.client import BaseClient
from pydantic import BaseModel, model_validator

from callvault.contract.fields import CallId, Tenant
from callvault.storage.archive import delete_all_versions, erase_under
from callvault.storage.errors import is_not_found
from callvault.storage.layout import tagging_header

log = logging.getLogger("callvault.subjects")

INDEX_PREFIX = "_callvault/subject-index/"
PROGRESS_EVERY = 100_000  # index entries between two log lines of a lookup
# `{INDEX_PREFIX}{tenant}/calls/`: one entry per call (an older layout's segment there is a pseudonym)
CALLS = "calls"
SUBJECTS_META = "callvault-subjects"  # on a metadata document: its participants' pseudonyms, space-separated


class IndexEntry(BaseModel):
    call_id: CallId
    tenant: Tenant
    subjects: list[str]  # every participant of the call, so erasing one call removes all its entries
    # The call's archived objects by data-class name (`rules.data_classes`): what erasure and exports take.
    objects: dict[str, str]
    call_started_at: datetime
    expires_at: datetime  # the metadata's

    @model_validator(mode="before")
    @classmethod
    def _one_field_per_class(cls, data: Any) -> Any:
        """Entries written before the registry named the keys had a field per class."""
        if isinstance(data, dict) and "objects" not in data:
            data = dict(data)
            named = {"metadata": data.pop("metadata_key", None), "recording": data.pop("recording_key", None)}
            data["objects"] = {name: key for name, key in named.items() if key}
        return data


def entry_key(tenant: str, subjects: Iterable[str], call_id: str) -> str:
    """The one entry of a call: its key names every subject, so a lookup needs no body to filter."""
    names = sorted(set(subjects))
    if not names:
        raise ValueError(f"call {call_id} has no subjects to index")
    return f"{_calls_prefix(tenant)}{call_id}/{'.'.join(names)}.json"


def _calls_prefix(tenant: str) -> str:
    return f"{INDEX_PREFIX}{tenant}/{CALLS}/"


def _per_subject_key(tenant: str, subject: str, call_id: str) -> str:
    """The layout before 2026-12-07: an entry per subject and call."""
    return f"{INDEX_PREFIX}{tenant}/{subject}/{call_id}.json"


def parse_key(key: str) -> tuple[str, frozenset[str]] | None:
    """The call an index key belongs to and the subjects it names, in either layout (None: not an entry)."""
    if not key.startswith(INDEX_PREFIX) or not key.endswith(".json"):
        return None
    parts = key[len(INDEX_PREFIX) : -len(".json")].split("/")
    if len(parts) == 4 and parts[1] == CALLS:
        return parts[2], frozenset(parts[3].split("."))
    if len(parts) == 3:
        return parts[2], frozenset([parts[1]])
    return None


def _named(key: str) -> frozenset[str]:
    parsed = parse_key(key)
    return parsed[1] if parsed else frozenset()


def put_entries(s3: BaseClient, bucket: str, entry: IndexEntry, tags: dict[str, str]) -> None:
    """The call's entry, naming every subject in `entry.subjects` (one PUT)."""
    s3.put_object(
        Bucket=bucket,
        Key=entry_key(entry.tenant, entry.subjects, entry.call_id),
        Body=entry.model_dump_json().encode(),
        ContentType="application/json",
        Tagging=tagging_header(tags),
    )


def _listed(s3: BaseClient, bucket: str, prefix: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", ()):
            yield item["Key"]


def _scanned(s3: BaseClient, bucket: str, tenant: str) -> Iterator[str]:
    """The tenant's entries, with a log line every `PROGRESS_EVERY` of them: a large tenant's take long."""
    seen, begun = 0, time.monotonic()
    for key in _listed(s3, bucket, _calls_prefix(tenant)):
        seen += 1
        if seen % PROGRESS_EVERY == 0:
            log.info(
                "subject lookup in tenant %s: %d index entries read in %.0f s",
                tenant,
                seen,
                time.monotonic() - begun,
            )
        yield key
    if seen >= PROGRESS_EVERY:
        log.info(
            "subject lookup in tenant %s: all %d index entries read in %.0f s",
            tenant,
            seen,
            time.monotonic() - begun,
        )


def calls_of(s3: BaseClient, bucket: str, tenant: str, subject: str) -> list[IndexEntry]:
    """Every indexed call of the subject in the tenant, oldest first.

    Lists the tenant's entries (one request per 1,000 calls) and reads those naming the subject; then
    the subject's own prefix of the older layout. A call found in both is counted once.
    """
    keys = [k for k in _scanned(s3, bucket, tenant) if subject in _named(k)]
    keys += list(_listed(s3, bucket, f"{INDEX_PREFIX}{tenant}/{subject}/"))
    entries: dict[str, IndexEntry] = {}
    for key in keys:
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:
            if is_not_found(exc):
                continue  # removed since the listing: its call went with it
            raise
        entry = IndexEntry.model_validate_json(body)
        entries.setdefault(entry.call_id, entry)
    return sorted(entries.values(), key=lambda e: (e.call_started_at, e.call_id))


def remove_entries(s3: BaseClient, bucket: str, tenant: str, subjects: list[str], call_id: str) -> int:
    """Delete every entry of the call, every version: what is left of the index once its data is gone.

    `subjects` finds the older layout's entries; the call's own entries are found by their prefix,
    whoever they name.
    """
    removed = erase_under(s3, bucket, f"{_calls_prefix(tenant)}{call_id}/")
    return removed + _remove_per_subject(s3, bucket, tenant, subjects, call_id)


def _remove_per_subject(
    s3: BaseClient, bucket: str, tenant: str, subjects: Iterable[str], call_id: str
) -> int:
    return sum(delete_all_versions(s3, bucket, _per_subject_key(tenant, s, call_id)) for s in set(subjects))


def drop_subjects(s3: BaseClient, bucket: str, tenant: str, subjects: list[str], call_id: str) -> int:
    """The call no longer indexed under `subjects`, still under everyone else it names.

    For a rectified participant (the new one was indexed first) and an erased agent. An entry naming
    one of them is deleted; where it named someone no surviving entry covers, an entry naming the rest
    is written first, so no one else's lookup loses the call in between.
    """
    gone = set(subjects)
    prefix = f"{_calls_prefix(tenant)}{call_id}/"
    named = {key: _named(key) for key in _listed(s3, bucket, prefix)}
    touched = [key for key, names in named.items() if names & gone]
    covered = set().union(*(names for key, names in named.items() if key not in touched))
    for key in touched:
        rest = named[key] - gone
        if rest - covered:
            response = s3.get_object(Bucket=bucket, Key=key)
            entry = IndexEntry.model_validate_json(response["Body"].read())
            tags = s3.get_object_tagging(Bucket=bucket, Key=key).get("TagSet", [])
            put_entries(s3, bucket, entry.model_copy(update={"subjects": sorted(rest)}), {
                t["Key"]: t["Value"] for t in tags
            })  # fmt: skip
            covered |= rest
    removed = sum(delete_all_versions(s3, bucket, key) for key in touched)
    return removed + _remove_per_subject(s3, bucket, tenant, gone, call_id)


def subjects_of(user_metadata: dict[str, str]) -> tuple[str, ...]:
    """The pseudonyms a metadata document's user metadata names (none on older documents)."""
    return tuple(sorted(user_metadata.get(SUBJECTS_META, "").split()))
