"""`callvault audit verify --from T --to T`: one period's chain, from the signed checkpoint before it.

Reads the checkpoints from the last one taken at or before the period's start
to the first one at or after its end (each signature checked, each naming the
one before), and per partition only the segments written between those two:
their chain must start from the segment the first checkpoint signed, pass
through every segment a checkpoint in between signed, and end at the one the
closing checkpoint signed. A period still open at its end (no checkpoint after
it yet) is checked up to the partition's last segment, which no signature
vouches for yet; the report says so. Blocking (boto3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from botocore.client import BaseClient

from callvault.rules.audit_chain import GENESIS, ChainBreak, ChainCheck
from callvault.rules.audit_checkpoint import Checkpoint, CheckpointTrail, Freshness, PartitionHead
from callvault.storage import archive
from callvault.storage import audit_archive as segments
from callvault.storage import audit_checkpoints as store


@dataclass
class PeriodReport:
    start: datetime
    end: datetime
    opened_by: int | None = None  # the checkpoint the period is checked from (None: the log's start)
    closed_by: int | None = None  # the checkpoint that vouches for its end (None: still open)
    checkpoints: int = 0
    segments: int = 0
    problems: list[str] = field(default_factory=list)  # checkpoints that cannot be trusted
    notes: list[str] = field(default_factory=list)  # what is not a break but an auditor should read
    breaks: list[ChainBreak] = field(default_factory=list)
    unsigned_partitions: list[int] = field(default_factory=list)  # read past the last checkpoint

    @property
    def intact(self) -> bool:
        return not self.problems and not self.breaks


def verify_period(
    s3: BaseClient,
    bucket: str,
    partitions: int,
    start: datetime,
    end: datetime,
    trusted_key: str,
    on_segment: Callable[[int], None] | None = None,
    freshness: Freshness | None = None,
) -> PeriodReport:
    """`freshness`: when it is now and how often the leader signs; without it, an open period's end is
    not held to the signing rhythm (a test reading a fixed log)."""
    report = PeriodReport(start, end)
    for key in store.deleted_checkpoint_keys(s3, bucket):
        report.problems.append(f"{key} was deleted by hand: a delete marker hides its locked version")
    for key in store.stray_keys(s3, bucket):
        report.problems.append(f"{key} is not a checkpoint's name: an object planted among them")
    versions = store.checkpoint_versions(s3, bucket)
    keys = list(versions)
    cache: dict[str, Checkpoint] = {}

    def read(key: str) -> Checkpoint:
        if key not in cache:
            cache[key] = store.read_checkpoint(s3, bucket, key)
        return cache[key]

    try:
        first = store.index_at_or_before(keys, start, read)
    except ValueError:
        first = None  # an unreadable checkpoint on the way: read from the first, where it is reported
    trail = CheckpointTrail(trusted_key)
    passed: list[Checkpoint] = []
    for key in keys[first or 0 :]:
        try:
            found = [read(key), *(store.read_checkpoint(s3, bucket, key, v) for v in versions[key][1:])]
        except ValueError as exc:
            report.problems.append(f"{key}: {exc}")
            break
        if any(cp.seq != store.seq_of(key) for cp in found):
            report.problems.append(f"{key} holds checkpoint {found[0].seq}: a copy under another number")
            break
        if not trail.add_versions(found):
            break
        passed.extend(found)
        report.checkpoints += 1
        if found[0].at >= end:
            break
    report.problems.extend(trail.problems)
    report.notes.extend(trail.twins)
    opening = passed[0] if passed and first is not None else None
    closing = passed[-1] if passed and passed[-1].at >= end else None
    report.opened_by = opening.seq if opening else None
    report.closed_by = closing.seq if closing else None
    if closing is None and passed and freshness is not None:
        stale = freshness.stale(passed[-1], end)
        if stale:
            report.problems.append(stale)
    signed = {h.segment: (cp.seq, h.sha256) for cp in passed for h in cp.heads.values()}
    # Every partition the checkpoints name too: a log written with more partitions than configured here
    # is read whole, not cut to the settings (issue 33).
    for partition in sorted(set(range(partitions)) | {p for cp in passed for p in cp.heads}):
        _check_partition(s3, bucket, partition, opening, closing, signed, report, on_segment)
    return report


def _check_partition(
    s3: BaseClient,
    bucket: str,
    partition: int,
    opening: Checkpoint | None,
    closing: Checkpoint | None,
    signed: dict[str, tuple[int, str]],
    report: PeriodReport,
    on_segment: Callable[[int], None] | None,
) -> None:
    begin: PartitionHead | None = opening.heads.get(partition) if opening else None
    finish: PartitionHead | None = closing.heads.get(partition) if closing else None
    after = begin.segment if begin else ""
    names = segments.segment_keys(s3, bucket, partition, start_after=after)
    hidden = segments.deleted_keys(s3, bucket, segments.segment_prefix(partition), after)
    if finish is not None:
        names = [name for name in names if name <= finish.segment]
        hidden = [name for name in hidden if name <= finish.segment]
    else:
        if names:
            report.unsigned_partitions.append(partition)
        report.breaks.extend(_head_beyond(s3, bucket, partition, after, names))
    report.breaks.extend(
        ChainBreak("deleted", name, "a delete marker hides this locked segment: removed by hand")
        for name in hidden
    )
    chain = ChainCheck(begin.sha256 if begin else GENESIS, begin.last_offset + 1 if begin else None)
    for name in names:
        chain.add(name, segments.read_segment(s3, bucket, name))
        report.segments += 1
        if on_segment is not None:
            on_segment(report.segments)
        if name in signed and signed[name][1] != chain.previous_sha:
            seq = signed[name][0]
            report.breaks.append(ChainBreak("edited", name, f"it is not the segment checkpoint {seq} signed"))
    report.breaks.extend(chain.breaks)
    if finish is not None and (not names or names[-1] != finish.segment) and finish != begin:
        detail = f"the segment checkpoint {closing.seq if closing else '?'} signed is not in the store"
        report.breaks.append(ChainBreak("removed", finish.segment, detail))


def _head_beyond(
    s3: BaseClient, bucket: str, partition: int, after: str, names: list[str]
) -> list[ChainBreak]:
    """A head naming a segment the store does not have: the tail was cut (a head only ever lags the
    segments, after a crash between the two writes; it never names one that is not there)."""
    head = segments.read_head(s3, bucket, partition)
    if head is None or head.key <= after or head.key in names:
        return []
    if archive.head(s3, bucket, head.key) is not None:
        return []  # written after the listing: a worker is archiving as the period is read
    return [
        ChainBreak(
            "removed", head.key, "the partition's head names this segment, which the store has not got"
        )
    ]
