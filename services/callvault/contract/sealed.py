"""The sealed object format: a recording or document encrypted under its tenant's key, readable by range.

Issue 29 (keys per client), its first part: the format alone, pure (no I/O, no KMS). A data key (32
bytes, from the tenant's KMS key: `GenerateDataKey`, kept only wrapped) seals an object; a fresh salt per
object derives the object's own key from it (HKDF-SHA256), so one data key may seal many objects and no
two objects share a key. The plaintext is cut into segments of `segment` bytes, each sealed with
AES-256-GCM on its own: a range is read by fetching and opening only the segments it covers.

Byte by byte (docs/contract.md, "Sealed objects"):

    magic       4 bytes   b"CVS1"
    header_len  4 bytes   big-endian: the JSON's length in bytes
    header      JSON      UTF-8, keys sorted, no spaces: alg, context, key_id, length, salt, segment,
                          wrapped_key (base64 fields: salt, wrapped_key)
    segments    n times   AES-256-GCM ciphertext of one segment, then its 16-byte tag

    object key  HKDF-SHA256(data key, salt, info b"callvault sealed object v1"), 32 bytes
    nonce       12 bytes: the segment's index, big-endian in the first 11, then 0x01 for the last
                segment and 0x00 for the others (a segment cannot move, and the end cannot be cut)
    AAD         SHA-256 of magic and the bound fields' JSON (keys sorted, no spaces: alg, context, length,
                salt, segment): a segment cannot move to another object, and the header cannot be edited
                unseen. The wrapping (key_id, wrapped_key) is left out, so it can be replaced (a key
                rotated, a held call re-wrapped under the hold key) without re-encrypting a byte: the
                object's user metadata carries the current wrapping, the header the one it was sealed
                with. A wrong wrapped key unwraps to a wrong data key, and no segment opens under it.
    n           ceil(length / segment), at least 1 (an empty plaintext is one empty segment)

A segment that was altered, moved, dropped or added fails to open, and the reader says so: it never
hands out garbage audio.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"CVS1"
ALG = "AES-256-GCM-HKDF-SHA256-SEG"
TAG_BYTES = 16
SEGMENT_BYTES = 64 * 1024
KEY_INFO = b"callvault sealed object v1"
MAX_HEADER_BYTES = 16 * 1024


class SealedRefused(ValueError):
    """The bytes are not a sealed object this key opens; the message says what failed, for a person."""


@dataclass(frozen=True, slots=True)
class SealedHeader:
    key_id: str  # the KMS key that wrapped the data key
    wrapped_key: bytes  # the data key as KMS wrapped it (its ciphertext blob)
    salt: bytes
    length: int  # plaintext bytes
    segment: int  # plaintext bytes per segment (the last may be shorter)
    context: dict[str, str]  # the KMS encryption context: tenant, data class

    def encoded(self) -> bytes:
        body = json.dumps(
            {
                "alg": ALG,
                "context": dict(sorted(self.context.items())),
                "key_id": self.key_id,
                "length": self.length,
                "salt": base64.b64encode(self.salt).decode(),
                "segment": self.segment,
                "wrapped_key": base64.b64encode(self.wrapped_key).decode(),
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        return MAGIC + struct.pack(">I", len(body)) + body

    @property
    def size(self) -> int:
        return len(self.encoded())

    def bound(self) -> bytes:
        """The associated data of every segment: what the segments are bound to (not the wrapping)."""
        fields = {"alg": ALG, "context": dict(sorted(self.context.items())), "length": self.length,
                  "salt": base64.b64encode(self.salt).decode(), "segment": self.segment}  # fmt: skip
        return hashlib.sha256(
            MAGIC + json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
        ).digest()

    def rewrapped(self, key_id: str, wrapped_key: bytes) -> SealedHeader:
        """The same header with the data key wrapped as given (the object's metadata says how, now)."""
        return replace(self, key_id=key_id, wrapped_key=wrapped_key)

    @property
    def segments(self) -> int:
        return max(1, -(-self.length // self.segment))

    @property
    def sealed_size(self) -> int:
        """The stored object's size in bytes."""
        return self.size + self.length + self.segments * TAG_BYTES

    def cipher_range(self, first: int, last: int) -> tuple[int, int, int, int]:
        """For plaintext bytes `first`..`last` (inclusive): the stored bytes to fetch (inclusive) and the
        segments they hold (first, last index)."""
        if not 0 <= first <= last < max(1, self.length):
            raise SealedRefused(f"bytes {first}-{last} are outside a {self.length}-byte plaintext")
        seg_first, seg_last = first // self.segment, last // self.segment
        start = self.size + seg_first * (self.segment + TAG_BYTES)
        end = self.size + min(self.sealed_size - self.size, (seg_last + 1) * (self.segment + TAG_BYTES)) - 1
        return start, end, seg_first, seg_last


def parse_header(data: bytes) -> SealedHeader:
    """The header at the start of `data` (at least its first `header_size(data)` bytes)."""
    if len(data) < 8 or data[:4] != MAGIC:
        raise SealedRefused(
            "not a sealed object (no CVS1 header): stored before encryption, or not callvault's"
        )
    (length,) = struct.unpack(">I", data[4:8])
    if length > MAX_HEADER_BYTES:
        raise SealedRefused(f"a sealed header of {length} bytes is not one callvault writes")
    if len(data) < 8 + length:
        raise SealedRefused("the sealed header is cut short")
    try:
        fields: dict[str, Any] = json.loads(data[8 : 8 + length])
        if fields.get("alg") != ALG:
            raise SealedRefused(f"sealed with {fields.get('alg')!r}, which this version does not open")
        header = SealedHeader(
            key_id=str(fields["key_id"]),
            wrapped_key=base64.b64decode(fields["wrapped_key"], validate=True),
            salt=base64.b64decode(fields["salt"], validate=True),
            length=int(fields["length"]),
            segment=int(fields["segment"]),
            context={str(k): str(v) for k, v in dict(fields["context"]).items()},
        )
    except SealedRefused:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise SealedRefused(f"the sealed header cannot be read: {type(exc).__name__}") from None
    if header.length < 0 or header.segment < 1 or len(header.salt) < 16:
        raise SealedRefused("the sealed header's length, segment size or salt is not one callvault writes")
    if header.encoded() != data[: 8 + length]:
        raise SealedRefused("the sealed header is not in its canonical form: it was edited")
    return header


def header_size(data: bytes) -> int:
    """How many bytes the header takes, from at least its first 8."""
    if len(data) < 8 or data[:4] != MAGIC:
        raise SealedRefused(
            "not a sealed object (no CVS1 header): stored before encryption, or not callvault's"
        )
    return 8 + struct.unpack(">I", data[4:8])[0]


def new_header(
    key_id: str, wrapped_key: bytes, length: int, context: dict[str, str], segment: int = SEGMENT_BYTES
) -> SealedHeader:
    return SealedHeader(key_id, wrapped_key, os.urandom(32), length, segment, dict(context))


def _object_key(data_key: bytes, header: SealedHeader) -> AESGCM:
    if len(data_key) != 32:
        raise SealedRefused("a data key is 32 bytes")
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=header.salt, info=KEY_INFO).derive(data_key)
    return AESGCM(derived)


def _nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def seal(header: SealedHeader, data_key: bytes, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The sealed object, piece by piece: the header, then each segment as the plaintext arrives.
    The plaintext must be exactly `header.length` bytes; a shorter or longer one is refused."""
    aead, aad = _object_key(data_key, header), header.bound()
    yield header.encoded()
    pending, index, seen = b"", 0, 0
    for chunk in chunks:
        seen += len(chunk)
        if seen > header.length:
            raise SealedRefused(f"the plaintext is longer than the {header.length} bytes its header says")
        pending += chunk
        while len(pending) > header.segment or (len(pending) == header.segment and seen < header.length):
            piece, pending = pending[: header.segment], pending[header.segment :]
            yield aead.encrypt(_nonce(index, False), piece, aad)
            index += 1
    if seen != header.length:
        raise SealedRefused(f"the plaintext has {seen} bytes, its header says {header.length}")
    yield aead.encrypt(_nonce(index, True), pending, aad)


def open_segments(header: SealedHeader, data_key: bytes, stored: bytes, first_segment: int) -> bytes:
    """The plaintext of consecutive segments from `first_segment`, from their stored bytes (as
    `cipher_range` names them); refused with a sentence when any was altered, moved or cut."""
    aead, aad = _object_key(data_key, header), header.bound()
    step = header.segment + TAG_BYTES
    out = bytearray()
    index, pos = first_segment, 0
    while pos < len(stored) or index == first_segment:
        piece = stored[pos : pos + step]
        last = index == header.segments - 1
        expected = (header.length - index * header.segment) + TAG_BYTES if last else step
        if len(piece) != expected:
            raise SealedRefused(f"segment {index} is cut short: the object was truncated or altered")
        try:
            out += aead.decrypt(_nonce(index, last), piece, aad)
        except InvalidTag:
            raise SealedRefused(
                f"segment {index} does not open under its key: the stored object was altered, its "
                "segments moved, or it is sealed under another key"
            ) from None
        pos += len(piece)
        index += 1
    return bytes(out)


def open_all(data: bytes, data_key: bytes) -> bytes:
    """The whole plaintext of a sealed object held in memory."""
    header = parse_header(data)
    body = data[header.size :]
    if len(body) != header.sealed_size - header.size:
        raise SealedRefused(
            f"the sealed object has {len(data)} bytes, its header says {header.sealed_size}: "
            "truncated or padded"
        )
    return open_segments(header, data_key, body, 0)
