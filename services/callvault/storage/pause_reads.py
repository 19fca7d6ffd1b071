"""Reading a recording's paused audio from its source, before it is archived. Blocking: off the loop.

Only the header and the paused spans are read (ranged GETs), never the whole recording: a call with one
pause costs two GETs more than one without. A span is streamed in bounded chunks, so a long pause in a
48 kHz stereo recording does not sit in memory at once. What is measured and what it means is
`rules.pause_audio`'s; any failure to read is the source's fault, like a copy's.
"""

from __future__ import annotations

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
from callvault.storage.archive import on_source
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


def _span_level(
    s3: BaseClient, bucket: str, key: str, part: PausedPart, layout: WavLayout, keyring: Keyring | None
) -> float | None:
    span = measured_span(part, layout)
    byte_range = layout.byte_range(*span) if span is not None else None
    if byte_range is None:
        return None
    first, last = byte_range
    chunk = layout.rate * WINDOW_MS // 1000 * layout.frame_bytes * CHUNK_WINDOWS
    body = _open(s3, keyring, bucket, key, first, last)
    loudest = FLOOR_DBFS
    try:
        while data := body.read(chunk):
            loudest = max(loudest, loudest_dbfs(data, layout, part.marker_tone_hz))
    finally:
        body.close()
    return loudest


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
    kind = content_type.split(";")[0].strip().lower()
    if kind not in WAV_TYPES:
        return AudioFinding(False, True, f"{kind} audio is judged by the events alone")
    try:
        head = on_source(_read, s3, bucket, key, 0, max(0, min(HEAD_BYTES, object_size) - 1), keyring)
    except SourceFault as fault:
        if is_not_found(fault.cause):
            return None  # not uploaded yet: the copy looks for it again, and so does this
        raise
    layout = wav_layout(head, object_size)
    if isinstance(layout, str):
        return AudioFinding(False, True, f"{layout}: judged by the events alone")
    skipped = skip_finding(parts, layout, recording_ms)
    levels = [
        level
        for part in parts
        if part.mode == "silence"
        and (level := on_source(_span_level, s3, bucket, key, part, layout, keyring)) is not None
    ]
    return judge_levels(levels, threshold_dbfs, skipped)
