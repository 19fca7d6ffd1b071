"""Partial replays, one per partition, merged into the report one replay gives (issue 18, item 4).

The archive is written as the audit agent writes it, into moto in-process, over
two partitions: acme's calls on partition 0, and on partition 1 the change of
acme's policy that shortens its recordings to 7 days (keyed by tenant, it sits
elsewhere than the calls it dates) and a subject request left unanswered. Each
partition replayed on its own (as a pod of the Indexed Job would, reading the
policy changes of every partition first) and its partial sent through JSON,
then merged: the same report as the whole log replayed at once, the late
deletions the shortened term makes included.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from callvault.audit.partial import (
    binding_problems,
    coverage_problems,
    merge_partials,
    partial_document,
    store_problems,
)
from callvault.audit.partitioned import replay_partitions
from callvault.audit.report import report_document
from callvault.contract.fields import format_rfc3339
from callvault.rules.audit_chain import GENESIS, LoggedRecord, digest, parse_segment, segment_body
from callvault.rules.audit_checkpoint import private_key, public_hex
from callvault.settings import Settings
from callvault.storage import audit_archive as segments
from callvault.storage.bootstrap import init_storage
from callvault.storage.client import make_s3_client

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
AS_OF = T0 + timedelta(days=60)
TOLERANCE = timedelta(minutes=10)


def _ev(type_: str, at: datetime, **fields: Any) -> dict[str, Any]:
    return {"type": type_, "event_id": str(uuid.uuid4()), "tenant": "acme", "occurred_at": format_rfc3339(at),
            **fields}  # fmt: skip


def _calls() -> list[dict[str, Any]]:
    events = []
    for i in range(12):
        start, call = T0 + timedelta(hours=i), f"c-{i}"
        rec, key = str(uuid.uuid4()), f"acme/2026/06/01/{call}.wav"
        due = start + timedelta(days=30)
        events += [
            _ev("disclosure.verified", start, call_id=call, recording_event_id=rec,
                played_at=format_rfc3339(start - timedelta(seconds=2)),
                recording_started_at=format_rfc3339(start)),
            _ev("recording.archived", start, call_id=call, recording_event_id=rec,
                object={"bucket": "rec", "key": key}, recording_started_at=format_rfc3339(start),
                expires_at=format_rfc3339(due)),
            _ev("recording.accessed", start + timedelta(days=1), call_id=call, role="qa", what="audio",
                purpose="coaching", accessed_by="anna", granted_tenants=["acme"]),
            _ev("recording.deleted", due + timedelta(seconds=3), call_id=call,
                object={"bucket": "rec", "key": key}, due_at=format_rfc3339(due),
                deleted_at=format_rfc3339(due + timedelta(seconds=3))),
        ]  # fmt: skip
    return events


def _elsewhere() -> list[dict[str, Any]]:
    # Two days after the calls: a shortening dates what is already archived (start + 7 days).
    shorter = _ev("policy.changed", T0 + timedelta(days=2), version=1, changes={"recording": "P7D"},
                  changed_by="dpo", reason="contract 2026-14",
                  effective_at=format_rfc3339(T0 + timedelta(days=2)),
                  policy={"tenant_rules": {"terms": {"recording": "P7D"}}, "queues": {}})  # fmt: skip
    request = _ev("subject.request_received", T0, request_id="r-1", subject="s-1", kind="erase",
                  received_at=format_rfc3339(T0), due_at=format_rfc3339(T0 + timedelta(days=30)))  # fmt: skip
    return [shorter, request]


def _write_log(bucket: str, logs: dict[int, list[dict[str, Any]]]) -> Settings:
    """Settings for a log in `bucket` (inside moto's mock), each partition's events written in chained
    segments of ten, as the audit agent writes them; the auditor's key pinned, as off the embedded stack."""
    settings = Settings(partitions=2, audit_bucket=bucket, s3_endpoint="")
    pinned = public_hex(private_key(settings.audit_signing_key.get_secret_value()))
    settings = settings.model_copy(update={"audit_public_key": pinned})
    s3 = make_s3_client(settings)
    init_storage(s3, settings)
    for partition, events in logs.items():
        records = [LoggedRecord(partition, n, e.get("call_id"), json.dumps(e)) for n, e in enumerate(events)]
        previous = GENESIS
        for start in range(0, len(records), 10):
            header, body = segment_body(records[start : start + 10], previous)
            key = segments.segment_key(partition, header.first_offset)
            segments.write_segment(s3, settings.audit_bucket, key, body, AS_OF + timedelta(days=1))
            previous = digest(body)
            segments.write_head(s3, settings.audit_bucket, partition,
                                segments.Head(key, header.last_offset, previous))  # fmt: skip
    return settings


@pytest.fixture
def archived() -> Iterator[Settings]:
    with mock_aws():
        yield _write_log("cvt-audit-partials", {0: _calls(), 1: _elsewhere()})


def _report(result: Any, log: Any) -> dict[str, Any]:
    return report_document(result, log, AS_OF, {})


def _partials(settings: Settings, tmp_path: Path) -> list[dict[str, Any]]:
    docs = []
    for partition in (0, 1):
        scratch = tmp_path / f"p{partition}"
        part = replay_partitions(
            settings, scratch, AS_OF, TOLERANCE, processes=1, tail=False, only=[partition]
        )
        doc = partial_document(part.result, part.requests, part.commands, part.log, part.partitions, 2, AS_OF)
        docs.append(json.loads(json.dumps(doc)))  # as it travels through a bucket
    return docs


def test_partials_one_per_partition_merge_into_the_report_of_one_replay(
    archived: Settings, tmp_path: Path
) -> None:
    whole = replay_partitions(archived, tmp_path / "whole", AS_OF, TOLERANCE, processes=1, tail=False)
    docs = _partials(archived, tmp_path)

    assert coverage_problems(docs) == [] and coverage_problems(docs[:1]) == [
        "no partial covers partition(s) 1"
    ]
    merged, log, as_of = merge_partials(docs)

    assert as_of == AS_OF
    assert _report(merged, log) == _report(whole.result, whole.log)
    rules = [v.rule for v in whole.result.violations]
    assert rules.count("late_deletion") == 12, "partition 0's calls are dated by the policy on partition 1"
    assert "subject_request_overdue" in rules


@pytest.fixture(autouse=True)
def _scratch_folders(tmp_path: Path) -> None:
    for name in ("whole", "p0", "p1"):
        (tmp_path / name).mkdir()


def test_a_forgery_keyed_onto_another_partition_is_a_conflict_in_the_split_replay_too(
    tmp_path: Path,
) -> None:
    """Issue 31, item 3: a forged copy of a real event (another reason, under its `event_id`) written
    with another key lands on partition 1; the replay split in two shares finds it as one process
    does, with the same report."""
    with mock_aws():
        calls = _calls()
        deleted = next(e for e in calls if e["type"] == "recording.deleted")
        forged = {**deleted, "reason": "objection"}
        settings = _write_log("cvt-audit-forged", {0: calls, 1: [*_elsewhere(), forged]})
        (tmp_path / "one").mkdir()
        (tmp_path / "two").mkdir()
        one = replay_partitions(settings, tmp_path / "one", AS_OF, TOLERANCE, processes=1, tail=False)
        two = replay_partitions(
            settings, tmp_path / "two", AS_OF, TOLERANCE, processes=2, tail=False, in_process=True
        )
    assert two.processes == 2
    found = [(v.rule, v.evidence) for v in two.result.violations if v.rule == "conflicting_event"]
    assert found == [("conflicting_event", (deleted["event_id"],))]
    assert _report(two.result, two.log) == _report(one.result, one.log)


def test_partials_that_did_not_read_one_log_at_one_instant_are_refused_with_a_sentence(
    archived: Settings, tmp_path: Path
) -> None:
    """Issue 33, item 4: a partial names the log it read (its checkpoint, its segments' hashes) and the
    policy facts it judged by; the merge refuses partials that part on any of them."""
    docs = _partials(archived, tmp_path)
    s3 = make_s3_client(archived)
    assert binding_problems(docs) == [] and store_problems(s3, archived, docs) == []
    assert set(docs[0]["bound"]["segments"]) == {segments.segment_key(0, n) for n in range(0, 48, 10)}

    old = {**docs[1], "as_of": format_rfc3339(AS_OF - timedelta(days=730))}  # two years old
    assert "replayed 730 days, 0:00:00 apart" in " ".join(binding_problems([docs[0], old]))

    other_terms = json.loads(json.dumps(docs[1]))
    other_terms["bound"]["policies_sha256"] = "0" * 64  # judged by a P3M history where the log says P7D
    assert "disagree on the client policies" in " ".join(binding_problems([docs[0], other_terms]))

    cut = {k: v for k, v in docs[1].items() if k != "bound"}
    assert "missing bound" in " ".join(binding_problems([docs[0], cut]))

    forged = json.loads(json.dumps(docs[1]))
    forged["bound"]["segments"][segments.segment_key(1, 9000)] = "f" * 64
    (said,) = store_problems(s3, archived, [docs[0], forged])
    assert "does not hold" in said and "00000000000000009000" in said
    elsewhere = json.loads(json.dumps(docs[1]))
    elsewhere["bound"]["checkpoint"] = {"seq": 3, "sha256": "ab" * 32}  # a checkpoint of another log
    (said,) = store_problems(s3, archived, [docs[0], elsewhere])
    assert "names checkpoint 3" in said and "does not hold" in said


@pytest.mark.parametrize("rewound", [False, True])
def test_a_log_cut_by_hand_is_a_break_for_the_split_replay_as_for_one_process(
    tmp_path: Path, rewound: bool
) -> None:
    """Issue 33, item 1, in the partition replay: the newest segment of partition 0 deleted (a delete
    marker over its locked version), and its head pointed back at the segment before to hide it. One
    process and two shares report the same break and the same report."""
    with mock_aws():
        settings = _write_log("cvt-audit-cut", {0: _calls(), 1: _elsewhere()})
        s3 = make_s3_client(settings)
        bucket = settings.audit_bucket
        names = segments.segment_keys(s3, bucket, 0)
        s3.delete_object(Bucket=bucket, Key=names[-1])
        if rewound:
            body = segments.read_segment(s3, bucket, names[-2])
            header, _ = parse_segment(body)
            segments.write_head(s3, bucket, 0, segments.Head(names[-2], header.last_offset, digest(body)))
        (tmp_path / "one").mkdir()
        (tmp_path / "two").mkdir()
        one = replay_partitions(settings, tmp_path / "one", AS_OF, TOLERANCE, processes=1, tail=False)
        two = replay_partitions(
            settings, tmp_path / "two", AS_OF, TOLERANCE, processes=2, tail=False, in_process=True
        )
    assert ("deleted", names[-1]) in {(b.kind, b.segment) for b in one.log.breaks}, one.log.breaks
    assert sorted((b.kind, b.segment) for b in two.log.breaks) == sorted(
        (b.kind, b.segment) for b in one.log.breaks
    )
    assert _report(two.result, two.log) == _report(one.result, one.log)
