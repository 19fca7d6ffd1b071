"""The API's reads of the archive, off the event loop.

Metadata documents are immutable once written, so a search caches them by key
and ETag (a listing gives the ETag for free): repeated searches cost listings,
not reads. A single call's metadata is always read afresh, since it is the
moment that decides access. The restriction list, the legal holds and the
client policies are copies at most CALLVAULT_API_RESTRICTIONS_TTL_S old,
refreshed ahead of time (api/fresh_copy.py): the price of one listing per
request would be paid by every coach.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from botocore.client import BaseClient

from callvault.api.fresh_copy import FreshCopies
from callvault.api.ranges import ByteRange
from callvault.api.search import Address
from callvault.settings import Settings
from callvault.storage import inventory
from callvault.storage.archive import get_or_none, head
from callvault.storage.errors import is_not_found
from callvault.storage.holds import held_calls
from callvault.storage.layout import day_prefix, parse_archive_key
from callvault.storage.policies import PolicyBook, VersionCache, load_book
from callvault.storage.sealing import Keyring, is_sealed, open_plain, opened
from callvault.storage.subject_flags import SubjectFlag, flagged_subjects
from callvault.stream.offloop import S3Runner

CHUNK = 64 * 1024
CACHE_DOCUMENTS = 20_000


class AudioMissing(Exception):
    """The recording object is gone (deleted), although the metadata still names it."""


@dataclass(frozen=True, slots=True)
class Listed:
    address: Address
    key: str
    etag: str


def _list_day(s3: BaseClient, bucket: str, tenant: str, day: date) -> list[tuple[str, str]]:
    prefix = f"{day_prefix(tenant, day)}/"
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.extend((e["Key"], e.get("ETag", "")) for e in page.get("Contents", ()))
    return found


def _read_json(s3: BaseClient, keyring: Keyring, bucket: str, key: str) -> tuple[dict[str, Any], str] | None:
    answer = get_or_none(s3, bucket, key)
    if answer is None:
        return None
    return json.loads(opened(keyring, answer, key)), answer.get("ETag", "")


def _open(s3: BaseClient, keyring: Keyring, bucket: str, key: str, byte_range: ByteRange | None) -> Any:
    """The recording's plaintext bytes in the range: only the segments it covers are fetched and
    opened where the recording is sealed under its client's key."""
    first, last = (byte_range.first, byte_range.last) if byte_range else (None, None)
    try:
        return open_plain(s3, keyring, bucket, key, first, last)
    except Exception as exc:
        if is_not_found(exc):
            raise AudioMissing(key) from exc
        raise


class AudioStream:
    """An open S3 body read in chunks off the loop; closed when read out, or by `close()` if never sent."""

    def __init__(self, runner: S3Runner, body: Any) -> None:
        self._runner = runner
        self._body = body

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        try:
            while True:
                data = await self._runner.once(self._body.read, CHUNK)
                if not data:
                    return
                yield data
        finally:
            await self.close()

    async def close(self) -> None:
        await self._runner.once(self._body.close)


class ArchiveReader:
    def __init__(self, runner: S3Runner, settings: Settings) -> None:
        self._runner = runner
        self._settings = settings
        self.keyring = Keyring.for_settings(settings)  # opens what is sealed under each client's key
        self._documents: OrderedDict[str, tuple[str, dict[str, Any]]] = OrderedDict()
        self._policy_cache: VersionCache = {}

        def ttl() -> float:
            return self._settings.api_restrictions_ttl_s

        self._restricted = FreshCopies("restrictions", self._list_restricted, ttl)
        self._held = FreshCopies("legal holds", self._list_held, ttl)
        self._policies = FreshCopies("client policies", self._read_policies, ttl)

    @property
    def s3(self) -> BaseClient:
        return self._runner.s3

    @property
    def runner(self) -> S3Runner:
        """The API's bounded S3 pool, for the few routes that write (subject requests)."""
        return self._runner

    async def tenants(self) -> list[str]:
        return await self._runner.run("list tenants", inventory.tenants, self._settings.metadata_bucket)

    async def list_day(self, tenant: str, day: date) -> list[Listed]:
        entries = await self._runner.run("list calls", _list_day, self._settings.metadata_bucket, tenant, day)
        listed = []
        for key, etag in entries:
            parsed = parse_archive_key(key)
            if parsed is not None and key.endswith(".json"):
                listed.append(Listed(Address(parsed.day, parsed.tenant, parsed.call_id), key, etag))
        return listed

    async def cached_document(self, entry: Listed) -> dict[str, Any] | None:
        hit = self._documents.get(entry.key)
        if hit is not None and hit[0] == entry.etag:
            self._documents.move_to_end(entry.key)
            return hit[1]
        return await self.document(entry.key)

    async def document(self, key: str) -> dict[str, Any] | None:
        found = await self._runner.run(
            "read metadata", _read_json, self.keyring, self._settings.metadata_bucket, key
        )
        if found is None:
            self._documents.pop(key, None)
            return None
        doc, etag = found
        self._documents[key] = (etag, doc)
        self._documents.move_to_end(key)
        while len(self._documents) > CACHE_DOCUMENTS:
            self._documents.popitem(last=False)
        return doc

    async def restricted(self, tenant: str) -> frozenset[str]:
        """The tenant's restricted pseudonyms, at most the TTL old (see api/fresh_copy.py)."""
        return await self._restricted.get(tenant)

    async def held(self) -> frozenset[str]:
        """The held calls, `{tenant}/{call_id}` (one listing), at most the restrictions' TTL old."""
        return await self._held.get(None)

    async def policies(self) -> PolicyBook:
        """Every tenant's client-policy history (one listing; versions read once), at most the TTL old."""
        return await self._policies.get(None)

    async def _list_restricted(self, tenant: str) -> frozenset[str]:
        return await self._runner.run(
            "list restrictions",
            flagged_subjects,
            self._settings.metadata_bucket,
            SubjectFlag.RESTRICTED,
            tenant,
        )

    async def _list_held(self, _: None) -> frozenset[str]:
        ids = await self._runner.run("list legal holds", held_calls, self._settings.metadata_bucket)
        return frozenset(ids)

    async def _read_policies(self, _: None) -> PolicyBook:
        return await self._runner.run(
            "reading client policies",
            load_book,
            self._settings.metadata_bucket,
            self._policy_cache,
            bounds=self._settings.policy_bounds,
        )

    async def ready(self) -> None:
        """Raises unless both buckets the API reads answer."""
        for bucket in (self._settings.metadata_bucket, self._settings.recordings_bucket):
            await self._runner.run("check bucket", lambda s3, b: s3.head_bucket(Bucket=b), bucket)

    async def open_audio(self, bucket: str, key: str, byte_range: ByteRange | None) -> AudioStream:
        """The bytes, streamed: opened before returning, so a missing object fails here, not mid-response."""
        body = await self._runner.run("open recording", _open, self.keyring, bucket, key, byte_range)
        return AudioStream(self._runner, body)

    async def stored_sealed(self, bucket: str, key: str) -> bool:
        """Whether the recording is stored sealed (one HEAD): a presigned URL would serve its ciphertext."""
        found = await self._runner.run("describe recording", head, bucket, key)
        return found is not None and is_sealed(found.get("Metadata"))

    def presign(self, bucket: str, key: str, content_type: str, seconds: int) -> str:
        """Computed locally (a signature, no request): fine on the loop."""
        return str(
            self.s3.generate_presigned_url(
                "get_object",
                Params={"Bucket": bucket, "Key": key, "ResponseContentType": content_type},
                ExpiresIn=seconds,
            )
        )
