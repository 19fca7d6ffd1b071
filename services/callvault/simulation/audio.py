"""Small, valid WAV files: 8 kHz 16-bit mono, a tone and a little hiss, distinct per call.

A payment call's recording is silent where its pause is (`silent`: spans in seconds of audio), down to a
faint noise floor (about -72 dBFS, as a line is never digitally silent), optionally with the platform's
marker tone in it; a pause that is claimed but not kept simply leaves the speech-level signal there.
"""

from __future__ import annotations

import io
import math
import random
import wave
from collections.abc import Sequence

RATE = 8000
FLOOR = 8  # the noise floor's peak, in 16-bit steps


def make_wav(
    seed: int,
    seconds: float,
    silent: Sequence[tuple[float, float]] = (),
    marker_hz: float | None = None,
) -> bytes:
    rng = random.Random(seed)
    freq = 220 + rng.randrange(0, 660)
    period = max(1, round(RATE / freq))
    cycle = bytearray()
    for i in range(period):
        sample = int(9000 * math.sin(2 * math.pi * i / period)) + rng.randrange(-400, 400)
        cycle += sample.to_bytes(2, "little", signed=True)
    frames_needed = int(RATE * seconds)
    pcm = bytearray((bytes(cycle) * (frames_needed // period + 1))[: frames_needed * 2])
    if silent:
        quiet = _quiet(rng, marker_hz)
        for start_s, end_s in silent:
            first = max(0, int(start_s * RATE)) * 2
            last = min(frames_needed, int(end_s * RATE)) * 2
            if last > first:
                pcm[first:last] = (quiet * ((last - first) // len(quiet) + 1))[: last - first]
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(bytes(pcm))
    return buf.getvalue()


def _quiet(rng: random.Random, marker_hz: float | None) -> bytes:
    """One second of a paused line: the noise floor, and the marker tone if the platform plays one."""
    out = bytearray()
    for i in range(RATE):
        sample = rng.randrange(-FLOOR, FLOOR + 1)
        if marker_hz:
            sample += int(3000 * math.sin(2 * math.pi * marker_hz * i / RATE))
        out += sample.to_bytes(2, "little", signed=True)
    return bytes(out)
