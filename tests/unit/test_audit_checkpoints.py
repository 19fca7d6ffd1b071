"""Signed checkpoints: a period verified on its own, an edit inside it found, another key refused (issue 18).

The log is written as the audit agent writes it (segments chained per
partition, heads moved, the store's own object lock), into moto in-process,
with a checkpoint signed after each round of segments; then
`audit.period.verify_period`, which `callvault audit verify` runs, and the
replay's reading of the archive (`audit.sources.archive_events`) check it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from moto import mock_aws
from moto.s3.responses import S3Response
from pydantic import SecretStr

from callvault.audit.period import verify_period
from callvault.audit.sources import AuditLog, archive_events
from callvault.clock import FixedClock
from callvault.rules.audit_chain import GENESIS, LoggedRecord, digest, parse_segment, segment_body
from callvault.rules.audit_checkpoint import (
    Checkpoint,
    CheckpointTrail,
    Freshness,
    PartitionHead,
    next_checkpoint,
    private_key,
    public_hex,
)
from callvault.settings import Settings
from callvault.storage import audit_archive as segments
from callvault.storage import audit_checkpoints as checkpoints
from callvault.storage import store_profile
from callvault.storage.bootstrap import init_storage
from callvault.storage.client import make_s3_client
from callvault.storage.registry import write_entry
from callvault.stream.audit_archiver import AuditArchiver
from callvault.stream.offloop import S3Runner

T0 = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
SEED = secrets.token_hex(32)
KEY = private_key(SEED)
OTHER = private_key(secrets.token_hex(32))
PARTITIONS = 2


def test_checkpoints_signed_by_the_trusted_key_verify_and_another_key_is_refused() -> None:
    heads = {0: PartitionHead("segments/p000/a", "ab" * 32, 9)}
    first = next_checkpoint(None, heads, T0, KEY)
    second = next_checkpoint(first, heads, T0 + HOUR, KEY)
    trail = CheckpointTrail(public_hex(KEY))
    assert trail.add(first) and trail.add(second) and trail.problems == []

    # Another key's checkpoint that does not announce itself as a rotation by the trusted key.
    rotation = next_checkpoint(second, heads, T0 + 2 * HOUR, OTHER, previous_key=KEY)
    unannounced = _resigned(replace(rotation, rotated_from=None, rotation_signature=None), OTHER)
    refused = CheckpointTrail(public_hex(KEY))
    assert refused.add(first) and refused.add(second)
    assert not refused.add(unannounced)
    assert "no checkpoint trusted before it handed over" in refused.problems[0]
    assert not CheckpointTrail(public_hex(OTHER)).add(first), "the first checkpoint needs the trusted key"


def test_a_rotation_is_signed_by_the_old_key_or_refused() -> None:
    heads = {0: PartitionHead("segments/p000/a", "ab" * 32, 9)}
    first = next_checkpoint(None, heads, T0, KEY)
    with pytest.raises(ValueError, match="CALLVAULT_AUDIT_PREVIOUS_SIGNING_KEY"):
        next_checkpoint(first, heads, T0 + HOUR, OTHER)
    rotated = next_checkpoint(first, heads, T0 + HOUR, OTHER, previous_key=KEY)
    after = next_checkpoint(rotated, heads, T0 + 2 * HOUR, OTHER)
    trail = CheckpointTrail(public_hex(KEY))
    assert trail.add(first) and trail.add(rotated) and trail.add(after) and trail.problems == []

    with pytest.raises(ValueError, match="was signed by the key"):
        next_checkpoint(first, heads, T0 + HOUR, OTHER, previous_key=private_key(secrets.token_hex(32)))
    forged_handover = replace(rotated, rotation_signature=OTHER.sign(b"anything").hex())
    trail = CheckpointTrail(public_hex(KEY))
    assert trail.add(first) and not trail.add(_resigned(forged_handover, OTHER))
    assert "not signed by the old one" in trail.problems[0]


def _resigned(cp: Checkpoint, key: Ed25519PrivateKey) -> Checkpoint:
    return replace(cp, signature=key.sign(cp.signed_bytes()).hex())


@pytest.fixture
def log() -> Iterator[tuple[Settings, object, list[Checkpoint]]]:
    """Six hours of log: each hour one segment per partition, then a signed checkpoint."""
    with mock_aws():
        settings = Settings(partitions=PARTITIONS, audit_bucket="cvt-audit-cp", s3_endpoint="")
        s3 = make_s3_client(settings)
        init_storage(s3, settings)
        shas = dict.fromkeys(range(PARTITIONS), GENESIS)
        written: list[Checkpoint] = []
        previous = None
        for hour in range(6):
            for partition in range(PARTITIONS):
                records = [
                    LoggedRecord(partition, hour * 10 + i, f"c-{hour}-{i}", json.dumps(_event(hour, i)))
                    for i in range(10)
                ]
                header, body = segment_body(records, shas[partition])
                key = segments.segment_key(partition, header.first_offset)
                segments.write_segment(s3, settings.audit_bucket, key, body, T0 + timedelta(days=30))
                shas[partition] = digest(body)
                segments.write_head(
                    s3,
                    settings.audit_bucket,
                    partition,
                    segments.Head(key, header.last_offset, shas[partition]),
                )
            heads = {
                p: PartitionHead(h.key, h.sha256, h.last_offset)
                for p in range(PARTITIONS)
                if (h := segments.read_head(s3, settings.audit_bucket, p)) is not None
            }
            previous = next_checkpoint(previous, heads, T0 + hour * HOUR + timedelta(minutes=30), KEY)
            checkpoints.write_checkpoint(
                s3, settings.audit_bucket, previous, T0 + timedelta(days=30), conditional=True
            )
            written.append(previous)
        yield settings, s3, written


def _event(hour: int, i: int) -> dict[str, object]:
    return {"type": "recording.accessed", "event_id": f"e-{hour}-{i}", "call_id": f"c-{hour}-{i}",
            "tenant": "acme", "occurred_at": (T0 + hour * HOUR).isoformat()}  # fmt: skip


def test_a_period_is_verified_from_its_checkpoint_reading_only_its_segments(log) -> None:  # noqa: ANN001
    settings, s3, _ = log
    report = verify_period(
        s3, settings.audit_bucket, PARTITIONS, T0 + 2 * HOUR, T0 + 4 * HOUR, public_hex(KEY)
    )
    assert report.intact, (report.problems, report.breaks)
    assert (report.opened_by, report.closed_by) == (1, 4)
    assert report.segments == 3 * PARTITIONS, "the segments of hours 2, 3 and 4, none before"
    assert report.checkpoints == 4


def test_a_segment_edited_inside_the_period_is_found(log) -> None:  # noqa: ANN001
    settings, s3, written = log
    edited = written[3].heads[1].segment
    body = segments.read_segment(s3, settings.audit_bucket, edited).replace(
        b"recording.accessed", b"recording.Accessed", 1
    )
    segments.write_segment(s3, settings.audit_bucket, edited, body, T0 + timedelta(days=30))  # a new version

    report = verify_period(
        s3, settings.audit_bucket, PARTITIONS, T0 + 2 * HOUR, T0 + 4 * HOUR, public_hex(KEY)
    )
    assert not report.intact
    assert {(b.kind, b.segment) for b in report.breaks} >= {("edited", edited)}
    whole = AuditLog()
    list(archive_events(s3, settings.model_copy(update={"audit_public_key": public_hex(KEY)}), whole))
    assert any(b.segment == edited for b in whole.breaks), "the replay checks the checkpoints it passes"
    assert whole.checkpoints == 6


def test_a_checkpoint_signed_with_another_key_is_refused(log) -> None:  # noqa: ANN001
    settings, s3, written = log
    forged = _resigned(replace(written[2], public_key=public_hex(OTHER)), OTHER)
    # Written over the name by hand: callvault's own write refuses a name that is taken.
    _write_over(s3, settings, forged)

    report = verify_period(
        s3, settings.audit_bucket, PARTITIONS, T0 + 2 * HOUR, T0 + 4 * HOUR, public_hex(KEY)
    )
    assert not report.intact
    assert any("signed by the key" in p for p in report.problems), report.problems


def test_the_trusted_key_is_pinned_off_the_embedded_stack() -> None:
    """Issue 31, item 1: derived from the signing key only where the dev values may run."""
    from callvault.rules.audit_checkpoint import fingerprint

    seed = secrets.token_hex(32)
    derived = public_hex(private_key(seed))
    assert Settings(audit_signing_key=seed).trusted_audit_key == derived  # the embedded stack
    with pytest.raises(ValueError, match="pin the public key"):
        _ = Settings(env="prod", audit_signing_key=seed).trusted_audit_key
    pinned = Settings(env="prod", audit_signing_key=seed, audit_public_key=public_hex(KEY))
    assert pinned.trusted_audit_key == public_hex(KEY) != derived
    assert len(fingerprint(derived)) == 39 and fingerprint(derived) != fingerprint(public_hex(KEY))
    with pytest.raises(ValueError, match="64 hex"):
        Settings(audit_public_key="not-a-key")


def _write_over(s3: Any, settings: Settings, cp: Checkpoint) -> None:
    """A second version of a checkpoint's name, as a store without write-once kept it."""
    s3.put_object(Bucket=settings.audit_bucket, Key=checkpoints.checkpoint_key(cp.seq), Body=cp.document())


def _heads_now(s3: Any, settings: Settings) -> dict[int, PartitionHead]:
    return {
        p: PartitionHead(h.key, h.sha256, h.last_offset)
        for p in range(PARTITIONS)
        if (h := segments.read_head(s3, settings.audit_bucket, p)) is not None
    }


@pytest.mark.parametrize("refuses_second_write", [True, None], ids=["if-none-match", "claims"])
async def test_two_signers_at_once_leave_one_checkpoint_and_the_other_steps_back(
    log, refuses_second_write: bool | None, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    """Issue 31, item 2: two leaders for a moment both sign checkpoint 6 and write at the same moment.
    On main both writes went through (two versions of one name, the later winning) and verify then
    reported checkpoint 7 as not naming its predecessor. Now one write stands, the other signer steps
    back and its next checkpoint continues from the one that stood."""
    settings, s3, written = log
    settings = settings.model_copy(update={"audit_signing_key": SecretStr(SEED)})
    profile = store_profile.load(s3, settings.metadata_bucket)
    update = {"refuses_second_write": refuses_second_write}
    write_entry(s3, settings.metadata_bucket, store_profile.PROFILE_KEY, profile.model_copy(update=update))
    both = threading.Barrier(2)
    real = checkpoints.write_checkpoint

    def at_once(*args: Any, **kwargs: Any) -> str | None:
        both.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(checkpoints, "write_checkpoint", at_once)
    if refuses_second_write:
        # moto looks for the key, then writes (S3Response.put_object), with no lock between: two
        # threads at once can both pass If-None-Match (seen once in CI on 2026-12-07). AWS and MinIO
        # judge the condition and write as one step; so does moto here, one PUT at a time.
        one_put = threading.Lock()
        real_put = S3Response.put_object

        def atomic_put(self: S3Response) -> Any:
            with one_put:
                return real_put(self)

        monkeypatch.setattr(S3Response, "put_object", atomic_put)
    clock = FixedClock(T0 + 7 * HOUR)
    runners = [S3Runner(s3, max_workers=2, endpoint=None, backoff_cap_s=0.05, give_up_after=3) for _ in "ab"]
    first, second = (AuditArchiver(settings, runner, clock) for runner in runners)

    signed = await asyncio.gather(first.checkpoint(), second.checkpoint())

    stood = [cp for cp in signed if cp is not None]
    assert [cp.seq for cp in stood] == [6], "one signer's checkpoint 6 stands; the other stepped back"
    assert checkpoints.checkpoint_versions(s3, settings.audit_bucket)[checkpoints.checkpoint_key(6)] != []
    assert len(checkpoints.checkpoint_versions(s3, settings.audit_bucket)[checkpoints.checkpoint_key(6)]) == 1
    monkeypatch.setattr(checkpoints, "write_checkpoint", real)
    clock._at = T0 + 8 * HOUR  # noqa: SLF001 - the test turns its clock
    loser = second if signed[1] is None else first
    after = await loser.checkpoint()
    assert after is not None and after.seq == 7 and after.previous_sha256 == stood[0].sha256()
    report = verify_period(s3, settings.audit_bucket, PARTITIONS, T0, T0 + 8 * HOUR, public_hex(KEY))
    assert report.intact and report.notes == [], (report.problems, report.breaks)
    for runner in runners:
        runner.close()


def test_two_valid_checkpoints_for_one_number_are_told_apart_from_a_broken_chain(log) -> None:  # noqa: ANN001
    """A store that kept two versions of checkpoint 5 (before names were written once): both signed,
    both chained from 4, and 6 continues from the older. On main verify reported "checkpoint 6 does
    not name checkpoint 5 as its previous"; now it is intact with a note, and a checkpoint chained
    from neither version is still a break."""
    settings, s3, written = log
    twin = next_checkpoint(written[4], written[5].heads, written[5].at + timedelta(minutes=1), KEY)
    _write_over(s3, settings, twin)  # the newer version of the name
    sixth = next_checkpoint(written[5], _heads_now(s3, settings), T0 + 6 * HOUR, KEY)
    checkpoints.write_checkpoint(s3, settings.audit_bucket, sixth, T0 + timedelta(days=30), conditional=True)

    report = verify_period(
        s3, settings.audit_bucket, PARTITIONS, T0 + 4 * HOUR, T0 + 6 * HOUR, public_hex(KEY)
    )
    assert report.intact, (report.problems, report.breaks)
    assert report.notes == [
        "checkpoint 5 was signed 2 times (two signers at a rebalance): every version verifies and chains "
        "from checkpoint 4; not a break"
    ]
    whole = AuditLog()
    list(archive_events(s3, settings.model_copy(update={"audit_public_key": public_hex(KEY)}), whole))
    assert whole.breaks == [] and whole.checkpoints == 7, "the replay reads both versions too"

    stray = _resigned(replace(sixth, previous_sha256="ab" * 32), KEY)
    _write_over(s3, settings, stray)
    broken = verify_period(
        s3, settings.audit_bucket, PARTITIONS, T0 + 4 * HOUR, T0 + 6 * HOUR, public_hex(KEY)
    )
    assert not broken.intact
    assert "checkpoint 6 does not name checkpoint 5 as its previous" in broken.problems


def test_a_forged_version_beside_a_valid_one_is_a_break(log) -> None:  # noqa: ANN001
    settings, s3, written = log
    _write_over(s3, settings, _resigned(replace(written[3], at=written[3].at + HOUR), OTHER))
    report = verify_period(
        s3, settings.audit_bucket, PARTITIONS, T0 + 2 * HOUR, T0 + 5 * HOUR, public_hex(KEY)
    )
    assert not report.intact
    assert any("checkpoint 3: its signature does not verify" in p for p in report.problems), report.problems


def _cut_tail(s3: Any, settings: Settings, written: list[Checkpoint]) -> list[str]:
    """Plain deletes of each partition's newest segment and of the newest checkpoint: under COMPLIANCE
    retention they only lay delete markers, which the lock allows."""
    cut = [head.segment for head in written[-1].heads.values()] + [
        checkpoints.checkpoint_key(written[-1].seq)
    ]
    for key in cut:
        s3.delete_object(Bucket=settings.audit_bucket, Key=key)
    return cut


def test_a_tail_cut_by_delete_markers_is_a_break(log) -> None:  # noqa: ANN001
    """Issue 33, item 1: on main verify called the period open and intact (exit 0), and the replay took
    the head naming a missing segment for a crash between two writes (30 events became 20, no break)."""
    settings, s3, written = log
    cut = _cut_tail(s3, settings, written)
    now = T0 + 6 * HOUR
    report = verify_period(
        s3,
        settings.audit_bucket,
        PARTITIONS,
        T0 + 4 * HOUR,
        now,
        public_hex(KEY),
        freshness=Freshness(now, HOUR),
    )
    assert not report.intact
    assert f"{cut[-1]} was deleted by hand: a delete marker hides its locked version" in report.problems
    assert {(b.kind, b.segment) for b in report.breaks} >= {("deleted", cut[0]), ("deleted", cut[1])}
    assert {(b.kind, b.segment) for b in report.breaks} >= {("removed", cut[0]), ("removed", cut[1])}, (
        "each partition's head names a segment the store has not got"
    )
    whole = AuditLog()
    list(archive_events(s3, settings.model_copy(update={"audit_public_key": public_hex(KEY)}), whole))
    found = {(b.kind, b.segment) for b in whole.breaks}
    assert {("deleted", key) for key in cut} | {("removed", cut[0]), ("removed", cut[1])} <= found, found


def test_a_head_pointed_back_is_refused_by_the_signer_and_the_verifier(log) -> None:  # noqa: ANN001
    """Issue 33, item 1: on main the leader signed whatever the unlocked head said, so a head pointed
    back at an older segment was endorsed by the next checkpoint and verify stayed intact."""
    settings, s3, written = log
    older = written[2].heads[0]
    segments.write_head(
        s3, settings.audit_bucket, 0, segments.Head(older.segment, older.last_offset, older.sha256)
    )
    with pytest.raises(ValueError, match="the head of partition 0 went back from offset 59 to 29"):
        next_checkpoint(written[5], _heads_now(s3, settings), T0 + 6 * HOUR, KEY)

    endorsed = Checkpoint(
        seq=6, at=T0 + 6 * HOUR, heads=_heads_now(s3, settings), previous_sha256=written[5].sha256(),
        public_key=public_hex(KEY),
    )  # fmt: skip
    checkpoints.write_checkpoint(
        s3, settings.audit_bucket, _resigned(endorsed, KEY), T0 + timedelta(days=30), conditional=True
    )
    report = verify_period(
        s3, settings.audit_bucket, PARTITIONS, T0 + 4 * HOUR, T0 + 6 * HOUR, public_hex(KEY)
    )
    assert not report.intact
    assert any("checkpoint 6: the head of partition 0 went back" in p for p in report.problems), (
        report.problems
    )


def test_a_period_left_open_longer_than_two_intervals_is_not_intact(log) -> None:  # noqa: ANN001
    """The newest checkpoint was signed at 05:30; the leader signs hourly."""
    settings, s3, _ = log

    def verify(now: datetime) -> object:
        return verify_period(
            s3, settings.audit_bucket, PARTITIONS, T0 + 4 * HOUR, now, public_hex(KEY),
            freshness=Freshness(now, HOUR),
        )  # fmt: skip

    assert verify(T0 + 7 * HOUR).intact, "an hour and a half after the newest: still open, not cut"
    stale = verify(T0 + 8 * HOUR)
    assert not stale.intact
    assert (
        "the newest checkpoint, 5, was signed at 2026-11-02T05:30:00+00:00, more than two signing "
        in (stale.problems[0])
    )


def test_planted_objects_among_the_checkpoints_are_reported_and_the_signer_passes_them_over(log) -> None:  # noqa: ANN001
    """Issue 33, item 3: on main a planted copy of checkpoint 0 sorting last made the leader start again
    from 1 (a second version of that name) while verify said intact; garbage sorting last stopped all
    signing, and garbage in the middle made verify raise a traceback."""
    settings, s3, written = log
    bucket = settings.audit_bucket
    s3.put_object(Bucket=bucket, Key="checkpoints/999999999999.json", Body=written[0].document())
    s3.put_object(Bucket=bucket, Key="checkpoints/zzz.json", Body=b"garbage")
    assert checkpoints.last_checkpoint(s3, bucket) == written[5], "the newest whose name and body agree"
    report = verify_period(s3, bucket, PARTITIONS, T0 + 2 * HOUR, T0 + 7 * HOUR, public_hex(KEY))
    assert not report.intact
    assert "checkpoints/zzz.json is not a checkpoint's name: an object planted among them" in report.problems
    assert "checkpoints/999999999999.json holds checkpoint 0: a copy under another number" in report.problems

    s3.put_object(Bucket=bucket, Key=checkpoints.checkpoint_key(3) + "x", Body=b"{")  # a stray, not a name
    _write_over(s3, settings, written[2])  # a second version of 2: same bytes, fine
    s3.put_object(Bucket=bucket, Key=checkpoints.checkpoint_key(4), Body=b"not json")  # over a real one
    broken = verify_period(s3, bucket, PARTITIONS, T0 + 4 * HOUR, T0 + 5 * HOUR, public_hex(KEY))
    assert not broken.intact, "reported, not raised"
    assert any("checkpoints/000000000004.json: " in p for p in broken.problems), broken.problems


def test_a_checkpoint_with_a_field_added_or_of_another_type_is_not_one() -> None:
    """Issue 33, item 7: on main `seq` as text, or an extra field, still verified."""
    heads = {0: PartitionHead("segments/p000/a", "ab" * 32, 9)}
    cp = next_checkpoint(None, heads, T0, KEY)
    doc = json.loads(cp.document())
    assert checkpoints.parse_checkpoint(cp.document()) == cp
    for changed in ({**doc, "seq": "0"}, {**doc, "note": "extra"}):
        raw = json.dumps(changed, sort_keys=True, separators=(",", ":")).encode()
        with pytest.raises(ValueError, match="not in its canonical form"):
            checkpoints.parse_checkpoint(raw)


def test_every_partition_the_checkpoints_name_is_read_whatever_the_settings_say(log) -> None:  # noqa: ANN001
    """Issue 33, item 7: on main verify and the replay read `CALLVAULT_PARTITIONS` partitions only, so
    with the setting lowered an edit in partition 1 went unseen."""
    settings, s3, written = log
    edited = written[3].heads[1].segment
    body = segments.read_segment(s3, settings.audit_bucket, edited).replace(b"recording.accessed", b"x", 1)
    segments.write_segment(s3, settings.audit_bucket, edited, body, T0 + timedelta(days=30))
    report = verify_period(s3, settings.audit_bucket, 1, T0 + 2 * HOUR, T0 + 4 * HOUR, public_hex(KEY))
    assert ("edited", edited) in {(b.kind, b.segment) for b in report.breaks}
    whole = AuditLog()
    one_partition = settings.model_copy(update={"audit_public_key": public_hex(KEY), "partitions": 1})
    list(archive_events(s3, one_partition, whole))
    assert any(b.segment == edited for b in whole.breaks)


async def test_a_record_delivered_twice_in_one_batch_is_archived_once(log) -> None:  # noqa: ANN001
    """tests/integration/test_audit_archive.py caught a segment of offsets 0, 1, 2, 2 after a killed
    worker: a batch of `lifecycle` can hold a record twice. The segment holds each record once."""
    settings, s3, _ = log
    runner = S3Runner(s3, max_workers=2, endpoint=None, backoff_cap_s=0.05, give_up_after=3)
    archiver = AuditArchiver(settings, runner, FixedClock(T0 + 7 * HOUR))
    tail = segments.read_head(s3, settings.audit_bucket, 0)
    assert tail is not None
    first = tail.last_offset + 1
    records = [LoggedRecord(0, first + i, f"c-7-{i}", json.dumps(_event(7, i))) for i in (0, 1, 2, 2, 1)]
    await archiver.archive(0, records)
    head = segments.read_head(s3, settings.audit_bucket, 0)
    assert head is not None and head.last_offset == first + 2
    stored = parse_segment(segments.read_segment(s3, settings.audit_bucket, head.key))[1]
    assert [r.offset for r in stored] == [first, first + 1, first + 2]
    runner.close()
