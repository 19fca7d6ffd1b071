"""Portability (GDPR art. 20): an access request's export as JSON of a published schema with a manifest
of SHA-256s, sent where the subject asks; through the worker's command handler in memory."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from callvault.settings import Settings
from callvault.stream.subject_client import BadRequest, subject_command
from callvault.testing import Harness
from tests.unit.test_subject_identity_in_memory import of_request
from tests.unit.test_subjects_in_memory import CALLEE, archived_call, new_number, pseudonym

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "exports"
RECIPIENT = "another-org-inbox"


@pytest.fixture
async def h() -> Any:
    async with Harness() as harness:
        harness.s3.create_bucket(
            Bucket=RECIPIENT, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        yield harness


def portable(h: Harness, number: str, deliver_to: str | None = None) -> Any:
    return subject_command(
        h.settings, "access", number, "acme", command_id=uuid.uuid4(), requested_by="dpo@acme",
        reason="portability request by e-mail", verified_by="desk", received_at=None, now=h.clock.now(),
        export_format="portable", deliver_to=deliver_to,
    )  # fmt: skip


def schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{name}.json").read_text())


async def test_a_portable_export_is_schema_valid_json_with_every_file_hashed_and_is_delivered(
    h: Harness,
) -> None:
    her = new_number()
    calls = [await archived_call(h, her) for _ in range(2)]
    command = portable(h, her, deliver_to=f"s3://{RECIPIENT}/from-acme")
    rid = str(command.event_id)

    await h.command(command)

    delivered, answer = of_request(h, rid)[-2:]
    assert answer["type"] == "subject.access_fulfilled" and answer["export_format"] == "portable"
    assert delivered["type"] == "subject.export_delivered"
    assert (
        delivered["delivered_to"]
        == answer["delivered_to"]
        == f"s3://{RECIPIENT}/from-acme/callvault-export-{rid}.zip"
    )
    sent = h.s3.get_object(Bucket=RECIPIENT, Key=f"from-acme/callvault-export-{rid}.zip")["Body"].read()
    assert hashlib.sha256(sent).hexdigest() == delivered["sha256"] and len(sent) == delivered["size_bytes"]

    with zipfile.ZipFile(io.BytesIO(sent)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        jsonschema.validate(manifest, schema("portable.manifest"))
        assert manifest["subject"] == pseudonym(h, her)
        listed = {f["path"]: f for f in manifest["files"]}
        assert set(listed) == {n for n in archive.namelist() if n != "manifest.json"}
        for path, entry in listed.items():
            assert hashlib.sha256(archive.read(path)).hexdigest() == entry["sha256"], path
        for call in calls:
            doc = json.loads(archive.read(f"calls/{call.call_id}.json"))
            jsonschema.validate(doc, schema("portable.call"))
            assert (
                doc["your_side"] == ["caller"]
                and doc["recording"]["file"] == f"recordings/{call.call_id}.wav"
            )
            assert listed[f"calls/{call.call_id}.json"]["schema"].endswith("portable.call.json")
            text = json.dumps(doc)
            assert pseudonym(h, CALLEE) not in text and "agent" not in text, "nothing of anyone else"


@pytest.mark.parametrize(
    ("where", "why"),
    [
        ("s3://callvault-recordings/x", "callvault's own bucket"),
        ("s3://no-such-recipient/x", "does not exist"),
    ],
)
async def test_a_recipient_callvault_may_not_send_to_is_refused_before_any_export(
    h: Harness, where: str, why: str
) -> None:
    her = new_number()
    await archived_call(h, her)
    await h.command(portable(h, her, deliver_to=where))
    assert why in h.dead_letters[-1].error
    assert "was not sent" in h.dead_letters[-1].error
    assert h.objects(h.settings.exports_bucket) == [], "no export built for a refused recipient"


def test_a_recipient_is_for_a_portable_access_request_only() -> None:
    with pytest.raises(BadRequest, match="give --format portable"):
        subject_command(
            Settings(), "access", "+32470000001", "acme", command_id=uuid.uuid4(), requested_by="dpo",
            reason="r", verified_by=None, received_at=None, now=datetime.now(UTC), deliver_to="s3://x-y-z/p",
        )  # fmt: skip
