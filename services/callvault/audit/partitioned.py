"""The replay split by partition, on as many processes as there are cores, in bounded memory.

`lifecycle` is keyed by call, so a call's story never spans partitions: each
share of the partitions is folded by its own process into its own scratch
files (`audit.spill`), in two steps because one fact is global. A tenant's
policy changes are keyed by the tenant and may sit in any partition, while the
checks of every call need its tenant's whole policy history:

1. each process folds its partitions' segments (and their tail on the topic)
   and returns its totals, the policy versions and the subject requests it read;
2. the parent joins the policy histories, and each process checks its calls
   against them, reading its stories back from disk;
3. the parent merges the partial results and checks the requests
   (`rules.audit_replay.merge_results`): the same report one process gives.

Peak memory is that of every process together: each keeps `keep` calls and a
batch of event ids in memory, whatever the log's length; disk holds the rest.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from callvault.audit.partial import global_policies
from callvault.audit.sources import AuditLog, archive_events, read_tail, signed_heads
from callvault.audit.spill import SpilledSeen, SpilledStories, disk_used, first_copies_elsewhere
from callvault.rules import audit_commands
from callvault.rules.audit_replay import (
    Folded,
    ReplayResult,
    canonical,
    check_calls,
    check_commands,
    check_requests,
    fold,
    merge_requests,
    merge_results,
    policy_history,
)
from callvault.rules.client_policy import PolicyVersion
from callvault.settings import Settings
from callvault.storage.audit_archive import segment_keys
from callvault.storage.client import make_s3_client


@dataclass(frozen=True)
class EventFilter:
    """Which events a replay keeps (`--tenant`, `--from`, `--to`); picklable, for the processes."""

    tenant: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __call__(self, event: dict[str, Any]) -> bool:
        if self.tenant is not None and event.get("tenant") != self.tenant:
            return False
        if event.get("type") == "policy.changed":
            return True  # a global fact: objects of the period are judged by versions from before it too
        try:
            at = datetime.fromisoformat(str(event.get("occurred_at")))
        except ValueError:
            return True
        return (self.since is None or at >= self.since) and (self.until is None or at < self.until)


@dataclass(frozen=True)
class Share:
    """One process's part of a replay."""

    index: int
    partitions: tuple[int, ...]
    settings: Settings
    scratch: Path
    keep: int
    keep_event: EventFilter
    signed: dict[str, tuple[int, str]]
    tail: bool = True  # the records still only in the topic; False where no broker is to be asked
    # Ids whose first copy another share holds (`audit.spill.first_copies_elsewhere`): read a second time.
    first_elsewhere: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def stories_path(self) -> Path:
        return self.scratch / f"calls-{self.index}.sqlite"

    @property
    def seen_path(self) -> Path:
        return self.scratch / f"seen-{self.index}.sqlite"


@dataclass
class ShareRead:
    """What step 1 sends back: the share's totals, facts and what reading the log found."""

    folded: Folded
    log: AuditLog = field(default_factory=AuditLog)


def _fold_share(share: Share) -> ShareRead:
    settings = share.settings
    log = AuditLog()
    stories = SpilledStories(share.stories_path, keep=share.keep)
    seen = SpilledSeen(share.seen_path)
    s3 = make_s3_client(settings, attempts=2)

    def events() -> Any:
        for partition in share.partitions:  # ranked as one process reads them: by partition, then the tail
            seen.rank = partition
            yield from archive_events(s3, settings, log, partitions=[partition], signed=share.signed)
        seen.rank = TAIL_RANK + min(share.partitions, default=0)
        if share.tail:
            asyncio.run(read_tail(settings, log, partitions=share.partitions))
        tail, log.tail = log.tail, []
        yield from tail

    folded = fold((e for e in events() if share.keep_event(e)), stories, seen, share.first_elsewhere)
    stories.flush()
    stories.close()
    seen.close()
    return ShareRead(folded, log)


def _check_share(
    args: tuple[Share, ReplayResult, dict[str, list[PolicyVersion]], datetime, timedelta, Any],
) -> ReplayResult:
    share, result, history, as_of, tolerance, defaults = args
    stories = SpilledStories(share.stories_path, keep=share.keep)
    try:
        return check_calls(result, stories, history, as_of, tolerance, defaults)
    finally:
        stories.close()


@dataclass
class PartitionedReplay:
    log: AuditLog
    result: ReplayResult
    processes: int
    scratch_bytes: int
    partitions: list[int] = field(default_factory=list)
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)  # checked unless a partial
    commands: audit_commands.Commands = field(default_factory=dict)  # likewise


def replay_partitions(
    settings: Settings,
    scratch: Path,
    as_of: datetime,
    tolerance: timedelta,
    *,
    keep_event: EventFilter | None = None,
    processes: int | None = None,
    keep: int = 20_000,
    on_step: Callable[[str], None] | None = None,
    only: list[int] | None = None,
    tail: bool = True,
    command_keys: Mapping[str, str] | None = None,
    in_process: bool = False,
) -> PartitionedReplay:
    """The log replayed by `processes` (default: the cores, at most one per partition).

    `only`: just these partitions, for a partial result (`audit.partial`): the
    policy history then comes from a pass over every partition first, and the
    subject requests are left for the merge to check. `in_process`: the shares one after the other in
    this process (the same steps, for a debugger or a store mocked in this process).
    """
    chosen = sorted(set(only)) if only is not None else list(range(settings.partitions))
    s3 = make_s3_client(settings, attempts=2)
    count = max(1, min(processes or _processes_for(s3, settings, chosen), len(chosen)))
    log = AuditLog()
    signed = signed_heads(s3, settings, log)
    step = on_step or (lambda _text: None)
    everywhere: dict[str, dict[int, PolicyVersion]] = {}
    if only is not None:
        step("reading every partition's policy changes")
        everywhere = global_policies(s3, settings)
    shares = [
        Share(i, tuple(chosen[i::count]), settings, scratch, keep, keep_event or EventFilter(), signed, tail)
        for i in range(count)
    ]
    step(f"reading {len(chosen)} partition(s) on {count} process(es)")
    with _pool(count, in_process) as pool:
        reads = pool.map(_fold_share, shares)
        elsewhere = first_copies_elsewhere([share.seen_path for share in shares]) if count > 1 else []
        again = [i for i, ids in enumerate(elsewhere) if ids]
        if again:  # an id in several shares (a forgery keyed elsewhere): those shares read once more
            step(f"{sum(len(elsewhere[i]) for i in again)} event id(s) in several shares: reading again")
            for i in again:
                shares[i].stories_path.unlink(missing_ok=True)
                shares[i].seen_path.unlink(missing_ok=True)
                shares[i] = replace(shares[i], first_elsewhere=elsewhere[i])
            for i, read in zip(again, pool.map(_fold_share, [shares[i] for i in again]), strict=True):
                reads[i] = read
        history = policy_history([everywhere, *(read.folded.policies for read in reads)])
        step("checking every call")
        jobs = [(share, read.folded.result, history, as_of, tolerance, settings.policy_defaults)
                for share, read in zip(shares, reads, strict=True)]  # fmt: skip
        parts = pool.map(_check_share, jobs)
    merged = merge_results(parts)
    merged.policy_history = history
    requests = merge_requests(read.folded.requests for read in reads)
    commands = audit_commands.merge(read.folded.commands for read in reads)
    if only is None:
        check_requests(requests, as_of, merged)
        check_commands(commands, command_keys, merged)
    for read in reads:
        log.join(read.log)
    return PartitionedReplay(log, canonical(merged), count, disk_used(scratch), chosen, requests, commands)


# The rank of a share's tail events: after every archived event, as one process reads them.
TAIL_RANK = 1 << 20

# A process started for a share costs seconds (it imports callvault afresh); below this many segments
# (a quarter of a million events) one process reads the log sooner than two.
SEGMENTS_PER_PROCESS = 50


def _processes_for(s3: Any, settings: Settings, partitions: list[int]) -> int:
    """One per core, but no more than the log's size pays for."""
    segments_found = sum(len(segment_keys(s3, settings.audit_bucket, p)) for p in partitions)
    return max(1, min(os.cpu_count() or 1, segments_found // SEGMENTS_PER_PROCESS))


class _NoPool:
    """The shares in turn, in this process."""

    def __enter__(self) -> _NoPool:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map(self, fn: Callable[[Any], Any], items: Any) -> list[Any]:
        return [fn(item) for item in items]


def _pool(count: int, in_process: bool = False) -> Any:
    """Fresh processes (spawned, not forked: the command's own threads, a progress bar's or boto3's,
    must not be copied mid-lock); none for one share."""
    if count == 1 or in_process:
        return _NoPool()
    return multiprocessing.get_context("spawn").Pool(count)
