"""Where the call-state table writes a call's state, and how it reads what an older version left.

The broker-side proof (a worker's changelog records against its `calls` records) is
`tests/integration/test_restart.py`; these are the table's rules, on faust's own
in-memory store, without a broker.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from aiokafka.partitioner import DefaultPartitioner, murmur2
from faust.types import TP
from hypothesis import given
from hypothesis import strategies as st

from callvault.stream.call_state_table import CallStateTable
from callvault.stream.messages import calls_partition, state_partition

PARTITIONS = 4
CHANGELOG = "t-call-state-changelog"
ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.:-_", min_size=1, max_size=40)
tenants = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)


@given(ids, tenants, st.integers(1, 64))
def test_a_state_is_placed_by_its_call_id_as_calls_is(call_id: str, tenant: str, partitions: int) -> None:
    own = state_partition(f"{tenant}/{call_id}".encode(), partitions)
    # What the producer of `calls` does with the key `topic_key(call_id)`.
    assert own == DefaultPartitioner()(call_id.encode(), list(range(partitions)), [])
    assert own == calls_partition(call_id, partitions)
    assert state_partition(call_id.encode(), partitions) == own  # the bare id an older version used


def _legacy_key() -> tuple[bytes, int, int]:
    """A state key an older version put elsewhere: (key, its own partition, the legacy one)."""
    for n in range(100):
        key = f"acme/call-{n}".encode()
        own, legacy = state_partition(key, PARTITIONS), (murmur2(key) & 0x7FFFFFFF) % PARTITIONS
        if own != legacy:
            return key, own, legacy
    raise AssertionError("no key of the older placement differs")  # pragma: no cover


def _entry(key: bytes, partition: int, value: dict[str, Any] | None) -> Any:
    return SimpleNamespace(key=key, value=value, message=SimpleNamespace(partition=partition, value=value))


class _Sent(list[tuple[int, bytes, Any]]):
    """What the table sent to its changelog: (partition, key, value)."""

    def send(self, partition: int, key: bytes, value: Any, *_: Any, **__: Any) -> Any:
        self.append((partition, key, value))
        return SimpleNamespace(message=SimpleNamespace(partition=partition))


@pytest.fixture
def table() -> Iterator[tuple[CallStateTable, _Sent]]:
    app = faust.App("t", broker="kafka://localhost:1", store="memory://")
    made = app.tables.add(
        CallStateTable(app, name="call-state", default=None, beacon=app.tables.beacon, partitions=PARTITIONS)
    )
    sent = _Sent()
    made.send_changelog = sent.send  # type: ignore[method-assign]
    yield made, sent


def test_a_write_goes_to_the_calls_partition_of_the_call(table: tuple[CallStateTable, _Sent]) -> None:
    states, sent = table
    key, own, _ = _legacy_key()
    states[key] = {"state": 1}
    assert sent == [(own, key, {"state": 1})]


def test_an_older_versions_entry_is_taken_while_nothing_newer_is_known(
    table: tuple[CallStateTable, _Sent],
) -> None:
    states, sent = table
    key, own, legacy = _legacy_key()
    states.apply_changelog_batch([_entry(key, legacy, {"state": "old"})])
    assert states.data[key] == {"state": "old"}
    # Its first write afterwards deletes it where it lay, so it cannot come back.
    states[key] = {"state": "new"}
    assert sent == [(legacy, key, None), (own, key, {"state": "new"})]
    del states[key]
    assert sent[2:] == [(own, key, None)]
    assert key not in states.data._key_partition  # noqa: SLF001 - nothing kept of a forgotten call


@pytest.mark.parametrize("legacy_first", [True, False])
@pytest.mark.parametrize("one_batch", [True, False])
def test_the_calls_own_partition_wins_in_whatever_order_recovery_reads(
    table: tuple[CallStateTable, _Sent], legacy_first: bool, one_batch: bool
) -> None:
    states, sent = table
    key, own, legacy = _legacy_key()
    entries = [_entry(key, own, {"state": "new"}), _entry(key, legacy, {"state": "old"})]
    if legacy_first:
        entries.reverse()
    batches = [entries] if one_batch else [[e] for e in entries]
    for batch in batches:
        states.apply_changelog_batch(batch)
    assert states.data[key] == {"state": "new"}
    states[key] = {"state": "newer"}
    assert sent == [(own, key, {"state": "newer"})]  # nothing of the older placement is left to delete


def test_an_older_versions_deletion_never_deletes_what_the_own_partition_holds(
    table: tuple[CallStateTable, _Sent],
) -> None:
    states, _ = table
    key, own, legacy = _legacy_key()
    states.apply_changelog_batch([_entry(key, own, {"state": "new"})])
    states.apply_changelog_batch([_entry(key, legacy, {"state": "old"}), _entry(key, legacy, None)])
    assert states.data[key] == {"state": "new"}


def test_a_deleted_call_stays_deleted_when_the_older_entry_comes_after(
    table: tuple[CallStateTable, _Sent],
) -> None:
    states, _ = table
    key, own, legacy = _legacy_key()
    # As this version leaves it: the legacy entry followed by the deletion its first write sent there.
    states.apply_changelog_batch([_entry(key, own, {"state": "new"}), _entry(key, own, None)])
    states.apply_changelog_batch([_entry(key, legacy, {"state": "old"}), _entry(key, legacy, None)])
    assert key not in states.data


async def test_after_recovery_a_worker_keeps_the_calls_of_its_own_partitions(
    table: tuple[CallStateTable, _Sent],
) -> None:
    states, _ = table
    key, own, legacy = _legacy_key()
    written = b"acme/written-here"
    states.apply_changelog_batch([_entry(key, legacy, {"state": "old"})])
    states[written] = {"state": "live"}
    held = {TP(CHANGELOG, own), TP(CHANGELOG, state_partition(written, PARTITIONS))}
    await states.data.on_recovery_completed(held, set())
    assert set(states.data.keys()) == {key, written}  # the legacy entry counts for its own partition
    await states.data.on_recovery_completed({TP(CHANGELOG, p) for p in range(PARTITIONS)} - held, set())
    assert not states.data  # moved away: the worker that now holds them recovers them
