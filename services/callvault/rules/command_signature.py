"""Who sent a command: Ed25519 signatures over the command's canonical JSON (issue 26, item 4).

The `commands` topic is the DPO's authority: a command erases a subject, releases a
hold. Kafka's ACLs say who may write the topic, not who wrote a record, so each
command carries `signed_by` (a key's name) and `signature` (Ed25519, hex, over the
canonical JSON of the command without `signature`). The worker trusts only the
public keys it is given (`CALLVAULT_COMMAND_KEYS`), and the name of the key that
verifies becomes `requested_by` on everything the command causes.

Canonical JSON is the received object, `signature` left out, keys sorted, no
spaces, UTF-8: the bytes as decoded from the record, not as callvault's models
would write them again, so a field the worker does not know is signed too.

Pure: no I/O, no clock of its own. The ledger of ids already seen (replays) is in
`callvault.storage.command_ledger`; the adapter that ties them is
`callvault.stream.command_gate`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from callvault.contract.lifecycle import CommandRefusalReason
from callvault.rules.audit_checkpoint import fingerprint, private_key, public_hex

RefusalReason = CommandRefusalReason

KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_PUBLIC_HEX = re.compile(r"[0-9a-f]{64}")
_SIGNATURE_HEX = re.compile(r"[0-9a-f]{128}")


@dataclass(frozen=True)
class Verified:
    """The command is signed by this key's owner."""

    name: str


@dataclass(frozen=True)
class Refusal:
    """Why a command does not count, and a sentence for the dead letter and the CLI."""

    reason: RefusalReason
    claimed_signer: str | None
    sentence: str


@dataclass(frozen=True)
class SigningIdentity:
    """An issuer: the name the worker knows their key by, and the private key."""

    name: str
    key: Ed25519PrivateKey

    @property
    def public_key(self) -> str:
        return public_hex(self.key)


def canonical_bytes(doc: Mapping[str, Any]) -> bytes:
    """What is signed: the command without its signature, keys sorted, no whitespace, UTF-8."""
    unsigned = {k: v for k, v in doc.items() if k != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign_document(doc: Mapping[str, Any], identity: SigningIdentity) -> dict[str, Any]:
    """The command as sent: `signed_by` the identity's name, and its signature over the rest."""
    signed = {k: v for k, v in doc.items() if k != "signature"}
    signed["signed_by"] = identity.name
    signed["signature"] = identity.key.sign(canonical_bytes(signed)).hex()
    return signed


def check_signature(doc: Mapping[str, Any], keys: Mapping[str, str]) -> Verified | Refusal:
    """Whether one of the trusted public keys (name -> hex) signed this command."""
    claimed, signature = doc.get("signed_by"), doc.get("signature")
    claimed_name = claimed if isinstance(claimed, str) and claimed else None
    if claimed_name is None or not isinstance(signature, str) or not signature:
        return Refusal(
            "unsigned",
            claimed_name,
            "the command is not signed (no signed_by and signature): a command counts only when its "
            "issuer's key signs it; the CLI signs with CALLVAULT_COMMAND_SIGNING_KEY",
        )
    shown = claimed_name[:64]
    public = keys.get(claimed_name)
    if public is None:
        known = ", ".join(sorted(keys)) or "none"
        return Refusal(
            "unknown_key",
            shown,
            f"the command is signed by {shown!r}, a key this worker does not know "
            f"(CALLVAULT_COMMAND_KEYS names: {known})",
        )
    if not _SIGNATURE_HEX.fullmatch(signature):
        return Refusal("bad_signature", shown, f"the signature claimed by {shown!r} is not 64 bytes of hex")
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public)).verify(
            bytes.fromhex(signature), canonical_bytes(doc)
        )
    except InvalidSignature:
        return Refusal(
            "bad_signature",
            shown,
            f"the signature does not verify under the key of {shown!r} ({fingerprint(public)}): "
            "the command was changed after it was signed, or signed with another key",
        )
    return Verified(claimed_name)


def check_age(requested_at: datetime, now: datetime, max_age: timedelta, signer: str) -> Refusal | None:
    """A command is carried out within `max_age` of being issued, or not at all.

    Old signed commands are what a replay is made of; a window bounds how long
    the ledger of seen ids must be trusted. A date as far ahead of the worker's
    clock is refused too, since it would stretch that window.
    """
    if now - requested_at > max_age:
        return Refusal(
            "too_old",
            signer,
            f"the command was issued at {requested_at.isoformat()}, more than {_span(max_age)} ago "
            "(CALLVAULT_COMMAND_MAX_AGE): issue it again",
        )
    if requested_at - now > max_age:
        return Refusal(
            "too_old",
            signer,
            f"the command is dated {requested_at.isoformat()}, more than {_span(max_age)} ahead of the "
            "worker's clock (CALLVAULT_COMMAND_MAX_AGE): check the issuer's clock",
        )
    return None


def replay_verdict(
    first_seen_at: tuple[int, int] | None, here: tuple[int, int]
) -> Literal["first", "redelivered", "replayed"]:
    """A command id seen before at this partition and offset is Kafka redelivering it (at least
    once, after a crash); seen anywhere else, somebody sent it again."""
    if first_seen_at is None:
        return "first"
    return "redelivered" if tuple(first_seen_at) == tuple(here) else "replayed"


def replayed(command_id: str, signer: str, first_seen_at: tuple[int, int]) -> Refusal:
    partition, offset = first_seen_at
    return Refusal(
        "replayed",
        signer,
        f"command {command_id} was already taken at partition {partition}, offset {offset}: "
        "a command counts once; a new request needs a new command",
    )


def parse_command_keys(text: str) -> dict[str, str]:
    """`name=public key hex` entries, comma- or line-separated, `#` comments; or `@file` with them.

    Raises ValueError with the entry at fault (a public key is no secret: it may be shown).
    """
    text = text.strip()
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read the command keys file {str(path)!r}: {exc.strerror}") from exc
    keys: dict[str, str] = {}
    for line in text.splitlines():
        for entry in line.split("#", 1)[0].split(","):
            entry = entry.strip()
            if not entry:
                continue
            name, sep, public = (part.strip() for part in entry.partition("="))
            if not sep or not KEY_NAME.fullmatch(name):
                raise ValueError(
                    f"{entry[:80]!r} is not NAME=PUBLIC_KEY (a name of letters, digits and ._@-, "
                    "then the 64 hex characters `callvault keys new NAME` prints)"
                )
            if not _PUBLIC_HEX.fullmatch(public.lower()):
                raise ValueError(f"the public key of {name!r} is not 64 hex characters")
            if name in keys and keys[name] != public.lower():
                raise ValueError(f"{name!r} is given two different public keys")
            keys[name] = public.lower()
    return keys


def parse_signing_identity(text: str) -> SigningIdentity:
    """`NAME:SEED`, the seed 32 bytes as hex or base64, as `callvault keys new NAME` prints it."""
    name, sep, seed = text.strip().partition(":")
    if not sep or not KEY_NAME.fullmatch(name):
        raise ValueError(
            "a command signing key is NAME:SEED, as `callvault keys new NAME` prints it "
            "(the name the worker's CALLVAULT_COMMAND_KEYS knows the public half by)"
        )
    try:
        key = private_key(seed)
    except ValueError:
        raise ValueError(
            f"the seed of command signing key {name!r} is not 32 bytes of Ed25519 as hex or base64"
        ) from None
    return SigningIdentity(name, key)


def new_identity(name: str) -> SigningIdentity:
    """A fresh key pair for an issuer named `name` (a person or a role)."""
    if not KEY_NAME.fullmatch(name):
        raise ValueError(f"{name[:80]!r} is not a key name: letters, digits and ._@-, at most 64")
    return SigningIdentity(name, Ed25519PrivateKey.generate())


def seed_text(identity: SigningIdentity) -> str:
    """The identity as CALLVAULT_COMMAND_SIGNING_KEY takes it."""
    seed = identity.key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return f"{identity.name}:{seed.hex()}"


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes} minutes" if minutes < 120 else f"{minutes // 60} hours"
