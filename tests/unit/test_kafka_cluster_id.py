"""The embedded Apache Kafka's cluster id: one format in 64 failed CI when the id began with '-'."""

from __future__ import annotations

import base64
import uuid

import pytest

from callvault.embedded import kafka_broker


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """The storage tool reads '-…' as an option; the id is drawn again instead (was: a red run)."""
    dashed = uuid.UUID(bytes=base64.urlsafe_b64decode("-" + "A" * 21 + "=="))
    plain = uuid.UUID(int=1)
    draws = iter([dashed, dashed, plain])
    monkeypatch.setattr(kafka_broker.uuid, "uuid4", lambda: next(draws))
    found = kafka_broker._cluster_id()
    assert not found.startswith("-")
    assert base64.urlsafe_b64decode(found + "==") == plain.bytes


def test_a_cluster_id_is_sixteen_bytes_in_url_safe_base64() -> None:
    for _ in range(500):
        found = kafka_broker._cluster_id()
        assert len(found) == 22 and not found.startswith("-")
        assert len(base64.urlsafe_b64decode(found + "==")) == 16
