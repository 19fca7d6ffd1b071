"""The audit archive's hash chain: a clean chain verifies; each kind of tampering shows."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from callvault.rules.audit_chain import (
    GENESIS,
    LoggedRecord,
    digest,
    parse_segment,
    segment_body,
    verify_chain,
)


def _chain(sizes: list[int], partition: int = 0) -> list[tuple[str, bytes]]:
    segments, previous, offset = [], GENESIS, 0
    for size in sizes:
        records = [
            LoggedRecord(partition, o, f"call-{o}", f'{{"n":{o}}}') for o in range(offset, offset + size)
        ]
        header, body = segment_body(records, previous)
        segments.append((f"p{partition:03d}/{header.first_offset:012d}.jsonl", body))
        previous, offset = digest(body), offset + size
    return segments


@given(st.lists(st.integers(1, 20), min_size=1, max_size=12))
def test_an_untouched_chain_has_no_break(sizes: list[int]) -> None:
    assert verify_chain(_chain(sizes)) == []


@given(st.lists(st.integers(1, 20), min_size=2, max_size=12), st.data())
def test_an_edited_record_breaks_the_chain(sizes: list[int], data: st.DataObject) -> None:
    chain = _chain(sizes)
    k = data.draw(st.integers(0, len(chain) - 2))
    name, body = chain[k]
    chain[k] = (name, body.replace(b"call-", b"calX-", 1))
    breaks = verify_chain(chain)
    assert [b.kind for b in breaks] == ["edited"] and breaks[0].segment == chain[k + 1][0]


@given(st.lists(st.integers(1, 20), min_size=3, max_size=12), st.data())
def test_a_removed_segment_is_found(sizes: list[int], data: st.DataObject) -> None:
    chain = _chain(sizes)
    k = data.draw(st.integers(1, len(chain) - 2))
    gone = chain.pop(k)
    breaks = verify_chain(chain)
    assert [b.kind for b in breaks] == ["removed"], (gone[0], breaks)


def test_swapped_segments_are_found() -> None:
    chain = _chain([3, 3, 3, 3])
    chain[1], chain[2] = chain[2], chain[1]
    assert "reordered" in {b.kind for b in verify_chain(chain)}


def test_a_segment_that_is_not_one_is_unreadable() -> None:
    chain = _chain([2, 2])
    chain[0] = (chain[0][0], b"not json\n")
    assert verify_chain(chain)[0].kind == "unreadable"


def test_a_segment_reads_back_as_written() -> None:
    records = [LoggedRecord(2, 7, None, '{"type":"x"}'), LoggedRecord(2, 8, "k", '{"é":1}')]
    header, body = segment_body(records, GENESIS)
    assert parse_segment(body) == (header, records)
