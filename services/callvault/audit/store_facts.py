"""What the log says of each archived object, kept on disk by tenant-day for `audit verify-store`.

verify-store compares the store with the log. Holding the log's word for every
object in memory grew with the log (an entry per recording and per metadata
document: millions at six months), so the facts go into a SQLite scratch file
as the log streams past, indexed by bucket and tenant-day; the walk then asks
for one tenant-day's facts at a time, and what is left (days the store no
longer has at all) is read back day by day too. Blocking; scratch only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from callvault.rules.data_classes import archived_events, deleted_events
from callvault.rules.store_check import SEALED_IN_PLACE, LogView, log_view

BATCH = 10_000


def day_of(key: str) -> str:
    """`{tenant}/{YYYY}/{MM}/{DD}` of an archive key (the walk's unit)."""
    return key.rsplit("/", 1)[0]


class LogFacts:
    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-16384"):
            self.db.execute(f"PRAGMA {pragma}")
        self.db.execute(
            "CREATE TABLE facts (bucket TEXT, day TEXT, key TEXT, type TEXT, event_id TEXT, tenant TEXT, "
            "call_id TEXT, version_id TEXT, sha256 TEXT, stored_sha256 TEXT)"
        )
        self._pending: list[tuple[str | None, ...]] = []
        self.events = 0

    def add(self, events: Iterable[dict[str, Any]]) -> None:
        """Keep the archive and deletion events' facts; every other event is passed over."""
        proofs = archived_events().keys() | deleted_events().keys() | {SEALED_IN_PLACE}
        for event in events:
            kind = event.get("type")
            if kind not in proofs:
                continue
            obj = event.get("object") or {}
            bucket, key = str(obj.get("bucket", "")), str(obj.get("key", ""))
            self._pending.append(
                (bucket, day_of(key), key, str(kind), str(event.get("event_id")), str(event.get("tenant")),
                 str(event.get("call_id")), obj.get("version_id"), obj.get("sha256"),
                 event.get("stored_sha256"))
            )  # fmt: skip
            self.events += 1
            if len(self._pending) >= BATCH:
                self._flush()
        self._flush()
        self.db.execute("CREATE INDEX IF NOT EXISTS by_day ON facts (bucket, day)")

    def _flush(self) -> None:
        self.db.execute("BEGIN")
        self.db.executemany("INSERT INTO facts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", self._pending)
        self.db.execute("COMMIT")
        self._pending.clear()

    def view_of(self, bucket: str, day: str) -> LogView:
        """The log's word on one tenant-day of one bucket, in log order."""
        rows = self.db.execute(
            "SELECT key, type, event_id, tenant, call_id, version_id, sha256, stored_sha256 FROM facts "
            "WHERE bucket = ? AND day = ? ORDER BY rowid",
            (bucket, day),
        )
        return log_view(
            {"type": kind, "event_id": event_id, "tenant": tenant, "call_id": call_id,
             "object": {"bucket": bucket, "key": key, "version_id": version, "sha256": sha},
             "stored_sha256": stored}
            for key, kind, event_id, tenant, call_id, version, sha, stored in rows
        )  # fmt: skip

    def days(self, bucket: str) -> Iterator[str]:
        for (day,) in self.db.execute(
            "SELECT DISTINCT day FROM facts WHERE bucket = ? ORDER BY day", (bucket,)
        ):
            yield day

    def close(self) -> None:
        self.db.close()
