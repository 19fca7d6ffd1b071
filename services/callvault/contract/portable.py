"""The portable export (GDPR art. 20): what a subject receives to take to another organisation.

One ZIP: `manifest.json` (`PortableManifest`), one `calls/{call_id}.json` per call (`PortableCall`: what
the subject provided or what was observed of them, nothing of the other participants or of the agent)
and `recordings/{call_id}.{ext}` while a recording is kept; the manifest names every other file with its
SHA-256 and size. Both schemas are published under `schemas/exports/` (`callvault schemas write`), so
the receiving organisation can read the archive without callvault.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from callvault.contract.base import ContractModel
from callvault.contract.fields import CallId, Sha256Hex, Tenant, Timestamp

PORTABLE_FORMAT = "callvault.portable/v1"


class PortableRecording(ContractModel):
    file: str | None = Field(description="the recording's path in the archive; None once it is erased")
    sha256: Sha256Hex = Field(description="of the audio as the platform delivered it")
    size_bytes: int = Field(ge=0)
    content_type: str
    started_at: Timestamp | None = None
    ended_at: Timestamp | None = None


class PortableCall(ContractModel):
    """One call, as it concerns the subject."""

    format: Literal["callvault.portable/v1"] = PORTABLE_FORMAT
    call_id: CallId
    tenant: Tenant = Field(description="the client the call was made for")
    started_at: Timestamp | None = None
    ended_at: Timestamp | None = None
    duration_s: float | None = None
    direction: str | None = None
    language: str | None = None
    your_side: list[Literal["caller", "callee"]] = Field(description="which side of the call the subject was")
    recording_disclosed_at: Timestamp | None = Field(None, description="when the recording disclosure played")
    recording: PortableRecording | None = None


class PortableFile(ContractModel):
    path: str
    sha256: Sha256Hex
    size_bytes: int = Field(ge=0)
    schema_: str | None = Field(
        None, alias="schema", description="the `$id` of the file's JSON Schema, if any"
    )


class PortableManifest(ContractModel):
    format: Literal["callvault.portable/v1"] = PORTABLE_FORMAT
    request_id: str
    tenant: Tenant
    subject: str = Field(description="the subject's pseudonym in this tenant")
    generated_at: Timestamp
    files: list[PortableFile]
    about: str


SCHEMA_IDS = {
    "portable.call": "https://callvault.dev/schemas/v1/exports/portable.call.json",
    "portable.manifest": "https://callvault.dev/schemas/v1/exports/portable.manifest.json",
}
