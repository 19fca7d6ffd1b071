"""The sealed object format (issue 29, its first part): round trips, ranges, and every tampering refused."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callvault.contract.sealed import (
    TAG_BYTES,
    SealedRefused,
    header_size,
    new_header,
    open_all,
    open_segments,
    parse_header,
    seal,
)

KEY = bytes(range(32))
CONTEXT = {"tenant": "acme", "data_class": "recording"}


def sealed(plain: bytes, segment: int = 1024, key: bytes = KEY, chunk: int = 333) -> bytes:
    header = new_header("arn:aws:kms:eu-west-1:1:key/acme", b"wrapped-by-kms", len(plain), CONTEXT, segment)
    return b"".join(seal(header, key, (plain[i : i + chunk] for i in range(0, len(plain), chunk))))


@settings(max_examples=200, deadline=None)
@given(
    plain=st.binary(max_size=5000),
    segment=st.sampled_from([1, 7, 64, 1024]),
    chunk=st.integers(1, 2000),
    window=st.tuples(st.integers(0, 5000), st.integers(0, 5000)),
)
def test_any_range_reads_back_exactly_from_only_the_segments_it_covers(
    plain: bytes, segment: int, chunk: int, window: tuple[int, int]
) -> None:
    data = sealed(plain, segment, chunk=chunk)
    header = parse_header(data[: header_size(data)])
    assert len(data) == header.sealed_size and open_all(data, KEY) == plain
    if not plain:
        return
    first, last = sorted(w % len(plain) for w in window)
    start, end, seg_first, seg_last = header.cipher_range(first, last)
    opened = open_segments(header, KEY, data[start : end + 1], seg_first)
    offset = seg_first * segment
    assert opened[first - offset : last - offset + 1] == plain[first : last + 1]
    assert end - start + 1 <= (seg_last - seg_first + 1) * (segment + TAG_BYTES), "no segment beyond"


def test_no_plaintext_chunk_is_in_the_stored_bytes() -> None:
    plain = os.urandom(10_000)
    data = sealed(plain, 1024)
    assert all(plain[i : i + 16] not in data for i in range(0, len(plain) - 16, 97))


@pytest.mark.parametrize(
    ("how", "said"),
    [
        ("a byte flipped", "does not open"),
        ("two segments swapped", "does not open"),
        ("the last segment cut", "truncated"),
        ("a segment appended", "truncated or padded"),
        ("the header's length edited", "truncated or padded"),
        ("the header's tenant edited", "does not open"),
        ("the header respelled", "canonical form"),
        ("another key", "does not open"),
        ("no header", "not a sealed object"),
    ],
)
def test_a_tampered_object_is_refused_with_a_sentence_never_garbage(how: str, said: str) -> None:
    plain = os.urandom(3000)
    data = bytearray(sealed(plain, 1024))
    size, step = header_size(bytes(data)), 1024 + TAG_BYTES
    key = KEY
    if how == "a byte flipped":
        data[size + 1500] ^= 1
    elif how == "two segments swapped":
        data[size : size + 2 * step] = data[size + step : size + 2 * step] + data[size : size + step]
    elif how == "the last segment cut":
        del data[size + 2 * step :]
    elif how == "a segment appended":
        data += data[size : size + step]
    elif how == "the header's length edited":
        data[:size] = bytes(data[:size]).replace(b'"length":3000', b'"length":2999')
    elif how == "the header's tenant edited":  # same length: only the segments' AAD can tell
        data[:size] = bytes(data[:size]).replace(b'"tenant":"acme"', b'"tenant":"acmf"')
    elif how == "the header respelled":
        data[:size] = bytes(data[:size]).replace(b'"length":3000', b'"length":3e03')  # the same number
    elif how == "another key":
        key = os.urandom(32)
    elif how == "no header":
        data = bytearray(plain)
    with pytest.raises(SealedRefused, match=said):
        open_all(bytes(data), key)


def test_the_plaintext_must_be_as_long_as_the_header_says() -> None:
    header = new_header("k", b"w", 10, CONTEXT, 4)
    with pytest.raises(SealedRefused, match="has 9 bytes"):
        b"".join(seal(header, KEY, [b"123456789"]))
    with pytest.raises(SealedRefused, match="longer than the 10 bytes"):
        b"".join(seal(header, KEY, [b"12345678901"]))
