"""The audit archive's hash chain: how segments are written and how tampering shows.

Each segment holds a run of consecutive `lifecycle` records of one partition,
as JSON Lines after a header line. The header names the SHA-256 of the
partition's previous segment, so editing, removing or reordering a segment
breaks the chain at the next one. Pure: bytes in, bytes or findings out.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64  # the "previous hash" of a partition's first segment
HEADER_TYPE = "audit.segment"


@dataclass(frozen=True, slots=True)
class LoggedRecord:
    """One record of `lifecycle` as the archive keeps it: where it was, and its bytes as text."""

    partition: int
    offset: int
    key: str | None
    value: str


@dataclass(frozen=True, slots=True)
class SegmentHeader:
    partition: int
    first_offset: int
    last_offset: int
    records: int
    previous_sha256: str


@dataclass(frozen=True, slots=True)
class ChainBreak:
    kind: str  # edited | removed | deleted | reordered | unreadable | unsigned
    segment: str
    detail: str


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def segment_body(records: Sequence[LoggedRecord], previous_sha256: str) -> tuple[SegmentHeader, bytes]:
    """The header and bytes of a segment of consecutive records of one partition."""
    if not records:
        raise ValueError("a segment holds at least one record")
    header = SegmentHeader(
        partition=records[0].partition,
        first_offset=records[0].offset,
        last_offset=records[-1].offset,
        records=len(records),
        previous_sha256=previous_sha256,
    )
    out = [_line(_header_dict(header))]
    out.extend(_line({"offset": r.offset, "key": r.key, "value": r.value}) for r in records)
    return header, b"".join(out)


def _header_dict(header: SegmentHeader) -> dict[str, Any]:
    return {
        "type": HEADER_TYPE,
        "partition": header.partition,
        "first_offset": header.first_offset,
        "last_offset": header.last_offset,
        "records": header.records,
        "previous_sha256": header.previous_sha256,
    }


def digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def parse_segment(body: bytes) -> tuple[SegmentHeader, list[LoggedRecord]]:
    """Read a segment back; raises ValueError with a sentence if it is not one."""
    lines = body.splitlines()
    if not lines:
        raise ValueError("the segment is empty")
    try:
        head = json.loads(lines[0])
        header = SegmentHeader(
            partition=int(head["partition"]),
            first_offset=int(head["first_offset"]),
            last_offset=int(head["last_offset"]),
            records=int(head["records"]),
            previous_sha256=str(head["previous_sha256"]),
        )
        rows = [json.loads(line) for line in lines[1:]]
        records = [LoggedRecord(header.partition, int(r["offset"]), r["key"], str(r["value"])) for r in rows]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"the segment cannot be read: {exc}") from exc
    if head.get("type") != HEADER_TYPE:
        raise ValueError("the first line is not a segment header")
    return header, records


class ChainCheck:
    """One partition's chain, checked a segment at a time (in name order), so no segment is kept."""

    def __init__(self, previous_sha: str = GENESIS, next_offset: int | None = None) -> None:
        """From a partition's first segment, or (a period) from a segment a signed checkpoint vouches for."""
        self.breaks: list[ChainBreak] = []
        self.previous_sha = previous_sha  # after the last segment added: that segment's hash
        self._next_offset = next_offset

    def add(self, name: str, body: bytes) -> tuple[SegmentHeader, list[LoggedRecord]] | None:
        """Check the next segment; its contents, or None when it cannot be read."""
        try:
            header, records = parse_segment(body)
        except ValueError as exc:
            self.breaks.append(ChainBreak("unreadable", name, str(exc)))
            self.previous_sha, self._next_offset = digest(body), None
            return None
        offsets = [r.offset for r in records]
        inside_ok = header.records == len(records) and offsets == list(
            range(header.first_offset, header.last_offset + 1)
        )
        expected = self._next_offset
        if not inside_ok:
            self.breaks.append(ChainBreak("edited", name, "its records do not match its header"))
        elif expected is not None and header.first_offset > expected:
            self.breaks.append(
                ChainBreak(
                    "removed", name, f"offsets {expected}..{header.first_offset - 1} are missing before it"
                )
            )
        elif expected is not None and header.first_offset < expected:
            self.breaks.append(
                ChainBreak("reordered", name, f"it starts at {header.first_offset}, before {expected}")
            )
        elif header.previous_sha256 != self.previous_sha:
            self.breaks.append(
                ChainBreak("edited", name, "the segment before it is not the one whose hash it names")
            )
        self.previous_sha, self._next_offset = digest(body), header.last_offset + 1
        return header, records


def verify_chain(segments: Iterable[tuple[str, bytes]]) -> list[ChainBreak]:
    """Check one partition's segments, given in the order of their names (their first offsets)."""
    check = ChainCheck()
    for name, body in segments:
        check.add(name, body)
    return check.breaks
