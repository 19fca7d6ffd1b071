"""A replay's working set on disk: each call's story and every event id, in SQLite.

Six months of metadata means no call's story is complete inside a six-month
log, so a replay that kept every call in memory grew with the log (4.5 KB a
call: 80 GB for six months of a mid-size centre). Here the calls last touched
stay in memory (`keep` of them, written back when they fall out) and the rest
wait in a SQLite file; event ids go straight to disk, as a 16-byte digest of the
id beside the 12-byte digest of the event's facts. Memory is then bounded by
`keep` calls, SQLite's page cache and the replay's totals; disk grows with the
log (the report says how much).

Pickle is safe here: the file is written and read by the same replay, in a
temporary directory of its own, and never shared.
"""

from __future__ import annotations

import pickle
import sqlite3
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

from callvault.rules.audit_replay import CallRef, Seen, _Call

PAGE_CACHE_KIB = 16 * 1024  # SQLite's page cache per connection
BLOOM_BITS = 1 << 27  # 16 MiB: about 2% false positives at 10 million keys, with 4 probes


class Bloom:
    """Which keys may be on disk: a key it has never seen costs no SQLite lookup.

    Almost every event id and almost every call is new when first read, and a
    lookup that finds nothing is the costly case; a false positive only costs
    the lookup it would have made anyway.
    """

    def __init__(self, bits: int = BLOOM_BITS) -> None:
        self._bits = bytearray(bits // 8)
        self._mask = bits - 1

    def _probes(self, key: bytes) -> tuple[int, int, int, int]:
        # Python's own (SipHash) hash: keyed per process, which is all a filter of one replay needs.
        first, second, mask = hash(key), hash(key + b"\x00"), self._mask
        return first & mask, (first >> 32) & mask, second & mask, (second >> 32) & mask

    def add(self, key: bytes) -> None:
        for probe in self._probes(key):
            self._bits[probe >> 3] |= 1 << (probe & 7)

    def __contains__(self, key: bytes) -> bool:
        return all(self._bits[probe >> 3] & (1 << (probe & 7)) for probe in self._probes(key))


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    # A scratch file that dies with the replay: no journal, no fsync.
    for pragma in ("journal_mode=OFF", "synchronous=OFF", "temp_store=FILE", f"cache_size=-{PAGE_CACHE_KIB}"):
        db.execute(f"PRAGMA {pragma}")
    db.execute("BEGIN")
    return db


class SpilledStories:
    """Call stories: the `keep` most recently touched in memory, the others in SQLite."""

    def __init__(self, path: Path, keep: int = 20_000) -> None:
        self.db = _connect(path)
        # A rowid table: a story (about 1 KB) stays on its B-tree page; a WITHOUT ROWID table sends any
        # row past about 1,000 bytes to an overflow page of its own, which quadrupled the file.
        self.db.execute("CREATE TABLE IF NOT EXISTS calls (tenant TEXT, call_id TEXT, story BLOB, "
                        "PRIMARY KEY (tenant, call_id))")  # fmt: skip
        self.keep = keep
        self._hot: OrderedDict[CallRef, _Call] = OrderedDict()
        self._on_disk = Bloom()
        self.spilled = 0  # stories written to disk

    def get(self, ref: CallRef) -> _Call | None:
        call = self._hot.get(ref)
        if call is not None:
            self._hot.move_to_end(ref)
            return call
        if _ref_key(ref) not in self._on_disk:
            return None  # never written out: a new call
        row = self.db.execute("SELECT story FROM calls WHERE tenant = ? AND call_id = ?", ref).fetchone()
        if row is None:
            return None
        loaded: _Call = pickle.loads(row[0])  # noqa: S301 - our own scratch file, see the module's docstring
        self._admit(ref, loaded)
        return loaded

    def put(self, ref: CallRef, call: _Call) -> None:
        self._admit(ref, call)

    def _admit(self, ref: CallRef, call: _Call) -> None:
        self._hot[ref] = call
        self._hot.move_to_end(ref)
        if len(self._hot) > self.keep:
            self._write(max(1, self.keep // 10))

    def _write(self, count: int) -> None:
        rows = []
        for _ in range(min(count, len(self._hot))):
            ref, call = self._hot.popitem(last=False)
            rows.append((*ref, pickle.dumps(call, protocol=pickle.HIGHEST_PROTOCOL)))
            self._on_disk.add(_ref_key(ref))
        self.db.executemany("INSERT OR REPLACE INTO calls VALUES (?, ?, ?)", sorted(rows))  # B-tree order
        self.spilled += len(rows)

    def flush(self) -> None:
        """Every story to disk and committed, for another process to read back with `stories()`."""
        self._write(len(self._hot))
        self.db.execute("COMMIT")
        self.db.execute("BEGIN")

    def stories(self) -> Iterator[tuple[CallRef, _Call]]:
        self.flush()
        cursor = self.db.execute("SELECT tenant, call_id, story FROM calls ORDER BY tenant, call_id")
        for tenant, call_id, story in cursor:
            yield (tenant, call_id), pickle.loads(story)  # noqa: S301 - see the module's docstring

    def close(self) -> None:
        self.db.close()


def _ref_key(ref: CallRef) -> bytes:
    return f"{ref[0]}/{ref[1]}".encode()


class SpilledSeen:
    """Every event id read, on disk; a repeat is told apart from a conflict by the facts' digest.

    Ids wait in memory (`batch` of them) and go to disk together; an id in
    neither the batch nor the Bloom filter of what went to disk is new without
    a lookup.
    """

    def __init__(self, path: Path, batch: int = 50_000) -> None:
        self.db = _connect(path)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS seen (id BLOB PRIMARY KEY, facts BLOB, rank INTEGER) WITHOUT ROWID"
        )
        self._pending: dict[bytes, tuple[bytes, int]] = {}
        self._on_disk = Bloom()
        self.batch = batch
        # Where the events being read sit in the order one process reads the whole log (the partition,
        # the tail after every archive): set by the reader as it moves on, kept with each id's first copy,
        # so that copies of one id in several shares can be ordered (`first_copies_elsewhere`).
        self.rank = 0

    def note(self, event_id: str, digest: bytes) -> Seen:
        key = event_id.encode()
        pending = self._pending.get(key)
        first = pending[0] if pending is not None else None
        if first is None and key in self._on_disk:
            row = self.db.execute("SELECT facts FROM seen WHERE id = ?", (key,)).fetchone()
            first = row[0] if row else None
        if first is not None:
            return "duplicate" if first == digest else "conflict"
        self._pending[key] = (digest, self.rank)
        if len(self._pending) >= self.batch:
            self._flush()
        return "new"

    def _flush(self) -> None:
        rows = sorted((key, digest, rank) for key, (digest, rank) in self._pending.items())
        self.db.executemany("INSERT OR IGNORE INTO seen VALUES (?, ?, ?)", rows)
        for key in self._pending:
            self._on_disk.add(key)
        self._pending.clear()

    def close(self) -> None:
        """Every id to disk and committed (the merge reads them all), then closed."""
        self._flush()
        self.db.execute("COMMIT")
        self.db.close()


def first_copies_elsewhere(paths: list[Path]) -> list[dict[str, bytes]]:
    """For each share's id set (`SpilledSeen` files), the ids whose first copy in the whole log's order
    lies in another share, with that copy's facts digest.

    One process reading every partition takes the first copy of an id as the event and compares every
    later one with it: a repeat, or a conflict (a forgery under a real id, written with another key so
    it lands on another partition). Shares read apart each see their own copy as new; this finds them,
    by joining the shares' id sets on disk pairwise, so each share can read its later copies as the one
    process would.
    """
    copies: dict[bytes, list[tuple[int, int, bytes]]] = {}  # id -> (rank, share, digest)
    db = sqlite3.connect(":memory:")
    try:
        for i, path in enumerate(paths):
            db.execute(f"ATTACH DATABASE ? AS s{i}", (str(path),))
        for i in range(len(paths)):
            for j in range(i + 1, len(paths)):
                both = f"s{i}.seen a JOIN s{j}.seen b ON a.id = b.id"
                pairs = db.execute(f"SELECT a.id, a.facts, a.rank, b.facts, b.rank FROM {both}")  # noqa: S608
                for key, facts_a, rank_a, facts_b, rank_b in pairs:
                    found = copies.setdefault(key, [])
                    for entry in ((rank_a, i, facts_a), (rank_b, j, facts_b)):
                        if entry not in found:
                            found.append(entry)
    finally:
        db.close()
    elsewhere: list[dict[str, bytes]] = [{} for _ in paths]
    for key, found in copies.items():
        _, winner, digest = min(found)
        for _, share, _ in found:
            if share != winner:
                elsewhere[share][key.decode()] = digest
    return elsewhere


def disk_used(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
