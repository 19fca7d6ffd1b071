"""Signed checkpoints of the audit chain: any period checked on its own. Pure.

The hash chain proves that no segment was edited, removed or reordered, but
only from the first segment on: checking one month meant reading every segment
before it. A checkpoint, written at least every hour, names each partition's
head segment (its key, SHA-256 and last offset) and the SHA-256 of the
checkpoint before it, and is signed with Ed25519. From the signed checkpoint
before a period, an auditor holding the public key reads only that period's
segments and checks their chain forward to the next checkpoint, which vouches
for where it ends (AWS CloudTrail's digest files and transparency logs' signed
checkpoints work this way).

A new key is announced inside the first checkpoint it signs, with a signature
by the old key over the new public key and the checkpoint's sequence number: a
rotation is itself signed by the old key, so whoever trusts the old key can
follow the chain to the new one, and a checkpoint signed by any other key is
refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

GENESIS = "0" * 64  # the "previous" of the first checkpoint
FORMAT = "callvault.audit.checkpoint/1"


@dataclass(frozen=True, slots=True)
class PartitionHead:
    """A partition's last archived segment at the checkpoint."""

    segment: str  # its key in the audit bucket
    sha256: str  # the SHA-256 of its bytes (the chain's hash)
    last_offset: int


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int
    at: datetime
    heads: dict[int, PartitionHead]
    previous_sha256: str
    public_key: str  # hex of the Ed25519 public key that signed it
    rotated_from: str | None = None  # the key before, when this checkpoint announces a new one
    rotation_signature: str | None = None  # by the old key, over `rotation_message`
    signature: str = ""  # hex, over `signed_bytes`

    def signed_bytes(self) -> bytes:
        return _canonical(_fields(self))

    def document(self) -> bytes:
        """The stored form: the signed fields and the signature, as canonical JSON."""
        return _canonical({**_fields(self), "signature": self.signature})

    def sha256(self) -> str:
        return hashlib.sha256(self.document()).hexdigest()


def _canonical(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _fields(cp: Checkpoint) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "seq": cp.seq,
        "at": cp.at.isoformat(),
        "heads": {
            str(p): {"segment": h.segment, "sha256": h.sha256, "last_offset": h.last_offset}
            for p, h in sorted(cp.heads.items())
        },
        "previous_sha256": cp.previous_sha256,
        "public_key": cp.public_key,
        "rotated_from": cp.rotated_from,
        "rotation_signature": cp.rotation_signature,
    }


def parse_checkpoint(raw: bytes) -> Checkpoint:
    """A stored checkpoint read back; ValueError with a sentence if it is not one.

    The stored bytes must be the checkpoint's canonical document exactly: a field added, or one of
    another type (`seq` as text), would still verify over the fields read back, so it is refused.
    """
    cp = _parsed(raw)
    if cp.document() != raw:
        raise ValueError("the checkpoint is not in its canonical form (a field added, or of another type)")
    return cp


def _parsed(raw: bytes) -> Checkpoint:
    try:
        doc = json.loads(raw)
        if doc.get("format") != FORMAT:
            raise ValueError(f"not a callvault checkpoint (format {doc.get('format')!r})")
        return Checkpoint(
            seq=int(doc["seq"]),
            at=datetime.fromisoformat(doc["at"]),
            heads={
                int(p): PartitionHead(str(h["segment"]), str(h["sha256"]), int(h["last_offset"]))
                for p, h in doc["heads"].items()
            },
            previous_sha256=str(doc["previous_sha256"]),
            public_key=str(doc["public_key"]),
            rotated_from=doc.get("rotated_from"),
            rotation_signature=doc.get("rotation_signature"),
            signature=str(doc["signature"]),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"the checkpoint cannot be read: {exc!r}") from exc


def private_key(text: str) -> Ed25519PrivateKey:
    """An Ed25519 key from its 32-byte seed, as hex (64 characters) or base64."""
    value = text.strip()
    try:
        seed = bytes.fromhex(value) if len(value) == 64 else base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise ValueError("an audit signing key is a 32-byte Ed25519 seed, as hex or base64") from exc
    if len(seed) != 32:
        raise ValueError(f"an audit signing key is a 32-byte Ed25519 seed; this one has {len(seed)} bytes")
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def fingerprint(public_key: str) -> str:
    """A short, readable fingerprint of a public key (hex): the first 16 bytes of its SHA-256, grouped."""
    digest = hashlib.sha256(bytes.fromhex(public_key)).hexdigest()[:32]
    return ":".join(digest[i : i + 4] for i in range(0, 32, 4))


def rotation_message(seq: int, new_public_key: str) -> bytes:
    return f"{FORMAT} rotation at {seq} to {new_public_key}".encode()


def next_checkpoint(
    previous: Checkpoint | None,
    heads: dict[int, PartitionHead],
    at: datetime,
    key: Ed25519PrivateKey,
    previous_key: Ed25519PrivateKey | None = None,
) -> Checkpoint:
    """The checkpoint after `previous`, signed with `key`.

    When `key` is not the key that signed `previous`, the new checkpoint carries
    the rotation, signed by `previous_key`, which must be that old key; without
    it the rotation is refused (ValueError), since no auditor could follow it.
    A head that did not move keeps its entry; a partition with no segment yet is
    left out. A head that went back (a lower last offset, or another segment or
    hash at the same offset) is refused (ValueError): the heads are plain,
    overwritable pointers, and signing one pointed back would endorse a cut tail.
    """
    public = public_hex(key)
    seq = 0 if previous is None else previous.seq + 1
    went_back = regressions(previous.heads if previous else {}, heads)
    if went_back:
        raise ValueError(f"not signing checkpoint {seq}: {'; '.join(went_back)}")
    rotated_from = rotation_signature = None
    if previous is not None and previous.public_key != public:
        if previous_key is None or public_hex(previous_key) != previous.public_key:
            raise ValueError(
                f"checkpoint {previous.seq} was signed by the key {previous.public_key[:16]}…, not this one; "
                "to rotate, set CALLVAULT_AUDIT_PREVIOUS_SIGNING_KEY to the key that signed it"
            )
        rotated_from = previous.public_key
        rotation_signature = previous_key.sign(rotation_message(seq, public)).hex()
    merged = {**(previous.heads if previous else {}), **heads}
    unsigned = Checkpoint(
        seq=seq,
        at=at,
        heads=merged,
        previous_sha256=GENESIS if previous is None else previous.sha256(),
        public_key=public,
        rotated_from=rotated_from,
        rotation_signature=rotation_signature,
    )
    return replace(unsigned, signature=key.sign(unsigned.signed_bytes()).hex())


@dataclass(frozen=True, slots=True)
class Freshness:
    """When it is now, and how often the leader signs (CALLVAULT_AUDIT_CHECKPOINT_S)."""

    now: datetime
    interval: timedelta

    def stale(self, newest: Checkpoint, end: datetime) -> str | None:
        """Why the newest checkpoint is too old to leave a period open: the leader signs every interval,
        so none for two of them (a minute at least, for a timer's jitter) is the tail cut, or no leader."""
        until = min(end, self.now)
        allowed = max(2 * self.interval, timedelta(minutes=1))
        if newest.at >= until - allowed:
            return None
        return (
            f"the newest checkpoint, {newest.seq}, was signed at {newest.at.isoformat()}, more than two "
            f"signing intervals ({allowed}) before {until.isoformat()}: the log's tail may have been cut, "
            "or no worker has led the group since"
        )


def regressions(before: dict[int, PartitionHead], after: dict[int, PartitionHead]) -> list[str]:
    """How each partition's head went back from `before` to `after`, in sentences; none when it did not.

    A log only grows: a head's last offset never falls, and at the same offset it names the same
    segment with the same hash.
    """
    found = []
    for partition, old in sorted(before.items()):
        new = after.get(partition)
        if new is None or new == old:
            continue
        if new.last_offset < old.last_offset:
            found.append(
                f"the head of partition {partition} went back from offset {old.last_offset} to "
                f"{new.last_offset}: the log's tail was cut or its head pointed back"
            )
        elif new.last_offset == old.last_offset:
            found.append(
                f"the head of partition {partition} names another segment at offset {old.last_offset}"
            )
    return found


def _verifies(public_key: str, signature: str, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key)).verify(
            bytes.fromhex(signature), message
        )
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass
class CheckpointTrail:
    """Checkpoints checked one after another, from one trusted by its public key.

    Each number is checked with every version the store keeps of its name. Two leaders for a moment
    (a rebalance) could each sign the same number before names were written once: two versions, both
    signed by the trusted key and both chained from the checkpoint before, are not a break, and the
    next checkpoint may continue from either; that is noted in `twins`. A version that does not
    verify, or does not chain, is a break whatever the other versions are.
    """

    trusted_key: str  # hex: the key the auditor trusts for the first checkpoint checked
    problems: list[str] = field(default_factory=list)
    twins: list[str] = field(default_factory=list)  # numbers signed twice, validly: what an auditor reads
    last: Checkpoint | None = None
    _candidates: list[Checkpoint] = field(default_factory=list)  # every valid version of the last number

    def add(self, cp: Checkpoint) -> bool:
        """Check the next checkpoint; False (with the reason in `problems`) when it cannot be trusted."""
        return self.add_versions([cp])

    def add_versions(self, versions: list[Checkpoint]) -> bool:
        """Check every stored version of the next checkpoint's name, newest first; False (with the
        reasons in `problems`) when any of them cannot be trusted."""
        found = [self._problem(cp) for cp in versions]
        refused = [problem for problem in found if problem is not None]
        if refused or not versions:
            self.problems.extend(refused)
            return False
        if len(versions) > 1:
            self.twins.append(
                f"checkpoint {versions[0].seq} was signed {len(versions)} times (two signers at a "
                f"rebalance): every version verifies and chains from checkpoint {versions[0].seq - 1}; "
                "not a break"
            )
        self._candidates = list(versions)
        self.last = versions[0]
        return True

    def _problem(self, cp: Checkpoint) -> str | None:
        key = self.trusted_key if self.last is None else self.last.public_key
        if cp.public_key != key:
            if cp.rotated_from != key or not cp.rotation_signature:
                return (
                    f"checkpoint {cp.seq} is signed by the key {cp.public_key[:16]}…, which no checkpoint "
                    f"trusted before it handed over to (expected {key[:16]}…)"
                )
            if not _verifies(key, cp.rotation_signature, rotation_message(cp.seq, cp.public_key)):
                return f"checkpoint {cp.seq}: the rotation to a new key is not signed by the old one"
        if not _verifies(cp.public_key, cp.signature, cp.signed_bytes()):
            return f"checkpoint {cp.seq}: its signature does not verify"
        if self.last is not None:
            if cp.seq != self.last.seq + 1:
                return f"checkpoint {cp.seq} follows {self.last.seq}: checkpoints are missing"
            chained = [c for c in self._candidates if c.sha256() == cp.previous_sha256]
            if not chained:
                return f"checkpoint {cp.seq} does not name checkpoint {self.last.seq} as its previous"
            went_back = regressions(chained[0].heads, cp.heads)
            if went_back:
                return f"checkpoint {cp.seq}: {'; '.join(went_back)}"
        return None
