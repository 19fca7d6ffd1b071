"""Phone numbers taken out of a rejected input before it is kept as a dead letter. Pure.

A dead letter keeps the input's bytes so a person can see what was wrong. An
unreadable `call.started` may still hold a participant's number, and only
`call-events` may carry raw numbers: so every E.164-looking run of digits is
replaced by a marker of the same shape before the letter is written. What was
wrong with the event is still visible; the number is not.
"""

from __future__ import annotations

import re

# A '+' and digits (E.164 and near misses), or a quoted string of 8 to 16 digits,
# spaces or dashes (a national form); JSON numbers such as sizes are left alone.
_NUMBER = re.compile(rb'\+[0-9][0-9 ]{5,20}[0-9]|(?<=")[0-9][0-9 -]{6,14}[0-9](?=")')
MARKER = b"+REDACTED"


def redact_numbers(value: bytes) -> tuple[bytes, int]:
    """The value with phone-number-like digit runs replaced, and how many there were."""
    redacted, count = _NUMBER.subn(MARKER, value)
    return redacted, count
