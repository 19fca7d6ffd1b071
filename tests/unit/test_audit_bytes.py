"""The audit log checked by a verifier that shares no code with callvault (issue 25).

`docs/auditors.md` ("The bytes, for your own verifier") claims an auditor
needs no trust in callvault's code. The log here is written by callvault's own
archiver (`stream.audit_archiver.AuditArchiver`: segments, heads, signed
checkpoints) into moto; everything below `# -- the independent verifier` reads
the raw objects with boto3 and checks them using only what that section says,
Python's gzip, hashlib and json, and `cryptography`'s Ed25519. It must not
import callvault.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from moto import mock_aws

from callvault.clock import FixedClock
from callvault.rules.audit_chain import LoggedRecord
from callvault.settings import Settings
from callvault.storage.bootstrap import init_storage
from callvault.storage.client import make_s3_client
from callvault.stream.audit_archiver import AuditArchiver
from callvault.stream.offloop import S3Runner

T0 = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
SEED = secrets.token_hex(32)
PUBLIC = (
    Ed25519PrivateKey.from_private_bytes(bytes.fromhex(SEED))
    .public_key()
    .public_bytes(Encoding.Raw, PublicFormat.Raw)
    .hex()
)
BUCKET = "cvt-audit-bytes"


@pytest.fixture
async def s3() -> Iterator[Any]:
    """Three rounds: a segment per partition, then a checkpoint; values with non-ASCII text."""
    with mock_aws():
        settings = Settings(partitions=2, audit_bucket=BUCKET, s3_endpoint="", audit_signing_key=SEED)
        client = make_s3_client(settings)
        init_storage(client, settings)
        clock = FixedClock(T0)
        runner = S3Runner(client, max_workers=2, endpoint=None, backoff_cap_s=0.05, give_up_after=3)
        archiver = AuditArchiver(settings, runner, clock)
        for round_ in range(3):
            for partition in (0, 1):
                value = json.dumps({"type": "recording.accessed", "note": "Zoë €"}, ensure_ascii=False)
                keys = [None if i == 0 else f"c-{i}" for i in range(5)]  # a record may have no key
                records = [LoggedRecord(partition, round_ * 5 + i, key, value) for i, key in enumerate(keys)]
                await archiver.archive(partition, records)
            clock._at = T0 + timedelta(hours=round_ + 1)  # noqa: SLF001 - the test turns its clock
            await archiver.checkpoint()
        runner.close()
        yield client


def test_an_independent_verifier_accepts_the_log_callvault_writes(s3: Any) -> None:
    segments, checkpoints = _read(s3)
    assert len(segments) == 6 and len(checkpoints) == 3
    assert verify(segments, checkpoints, PUBLIC) == []


def test_an_independent_verifier_finds_an_edited_segment_and_a_forged_checkpoint(s3: Any) -> None:
    segments, checkpoints = _read(s3)
    name = sorted(segments)[1]
    edited = gzip.decompress(segments[name]).replace("Zoë".encode(), b"Zoe", 1)
    segments[name] = gzip.compress(edited)
    found = verify(segments, checkpoints, PUBLIC)
    assert any("does not name" in p or "not the hash" in p for p in found), found

    segments, checkpoints = _read(s3)
    last = sorted(checkpoints)[-1]
    checkpoints[last] = checkpoints[last].replace(b'"seq":2', b'"seq":3')
    assert any("signature" in p for p in verify(segments, checkpoints, PUBLIC))


def _read(s3: Any) -> tuple[dict[str, bytes], dict[str, bytes]]:
    def objects(prefix: str) -> dict[str, bytes]:
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
        named = [o["Key"] for o in listed if not o["Key"].endswith(".claim")]  # the doc: claims are skipped
        return {key: s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in named}

    return objects("segments/"), objects("checkpoints/")


# -- the independent verifier: written from docs/auditors.md alone, no callvault import below --


def _canonical(obj: dict[str, Any], ascii_only: bool) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=ascii_only).encode()


def _signed_by(public_hex: str, signature_hex: str, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex)).verify(
            bytes.fromhex(signature_hex), message
        )
    except (InvalidSignature, ValueError):
        return False
    return True


def verify(segments: dict[str, bytes], checkpoints: dict[str, bytes], trusted_key: str) -> list[str]:
    """Every problem found: the chain of each partition, then the checkpoints over it."""
    problems: list[str] = []
    hashes: dict[str, str] = {}
    by_partition: dict[str, list[str]] = {}
    for name in sorted(segments):
        by_partition.setdefault(name.split("/")[1], []).append(name)
    for names in by_partition.values():
        previous, next_offset = "0" * 64, None
        for name in names:
            body = gzip.decompress(segments[name])
            lines = body.split(b"\n")
            if lines[-1] != b"":
                problems.append(f"{name}: its last line is not ended by a newline")
            header = json.loads(lines[0])
            records = [json.loads(line) for line in lines[1:-1]]
            if lines[0] != _canonical(header, ascii_only=False):
                problems.append(f"{name}: its header is not in the canonical form")
            if header["type"] != "audit.segment" or header["records"] != len(records):
                problems.append(f"{name}: its header does not describe it")
            offsets = [r["offset"] for r in records]
            if offsets != list(range(header["first_offset"], header["last_offset"] + 1)):
                problems.append(
                    f"{name}: its offsets are not {header['first_offset']}..{header['last_offset']}"
                )
            if next_offset is not None and header["first_offset"] != next_offset:
                problems.append(f"{name}: it starts at {header['first_offset']}, not {next_offset}")
            if header["previous_sha256"] != previous:
                problems.append(f"{name}: it does not name the hash of the segment before it")
            previous = hashlib.sha256(body).hexdigest()
            hashes[name] = previous
            next_offset = header["last_offset"] + 1
    key, previous_doc = trusted_key, "0" * 64
    for seq, name in enumerate(sorted(checkpoints)):
        raw = checkpoints[name]
        doc = json.loads(raw)
        unsigned = {k: v for k, v in doc.items() if k != "signature"}
        if raw != _canonical(doc, ascii_only=True):
            problems.append(f"{name}: not in the canonical form")
        if doc["public_key"] != key:
            rotation = (
                f"callvault.audit.checkpoint/1 rotation at {doc['seq']} to {doc['public_key']}".encode()
            )
            if doc["rotated_from"] != key or not _signed_by(key, doc["rotation_signature"] or "", rotation):
                problems.append(f"{name}: signed by a key the trusted one never handed over to")
            key = doc["public_key"]
        if not _signed_by(key, doc["signature"], _canonical(unsigned, ascii_only=True)):
            problems.append(f"{name}: its signature does not verify")
        if doc["seq"] != seq or doc["previous_sha256"] != previous_doc:
            problems.append(f"{name}: it does not follow the checkpoint before it")
        for head in doc["heads"].values():
            if hashes.get(head["segment"]) != head["sha256"]:
                problems.append(f"{name}: {head['segment']} is not the hash it names")
        previous_doc = hashlib.sha256(raw).hexdigest()
    return problems
