"""The input mark: how far `call-events` is taken in, which a wake-up's deadline waits for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from callvault.stream.input_mark import InputProgress, PartitionProgress, input_mark, published_at
from callvault.stream.messages import CallMessage
from callvault.stream.processor import judged_at

NOW = datetime(2026, 12, 6, 21, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(minutes=7)


def test_read_to_the_end_everywhere_is_the_clock() -> None:
    assert input_mark(NOW, [PartitionProgress(10, 10, EARLIER), PartitionProgress(0, 0, None)]) == NOW
    assert input_mark(NOW, []) == NOW  # no partition of call-events held: nothing to wait for


def test_a_partition_behind_holds_the_mark_at_its_last_record() -> None:
    behind = PartitionProgress(4, 10, EARLIER)
    assert input_mark(NOW, [PartitionProgress(10, 10, None), behind]) == EARLIER


def test_behind_with_nothing_taken_or_before_the_first_fetch_tells_nothing() -> None:
    assert input_mark(NOW, [PartitionProgress(3, 10, None)]) is None
    assert input_mark(NOW, [PartitionProgress(3, None, None)]) is None
    assert input_mark(NOW, [PartitionProgress(3, None, EARLIER)]) == EARLIER


def test_a_producer_clock_ahead_moves_nothing_past_the_clock() -> None:
    assert input_mark(NOW, [PartitionProgress(4, 10, NOW + timedelta(hours=1))]) == NOW


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20), st.integers(-600, 600)), max_size=6))
def test_the_mark_is_never_later_than_any_partition_behind(parts: list[tuple[int, int, int]]) -> None:
    progress = [PartitionProgress(n, end, NOW + timedelta(seconds=s)) for n, end, s in parts]
    mark = input_mark(NOW, progress)
    assert mark is not None and mark <= NOW
    for p in progress:
        if p.next_offset < (p.end or 0):
            assert p.last_published is not None and mark <= p.last_published


def test_progress_takes_the_last_record_or_the_groups_commit_if_further() -> None:
    taken = InputProgress()
    assert taken.progress("tp", 5, None) == PartitionProgress(0, 5, None)
    assert taken.progress("tp", 5, 5) == PartitionProgress(5, 5, None)
    taken.took("tp", 6, EARLIER.timestamp())
    assert taken.progress("tp", 9, 3) == PartitionProgress(7, 9, EARLIER)
    assert taken.progress("tp", 9, 8) == PartitionProgress(8, 9, EARLIER)  # another worker went on
    taken.took("tp", 2, NOW.timestamp())  # read again after a seek: the mark does not go back
    assert taken.progress("tp", 9, None) == PartitionProgress(7, 9, EARLIER)
    taken.took("tp", 7, None)  # a record with no timestamp keeps the last one known
    assert taken.progress("tp", 9, None) == PartitionProgress(8, 9, EARLIER)


def test_a_record_timestamp_becomes_a_utc_time() -> None:
    assert published_at(EARLIER.timestamp()) == EARLIER
    assert published_at(None) is None and published_at(-1.0) is None


def test_a_message_is_judged_at_its_sending_never_after_the_clock() -> None:
    sent = CallMessage(kind="wake", call_id="c1", tenant="acme", published_at=EARLIER)
    assert judged_at(NOW, sent) == EARLIER
    assert judged_at(NOW, sent.model_copy(update={"published_at": None})) == NOW
    assert judged_at(NOW, sent.model_copy(update={"published_at": NOW + timedelta(1)})) == NOW
