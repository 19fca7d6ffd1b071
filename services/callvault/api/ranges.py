"""HTTP byte ranges (RFC 9110 section 14), so a player can seek without fetching the whole file.

One range per request: that is what browsers' media players ask for. A header
with several ranges, or one this parser cannot read, is ignored and the whole
object is served (the RFC allows a server to ignore Range); a range that starts
past the end is unsatisfiable (416).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SINGLE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


MAX_DIGITS = 19  # 2**63 has 19 digits


class RangeNotSatisfiable(Exception):
    pass


@dataclass(frozen=True, slots=True)
class ByteRange:
    first: int
    last: int  # inclusive, as in Content-Range

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.first}-{self.last}/{size}"

    def header(self) -> str:
        """The form S3's GetObject takes."""
        return f"bytes={self.first}-{self.last}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The range to serve of an object of `size` bytes, or None for the whole object."""
    if not header:
        return None
    match = _SINGLE.match(header)
    if match is None:
        return None
    start, end = match.group(1), match.group(2)
    if not start and not end:
        return None
    # More digits than any object has bytes: no int() of thousands of digits (Python refuses them).
    if len(start) > MAX_DIGITS:
        raise RangeNotSatisfiable
    end = end if len(end) <= MAX_DIGITS else str(size)  # past the end either way
    if not start:  # a suffix: the last N bytes
        suffix = int(end)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return ByteRange(max(0, size - suffix), size - 1)
    first = int(start)
    if first >= size:
        raise RangeNotSatisfiable
    last = size - 1 if not end else min(int(end), size - 1)
    if last < first:
        return None  # "bytes=5-3" is invalid syntax: ignored, whole object
    return ByteRange(first, last)
