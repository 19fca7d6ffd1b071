"""Call events: what the call-center platform publishes on `call-events`."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal, get_args

from pydantic import Field, TypeAdapter, model_validator

from callvault.contract.base import ContractModel
from callvault.contract.fields import E164, CallId, Sha256Hex, Tenant, Text, Timestamp

CONTENT_TYPES: dict[str, str] = {
    "audio/wav": "wav",
    "audio/mpeg": "mp3",
    "audio/ogg": "ogg",
    "audio/flac": "flac",
}


class CallEventBase(ContractModel):
    event_id: uuid.UUID
    call_id: CallId
    tenant: Tenant
    occurred_at: Timestamp


class CallStarted(CallEventBase):
    type: Literal["call.started"] = "call.started"
    direction: Literal["inbound", "outbound"]
    caller: Annotated[E164, Field(json_schema_extra={"personal": True})]
    callee: Annotated[E164, Field(json_schema_extra={"personal": True})]
    agent_id: Annotated[Text, Field(min_length=1, max_length=128)]
    language: Annotated[Text, Field(min_length=2, max_length=35, description="BCP 47 tag")]
    queue: Annotated[str | None, Field(
        None, pattern=r"^[a-z0-9._-]{1,64}$",
        description="additive (2026-12-01): the queue, campaign or skill the call came through",
    )] = None  # fmt: skip


class DisclosurePlayed(CallEventBase):
    """`occurred_at` is when playback began."""

    type: Literal["disclosure.played"] = "disclosure.played"
    prompt_id: Annotated[Text, Field(min_length=1, max_length=128)]
    language: Annotated[Text, Field(min_length=2, max_length=35)]
    completed: bool
    duration_ms: Annotated[int, Field(ge=0)]


class RecordingStored(CallEventBase):
    type: Literal["recording.stored"] = "recording.stored"
    source_uri: Annotated[str, Field(pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+$")]
    sha256: Sha256Hex
    size_bytes: Annotated[int, Field(ge=0)]
    content_type: Literal["audio/wav", "audio/mpeg", "audio/ogg", "audio/flac"]
    recording_started_at: Timestamp
    recording_ended_at: Timestamp

    @model_validator(mode="after")
    def _ends_after_it_starts(self) -> RecordingStored:
        if self.recording_ended_at < self.recording_started_at:
            raise ValueError("recording_ended_at is before recording_started_at")
        return self

    def source_problem(self, allowed_buckets: frozenset[str]) -> str | None:
        """Why callvault must not touch this source, or None when it may.

        The worker reads, copies and deletes a source with every version. Only a
        bucket where uploads belong (the staging bucket, `CALLVAULT_SOURCE_BUCKETS`)
        may be named, with a plain key: no path steps, no empty segments, no
        control characters, at most S3's 1,024 bytes.
        """
        bucket, key = self.source_bucket, self.source_key
        if bucket not in allowed_buckets:
            return (
                f"source_uri names the bucket {bucket!r}, which is not where uploads belong "
                f"(accepted: {', '.join(sorted(allowed_buckets))}; see CALLVAULT_SOURCE_BUCKETS)"
            )
        if any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in key):
            return "source_uri's key holds a control character"
        segments = key.split("/")
        if any(seg in ("", ".", "..") for seg in segments):
            return "source_uri's key has an empty, '.' or '..' segment; it must be a plain object key"
        if len(key.encode("utf-8")) > 1024:
            return "source_uri's key is longer than S3's 1,024 bytes"
        return None

    @property
    def source_bucket(self) -> str:
        return self.source_uri[5:].split("/", 1)[0]

    @property
    def source_key(self) -> str:
        return self.source_uri[5:].split("/", 1)[1]

    @property
    def extension(self) -> str:
        return CONTENT_TYPES[self.content_type]


class CallEnded(CallEventBase):
    type: Literal["call.ended"] = "call.ended"
    duration_s: Annotated[float, Field(ge=0)]


class RecordingObjected(CallEventBase):
    """The participant objected to the recording."""

    type: Literal["recording.objected"] = "recording.objected"


class _PauseEvent(CallEventBase):
    offset_ms: Annotated[int, Field(ge=0)] | None = Field(
        default=None,
        description="where in the recording, where the platform knows it: milliseconds since the recording "
        "started, paused time included (else `occurred_at` places it)",
    )
    mode: Literal["silence", "skip"] = Field(
        description="silence: the paused span is in the audio, silent; skip: it is left out of the audio"
    )


class RecordingPaused(_PauseEvent):
    """Additive (2026-12-06): the platform paused the recording (Secure Pause, SuspendContactRecording)."""

    type: Literal["recording.paused"] = "recording.paused"
    marker_tone_hz: Annotated[float, Field(gt=20, lt=20000)] | None = Field(
        default=None,
        description="additive (2026-12-06): a tone the platform plays into the paused span (silence mode); "
        "the audio check takes it out before measuring",
    )


class RecordingResumed(_PauseEvent):
    """Additive (2026-12-06): the platform resumed the recording."""

    type: Literal["recording.resumed"] = "recording.resumed"


# A card number is 13 to 19 digits: a payment event holding a run of 13 or more anywhere is refused whole
# (a dead letter, its digits redacted), so no card number travels further than `call-events`.
CARD_DIGITS = 13


class _PaymentEvent(CallEventBase):
    payment_id: Annotated[Text, Field(min_length=1, max_length=64)] | None = Field(
        default=None, description="the platform's id of the payment, never card data"
    )


class PaymentStarted(_PaymentEvent):
    """Additive (2026-12-06): card data may be spoken or keyed from now on."""

    type: Literal["payment.started"] = "payment.started"


class PaymentEnded(_PaymentEvent):
    """Additive (2026-12-06): the payment's window is over."""

    type: Literal["payment.ended"] = "payment.ended"


# Every event of a call but its start: the worker keeps these as they came (`rules.call_state.CallFact`
# adds the start as pseudonymised facts), so they are listed once, here.
AfterStart = (
    DisclosurePlayed
    | RecordingStored
    | CallEnded
    | RecordingObjected
    | RecordingPaused
    | RecordingResumed
    | PaymentStarted
    | PaymentEnded
)
CallEvent = Annotated[CallStarted | AfterStart, Field(discriminator="type")]
# Every call event type, read off the union above: a type added there is here too (redaction reads this).
CALL_EVENT_TYPES: tuple[type[CallEventBase], ...] = get_args(get_args(CallEvent)[0])
call_event_adapter: TypeAdapter[CallEvent] = TypeAdapter(CallEvent)
