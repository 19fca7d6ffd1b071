"""Small, valid WAV files: 8 kHz 16-bit mono, a tone and a little hiss, distinct per call."""

from __future__ import annotations

import io
import math
import random
import wave

RATE = 8000


def make_wav(seed: int, seconds: float) -> bytes:
    rng = random.Random(seed)
    freq = 220 + rng.randrange(0, 660)
    period = max(1, round(RATE / freq))
    cycle = bytearray()
    for i in range(period):
        sample = int(9000 * math.sin(2 * math.pi * i / period)) + rng.randrange(-400, 400)
        cycle += sample.to_bytes(2, "little", signed=True)
    frames_needed = int(RATE * seconds)
    pcm = (bytes(cycle) * (frames_needed // period + 1))[: frames_needed * 2]
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(pcm)
    return buf.getvalue()
