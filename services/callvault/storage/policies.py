"""Client policies in the store, beside the legal holds: every version kept, none rewritten.

`_callvault/policies/{tenant}/v{version:06d}.json` in the metadata bucket. A
version is written once and never changed, so the history an auditor reads is
the one the worker applied; the zero-padded number keeps a listing in order.
Like the hold registry it lives in S3 so that it outlives any broker and every
worker, the API and the command line read it with one listing per tenant.
Blocking (boto3): call these off the event loop.
"""

from __future__ import annotations

import logging

from botocore.client import BaseClient
from pydantic import ValidationError

from callvault.rules.client_policy import Bounds, PolicyRefused, PolicyVersion, check_scope
from callvault.storage import store_profile
from callvault.storage.registry import write_new_entry

POLICIES_PREFIX = "_callvault/policies/"

PolicyBook = dict[str, list[PolicyVersion]]  # tenant -> versions, oldest first
# What was read of each stored version, by (key, ETag): the version, or why it is not applied. An
# edited file has a new ETag, so every process reads the same bytes for the same name.
VersionCache = dict[tuple[str, str], "PolicyVersion | str"]

log = logging.getLogger("callvault.policy")


def _key(tenant: str, version: int) -> str:
    return f"{POLICIES_PREFIX}{tenant}/v{version:06d}.json"


def _proof_key(tenant: str, version: int) -> str:
    """Beside a version: its `policy.changed` was sent. A version that needs proof applies only then."""
    return f"{POLICIES_PREFIX}{tenant}/v{version:06d}.proven"


def mark_proven(s3: BaseClient, bucket: str, version: PolicyVersion) -> None:
    s3.put_object(Bucket=bucket, Key=_proof_key(version.tenant, version.version), Body=b"")


def unproven(s3: BaseClient, bucket: str, tenant: str) -> list[PolicyVersion]:
    """The tenant's stored versions whose `policy.changed` was never sent (a failed emit): to re-send."""
    book, proven = _read_book(s3, bucket, {}, None, f"{POLICIES_PREFIX}{tenant}/")
    return [v for v in book.get(tenant, []) if not _applies(v, proven)]


class VersionTaken(RuntimeError):
    """Another change wrote this version number first: read the history again and retry."""


def put_version(s3: BaseClient, bucket: str, version: PolicyVersion) -> None:
    """Write a new version only if its number is new: of two changes at once, one gets the number and
    the other `VersionTaken` (a look, then a write, told both they made it: issue 32)."""
    conditional = store_profile.refuses_second_write(s3, bucket)
    if not write_new_entry(
        s3, bucket, _key(version.tenant, version.version), version, conditional=conditional
    ):
        raise VersionTaken(f"version {version.version} of {version.tenant}'s policy exists already")


def history(
    s3: BaseClient, bucket: str, tenant: str, bounds: Bounds | None = None, *, proven_only: bool = True
) -> list[PolicyVersion]:
    """Every version of one tenant's policy that can be applied, oldest first; empty when it has none."""
    prefix = f"{POLICIES_PREFIX}{tenant}/"
    return load_book(s3, bucket, bounds=bounds, prefix=prefix, proven_only=proven_only).get(tenant, [])


def load_book(
    s3: BaseClient,
    bucket: str,
    known: VersionCache | None = None,
    *,
    bounds: Bounds | None = None,
    prefix: str = POLICIES_PREFIX,
    proven_only: bool = True,
) -> PolicyBook:
    """Every tenant's history: what the worker, the purger and the replay apply.

    One listing; a version is read once and kept in `known` (by key and ETag) for the next call.
    Whatever is stored under the prefix is input: a file that is not a policy version, whose name
    and body disagree on tenant or number, or (with `bounds`) whose terms are outside them is left
    out with a warning, never the whole book (issue 33): one bad file must not stop every worker.
    A version that needs proof and has none (its `policy.changed` never sent) is not applied either
    (`proven_only`; a change reads them all, to number the next one and re-send them).
    """
    book, proven = _read_book(s3, bucket, known if known is not None else {}, bounds, prefix)
    if not proven_only:
        return book
    applied = {t: [v for v in versions if _applies(v, proven)] for t, versions in book.items()}
    return {t: versions for t, versions in applied.items() if versions}


def _applies(version: PolicyVersion, proven: set[str]) -> bool:
    """A version applies once proven; those stored before proofs were kept applied as they were."""
    return not version.needs_proof or _proof_key(version.tenant, version.version) in proven


def _read_book(
    s3: BaseClient, bucket: str, cache: VersionCache, bounds: Bounds | None, prefix: str
) -> tuple[PolicyBook, set[str]]:
    """One listing: every readable version by tenant, oldest first, and the proof markers found."""
    book: PolicyBook = {}
    proven: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", ()):
            key = item["Key"]
            if key.endswith(".proven"):
                proven.add(key)
            if not key.endswith(".json"):
                continue
            ident = (key, str(item.get("ETag", "")))
            if ident not in cache:
                cache[ident] = _read_version(s3, bucket, key, bounds)
                if isinstance(cache[ident], str):
                    log.warning("client policy s3://%s/%s is not applied: %s", bucket, key, cache[ident])
            version = cache[ident]
            if isinstance(version, PolicyVersion):
                book.setdefault(version.tenant, []).append(version)
    for versions in book.values():
        versions.sort(key=lambda v: v.version)
    return book, proven


def not_applied(known: VersionCache) -> list[tuple[str, str]]:
    """Each stored file under the policies' prefix that is not applied, with why: (key, sentence)."""
    return sorted((key, why) for (key, _), why in known.items() if isinstance(why, str))


def tenant_of(key: str) -> str:
    """The tenant a file under the policies' prefix is filed under (its folder)."""
    return key.removeprefix(POLICIES_PREFIX).split("/", 1)[0]


def refused_count(known: VersionCache) -> int:
    """How many stored files under the policies' prefix are not applied (a metric, readiness)."""
    return sum(isinstance(v, str) for v in known.values())


def _read_version(s3: BaseClient, bucket: str, key: str, bounds: Bounds | None) -> PolicyVersion | str:
    """The version a file holds, or why it is not one callvault applies."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    try:
        version = PolicyVersion.model_validate_json(body)
    except (ValidationError, ValueError) as exc:
        return f"it is not a policy version ({type(exc).__name__})"
    if key != _key(version.tenant, version.version):
        return (
            f"its body says tenant {version.tenant!r} version {version.version}, which is stored as "
            f"{_key(version.tenant, version.version)}, not under this name"
        )
    if bounds is not None:
        try:
            for scope in (version.tenant_rules, *version.queues.values()):
                check_scope(scope, bounds)
        except PolicyRefused as exc:
            return f"it sets what a change may not: {exc}"
    return version
