"""Reading a recording's paused audio from its source, before it is archived. Blocking: off the loop.

A recording stored as it is (a store-side copy) is heard by range: only the header and the paused spans
are read (ranged GETs), a call with one pause costing two GETs more than one without, and a span is
streamed in bounded chunks, so a long pause in a 48 kHz stereo recording does not sit in memory at
once. A recording to be sealed in one PUT is read whole anyway: `hear_source` reads it by one GET,
hears it in memory and hands the bytes on to be sealed, so a payment call costs no read more than any
other (issue 28). What is measured and what it means is `rules.pause_audio`'s; any failure to read is
the source's fault, like a copy's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.client import BaseClient

from callvault.rules.pause_audio import (
    FLOOR_DBFS,
    HEAD_BYTES,
    WINDOW_MS,
    AudioFinding,
    PausedPart,
    WavLayout,
    judge_levels,
    loudest_dbfs,
    measured_span,
    skip_finding,
    wav_layout,
)
from callvault.storage.archive import get_or_none, on_source
from callvault.storage.errors import SourceFault, is_not_found
from callvault.storage.sealing import Keyring, open_plain

# Content types whose audio is measured; any other is judged by the events alone (docs/contract.md).
WAV_TYPES = frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"})
CHUNK_WINDOWS = 64  # windows read and measured at a time: 6.4 s of audio


def _open(s3: BaseClient, keyring: Keyring | None, bucket: str, key: str, first: int, last: int) -> Any:
    """A body of bytes `first`..`last` of the audio: the source's own, or the archived recording's
    opened under its client's key (`keyring`: a recording heard after it was archived)."""
    if keyring is not None:
        return open_plain(s3, keyring, bucket, key, first, last)
    return s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={first}-{last}")["Body"]


def _read(s3: BaseClient, bucket: str, key: str, first: int, last: int, keyring: Keyring | None) -> bytes:
    body = _open(s3, keyring, bucket, key, first, last)
    try:
        return bytes(body.read())
    finally:
        body.close()


def _span_level(read: SpanReader, part: PausedPart, layout: WavLayout) -> float | None:
    span = measured_span(part, layout)
    byte_range = layout.byte_range(*span) if span is not None else None
    if byte_range is None:
        return None
    chunk = layout.rate * WINDOW_MS // 1000 * layout.frame_bytes * CHUNK_WINDOWS
    loudest = FLOOR_DBFS
    for data in read(*byte_range, chunk):
        loudest = max(loudest, loudest_dbfs(data, layout, part.marker_tone_hz))
    return loudest


# Bytes `first`..`last` of the audio, in chunks of at most the size given.
SpanReader = Callable[[int, int, int], Iterator[bytes]]


def _judge(
    head: bytes, read: SpanReader, *, object_size: int, parts: list[PausedPart], recording_ms: int,
    threshold_dbfs: float,
) -> AudioFinding:  # fmt: skip
    layout = wav_layout(head, object_size)
    if isinstance(layout, str):
        return AudioFinding(False, True, f"{layout}: judged by the events alone")
    skipped = skip_finding(parts, layout, recording_ms)
    levels = [
        level
        for part in parts
        if part.mode == "silence" and (level := _span_level(read, part, layout)) is not None
    ]
    return judge_levels(levels, threshold_dbfs, skipped)


def _not_wav(content_type: str) -> AudioFinding | None:
    """The finding of a format that is not measured (judged by its events alone); None for WAV."""
    kind = content_type.split(";")[0].strip().lower()
    if kind in WAV_TYPES:
        return None
    return AudioFinding(False, True, f"{kind} audio is judged by the events alone")


def measure_paused_audio(
    s3: BaseClient,
    bucket: str,
    key: str,
    *,
    object_size: int,
    content_type: str,
    parts: list[PausedPart],
    recording_ms: int,
    threshold_dbfs: float,
    keyring: Keyring | None = None,
) -> AudioFinding | None:
    """What the source's audio says of its pauses (`rules.pause_audio.AudioFinding`); None when the
    source is not there (yet). `keyring`: the recording is the archived one, opened under its key."""
    other = _not_wav(content_type)
    if other is not None:
        return other
    try:
        head = on_source(_read, s3, bucket, key, 0, max(0, min(HEAD_BYTES, object_size) - 1), keyring)
    except SourceFault as fault:
        if is_not_found(fault.cause):
            return None  # not uploaded yet: the copy looks for it again, and so does this
        raise

    def read(first: int, last: int, chunk: int) -> Iterator[bytes]:
        try:  # what fails here is the source's fault, like a copy's
            body = _open(s3, keyring, bucket, key, first, last)
            try:
                while data := body.read(chunk):
                    yield data
            finally:
                body.close()
        except Exception as exc:
            raise SourceFault(exc) from exc

    return _judge(
        head, read, object_size=object_size, parts=parts, recording_ms=recording_ms,
        threshold_dbfs=threshold_dbfs,
    )  # fmt: skip


def hear_in_memory(
    audio: bytes, *, content_type: str, parts: list[PausedPart], recording_ms: int, threshold_dbfs: float
) -> AudioFinding:
    """`measure_paused_audio` of a recording already read whole (to be sealed): no request at all.
    Pure; CPU-bound on a long pause, so call it off the loop."""
    other = _not_wav(content_type)
    if other is not None:
        return other

    def read(first: int, last: int, chunk: int) -> Iterator[bytes]:
        end = min(last + 1, len(audio))
        for at in range(first, end, chunk):
            yield audio[at : min(at + chunk, end)]

    return _judge(
        audio[:HEAD_BYTES], read, object_size=len(audio), parts=parts, recording_ms=recording_ms,
        threshold_dbfs=threshold_dbfs,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Heard:
    """What a source's pauses say (None: the source is not there yet) and, where it was read whole to be
    heard, its bytes: sealed and written next (`archive.copy_recording(plain=...)`), not read again."""

    finding: AudioFinding | None
    plain: bytes | None = None


def hear_source(
    s3: BaseClient, bucket: str, key: str, *, whole: bool, object_size: int, content_type: str,
    parts: list[PausedPart], recording_ms: int, threshold_dbfs: float,
) -> Heard:  # fmt: skip
    """Hear a source's pauses before it is archived. `whole` (it is to be sealed, so read whole anyway):
    one GET of all of it, heard in memory, instead of a header and a span now and the whole again to
    seal it. A source of another size than announced is heard by range, and refused by the copy."""
    if not whole or _not_wav(content_type) is not None:
        return Heard(measure_paused_audio(
            s3, bucket, key, object_size=object_size, content_type=content_type, parts=parts,
            recording_ms=recording_ms, threshold_dbfs=threshold_dbfs,
        ))  # fmt: skip
    answer = on_source(get_or_none, s3, bucket, key)
    if answer is None:
        return Heard(None)  # not uploaded yet: looked for again
    body = answer["Body"]
    try:
        if int(answer["ContentLength"]) != object_size:
            return hear_source(
                s3, bucket, key, whole=False, object_size=object_size, content_type=content_type,
                parts=parts, recording_ms=recording_ms, threshold_dbfs=threshold_dbfs,
            )  # fmt: skip
        try:
            plain = bytes(body.read())
        except Exception as exc:
            raise SourceFault(exc) from exc
    finally:
        body.close()
    heard = hear_in_memory(
        plain,
        content_type=content_type,
        parts=parts,
        recording_ms=recording_ms,
        threshold_dbfs=threshold_dbfs,
    )
    return Heard(heard, plain)
