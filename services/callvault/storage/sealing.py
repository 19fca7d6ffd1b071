"""Archived objects sealed under their tenant's key, and opened again: the one place that does either.

Issue 29 (keys per client). The format is `contract.sealed`'s (pure); the keys are
`storage.tenant_keys`' (KMS). This module joins them to S3:

- writing: `Keyring.seal_for` names the tenant and data class an object is sealed for;
  `seal_bytes` seals a document or a recording held in memory, `SealingReader` one streamed
  in parts. A sealed object's user metadata says so (`sealed`, `key-id`, `stored-sha256`),
  beside the plaintext's `sha256` as before: a HEAD tells what a version is without reading it.
- reading: `read_plain` (a whole object: a document, an export) and `open_plain` (a range of
  a recording, fetched and opened segment group by segment group) hand out the plaintext. An
  object stored before sealing (no `sealed` in its metadata) is handed out as it is, so the
  archive stays readable while `storage encrypt-existing` has not run.

A data key unwrapped once is kept `open_ttl_s` (60 s): a process reading many objects sealed in
the same period asks KMS once, and a tenant shredded by another process is unreadable here at
most that long after. Blocking (boto3): call these off the event loop.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError

from callvault.contract.sealed import (
    MAGIC,
    SealedHeader,
    SealedRefused,
    header_size,
    new_header,
    open_all,
    open_segments,
    parse_header,
    seal,
)
from callvault.settings import Settings
from callvault.storage.errors import error_code
from callvault.storage.layout import parse_archive_key
from callvault.storage.tenant_keys import DataKeys, KeyRefused, ensure_tenant_key, make_kms_client, unwrap

SEALED_META = "sealed"  # user metadata: the format's magic ("CVS1") on a sealed object
KEY_META = "key-id"  # ... the KMS key that wraps its data key now
WRAPPED_META = "wrapped-key"  # ... and the data key so wrapped (base64): the header's until re-wrapped
STORED_META = "stored-sha256"  # ... the SHA-256 of its stored (sealed) bytes; `sha256` stays the plaintext's
PROBE_BYTES = 4096  # the first read of a sealed object: its header, whole in every object callvault writes
GROUP_SEGMENTS = 16  # segments fetched per read when a range is streamed (1 MiB of audio)

__all__ = ["KeyRefused", "SealedRefused"]


@dataclass(frozen=True, slots=True)
class Seal:
    """What one object is sealed for: its tenant's key (or the client's own), and its data class."""

    keyring: Keyring
    tenant: str
    data_class: str
    kms_key: str | None = None  # a client's own key (bring your own key); None: alias/callvault/{tenant}

    def header(self, length: int) -> tuple[SealedHeader, bytes]:
        """A new object's header and its data key."""
        return self.keyring.new_object(self, length)


@dataclass(frozen=True, slots=True)
class SealedBody:
    """A sealed object in memory, with what its metadata and its event say of it."""

    body: bytes
    header: SealedHeader
    stored_sha256: str

    @property
    def key_id(self) -> str:
        return self.header.key_id

    def metadata(self) -> dict[str, str]:
        return {**sealed_metadata(self.header), STORED_META: self.stored_sha256}


def sealed_metadata(header: SealedHeader) -> dict[str, str]:
    """A sealed object's user metadata: that it is sealed, and how its data key is wrapped now."""
    wrapped = base64.b64encode(header.wrapped_key).decode()
    return {SEALED_META: MAGIC.decode(), KEY_META: header.key_id, WRAPPED_META: wrapped}


SEALING_META = (SEALED_META, KEY_META, WRAPPED_META, STORED_META)  # what a rewrite writes afresh


def current(header: SealedHeader, metadata: dict[str, str] | None) -> SealedHeader:
    """The header with the wrapping the object's metadata names now (re-wrapped after it was sealed)."""
    meta = metadata or {}
    if not meta.get(WRAPPED_META) or not meta.get(KEY_META):
        return header
    try:
        wrapped = base64.b64decode(meta[WRAPPED_META], validate=True)
    except ValueError:
        raise SealedRefused("the object's wrapped key in its metadata is not base64: it was edited") from None
    return header.rewrapped(meta[KEY_META], wrapped)


def is_sealed(metadata: dict[str, str] | None) -> bool:
    """Whether an object's user metadata says it is sealed."""
    return (metadata or {}).get(SEALED_META) == MAGIC.decode()


class Keyring:
    """The process's keys: data keys to seal with (from KMS, kept briefly per tenant and class) and data
    keys unwrapped to open with (kept `open_ttl_s`). `sealing`: whether new objects are sealed
    (`CALLVAULT_ENCRYPTION`); objects already sealed open either way."""

    def __init__(self, kms: BaseClient, *, sealing: bool = True, open_ttl_s: float = 60.0) -> None:
        self.kms = kms
        self.sealing = sealing
        self.data_keys = DataKeys(kms)
        self.open_ttl_s = open_ttl_s
        self._opened: dict[tuple[str, bytes], tuple[bytes, float]] = {}
        self._keyed: set[str] = set()  # tenants whose key is known to exist
        self._lock = threading.Lock()
        self._making = threading.Lock()

    @classmethod
    def for_settings(cls, settings: Settings) -> Keyring:
        return cls(make_kms_client(settings), sealing=settings.encryption == "on")

    def seal_for(self, tenant: str, data_class: str, kms_key: str | None = None) -> Seal | None:
        """How to seal a new object of this tenant and class; None when sealing is off."""
        return Seal(self, tenant, data_class, kms_key) if self.sealing else None

    def new_object(self, how: Seal, length: int) -> tuple[SealedHeader, bytes]:
        if how.kms_key is None and how.tenant not in self._keyed:
            with self._making:  # the S3 pool's threads seal side by side: one of them makes the key
                if how.tenant not in self._keyed:
                    ensure_tenant_key(self.kms, how.tenant)  # a client's first call: its key is made here
                    self._keyed.add(how.tenant)
        plain, wrapped, key_id = self.data_keys.for_object(how.tenant, how.data_class, how.kms_key)
        context = {"tenant": how.tenant, "data_class": how.data_class}
        return new_header(key_id, wrapped, length, context), plain

    def data_key(self, header: SealedHeader) -> bytes:
        """The data key that opens an object with this header; `KeyRefused` when its key is gone."""
        now = time.monotonic()
        slot = (header.key_id, header.wrapped_key)
        with self._lock:
            kept = self._opened.get(slot)
            if kept is not None and kept[1] > now:
                return kept[0]
        try:
            key = unwrap(self.kms, header)
        except ClientError as exc:
            if error_code(exc) == "AccessDeniedException":
                raise KeyRefused(f"callvault may not use the key {header.key_id}: KMS denies it") from None
            raise
        with self._lock:
            if len(self._opened) > 10_000:
                self._opened.clear()
            self._opened[slot] = (key, now + self.open_ttl_s)
        return key

    def forget(self) -> None:
        """Drop every unwrapped key: the next open asks KMS again (after a shred, in tests)."""
        with self._lock:
            self._opened.clear()


def seal_bytes(how: Seal, plaintext: bytes) -> SealedBody:
    header, data_key = how.header(len(plaintext))
    body = b"".join(seal(header, data_key, [plaintext]))
    return SealedBody(body, header, hashlib.sha256(body).hexdigest())


class SealingReader:
    """A read-only stream of a sealed object made from a plaintext stream (`body`, `length` bytes),
    hashing both sides: for an upload in parts, where the recording is never held whole."""

    def __init__(self, how: Seal, body: Any, length: int) -> None:
        self.header, data_key = how.header(length)
        self.plain_digest, self.stored_digest = hashlib.sha256(), hashlib.sha256()
        self.plain_size = 0
        self._pieces = seal(self.header, data_key, self._plaintext(body))
        self._pending = b""

    def _plaintext(self, body: Any) -> Iterator[bytes]:
        for chunk in iter(lambda: body.read(1024 * 1024), b""):
            self.plain_digest.update(chunk)
            self.plain_size += len(chunk)
            yield chunk  # longer or shorter than announced: `seal` refuses it

    def read(self, amount: int = -1) -> bytes:
        while amount is None or amount < 0 or len(self._pending) < amount:
            piece = next(self._pieces, None)
            if piece is None:
                break
            self._pending += piece
        if amount is None or amount < 0:
            out, self._pending = self._pending, b""
        else:
            out, self._pending = self._pending[:amount], self._pending[amount:]
        self.stored_digest.update(out)
        return out

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    @property
    def key_id(self) -> str:
        return self.header.key_id


def in_its_place(header: SealedHeader, key: str) -> SealedHeader:
    """The header, once it is sure the object was sealed for the tenant whose key it is stored under: a
    client's object copied under another client's key (whole, bytes and metadata) opens, as it is
    genuine, but must not be served as the other client's."""
    place = parse_archive_key(key)
    sealed_for = header.context.get("tenant")
    if place is not None and sealed_for != place.tenant:
        raise SealedRefused(
            f"sealed for tenant {sealed_for!r} but stored under {place.tenant!r}'s key: moved there, not "
            "archived there"
        )
    return header


def open_bytes(keyring: Keyring, data: bytes, metadata: dict[str, str] | None, key: str = "") -> bytes:
    """An object's plaintext from its stored bytes and user metadata (unsealed objects as they are);
    `key`: where it is stored, which must be its tenant's."""
    if not is_sealed(metadata):
        return data
    header = in_its_place(current(parse_header(data), metadata), key)
    return open_all(data, keyring.data_key(header))


def read_plain(
    s3: BaseClient, keyring: Keyring, bucket: str, key: str, version: str | None = None
) -> tuple[bytes, dict[str, Any]]:
    """A whole object's plaintext, and the store's answer to its GET (its metadata, version, ETag)."""
    kwargs = {"VersionId": version} if version else {}
    answer = dict(s3.get_object(Bucket=bucket, Key=key, **kwargs))
    return opened(keyring, answer, key), answer


def opened(keyring: Keyring, answer: dict[str, Any], key: str) -> bytes:
    """The plaintext of a GET's answer for `key` (its body read here)."""
    return open_bytes(keyring, answer["Body"].read(), answer.get("Metadata"), key)


def _get(s3: BaseClient, bucket: str, key: str, version: str | None, first: int, last: int) -> dict[str, Any]:
    kwargs = {"VersionId": version} if version else {}
    return dict(s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={first}-{last}", **kwargs))


class PlainRange:
    """Bytes `first`..`last` (inclusive) of a sealed object's plaintext, read like a body: `read(n)`,
    `close()`. Segments are fetched `GROUP_SEGMENTS` at a time, each opened before any of it is given."""

    def __init__(
        self, s3: BaseClient, keyring: Keyring, bucket: str, key: str, version: str | None,
        header: SealedHeader, first: int, last: int,
    ) -> None:  # fmt: skip
        self._s3, self._keyring, self._where = s3, keyring, (bucket, key, version)
        self.header, self._next, self._last = header, first, last
        self._pending = b""
        self._data_key: bytes | None = None

    def _fill(self) -> None:
        if self._next > self._last or self.header.length == 0:
            self._next = self._last + 1
            return
        if self._data_key is None:
            self._data_key = self._keyring.data_key(self.header)
        seg_first = self._next // self.header.segment
        seg_last = min(
            self.header.segments - 1, seg_first + GROUP_SEGMENTS - 1, self._last // self.header.segment
        )
        plain_last = min(self._last, (seg_last + 1) * self.header.segment - 1)
        start, end, _, _ = self.header.cipher_range(seg_first * self.header.segment, plain_last)
        stored = _get(self._s3, *self._where, start, end)["Body"].read()
        plain = open_segments(self.header, self._data_key, stored, seg_first)
        offset = self._next - seg_first * self.header.segment
        self._pending += plain[offset : offset + plain_last - self._next + 1]
        self._next = plain_last + 1

    def prefetch(self) -> None:
        """Fetch and open the first group of segments, if none is waiting."""
        if not self._pending and self._next <= self._last:
            self._fill()

    def read(self, amount: int = -1) -> bytes:
        while (amount is None or amount < 0 or len(self._pending) < amount) and self._next <= self._last:
            self._fill()
        if amount is None or amount < 0:
            out, self._pending = self._pending, b""
        else:
            out, self._pending = self._pending[:amount], self._pending[amount:]
        return out

    def close(self) -> None:
        self._pending, self._next = b"", self._last + 1


def sealed_header(
    s3: BaseClient, bucket: str, key: str, version: str | None = None
) -> tuple[SealedHeader | None, dict[str, Any]]:
    """The object's sealed header (None when it is stored unsealed) and the answer to the first read;
    an empty object answers with no bytes."""
    try:
        answer = _get(s3, bucket, key, version, 0, PROBE_BYTES - 1)
    except ClientError as exc:
        if error_code(exc) != "InvalidRange":
            raise
        return None, {}  # empty: nothing to open
    if not is_sealed(answer.get("Metadata")):
        answer["Body"].close()
        return None, answer
    data = answer["Body"].read()
    size = header_size(data)
    if size > len(data):
        data = _get(s3, bucket, key, version, 0, size - 1)["Body"].read()
    return in_its_place(current(parse_header(data), answer.get("Metadata")), key), answer


def open_plain(
    s3: BaseClient, keyring: Keyring, bucket: str, key: str, first: int | None = None,
    last: int | None = None, version: str | None = None,
) -> Any:  # fmt: skip
    """A body (`read(n)`, `close()`) of the plaintext bytes `first`..`last` of an object, the whole of it
    when they are None: opened segment group by segment group where it is sealed, the store's own body
    where it is not."""
    header, _ = sealed_header(s3, bucket, key, version)
    if header is None:
        kwargs: dict[str, Any] = {"VersionId": version} if version else {}
        if first is not None:
            kwargs["Range"] = f"bytes={first}-{'' if last is None else last}"
        return s3.get_object(Bucket=bucket, Key=key, **kwargs)["Body"]
    start = first or 0
    end = header.length - 1 if last is None else min(last, header.length - 1)
    body = PlainRange(s3, keyring, bucket, key, version, header, start, end)
    body.prefetch()  # the first segments opened now: what does not open is refused before any byte is sent
    return body
