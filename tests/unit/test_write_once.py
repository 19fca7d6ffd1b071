"""Two writers of one name by claims, on a store that lists claims of one instant oldest first."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from callvault.storage import write_once

CLAIM = "_callvault/policies/acme/v000001.json.claim"


class TiedStore:
    """Versions of one key, listed in the order they were made (moto's order for one millisecond)."""

    def __init__(self) -> None:
        self.versions: list[str] = []
        self.first_look = threading.Event()  # the first writer has looked at the claims


class TiedClient:
    def __init__(self, store: TiedStore, name: str, wait_for_first_look: bool) -> None:
        self.store, self.name, self.wait = store, name, wait_for_first_look

    def put_object(self, **_: Any) -> dict[str, str]:
        if self.wait:
            self.store.first_look.wait(5)  # the worst order: the other writer looks while alone
        self.store.versions.append(self.name)
        return {"VersionId": self.name}

    def get_paginator(self, _: str) -> TiedClient:
        return self

    def paginate(self, **_: Any) -> list[dict[str, Any]]:
        versions = [{"Key": CLAIM, "VersionId": v} for v in self.store.versions]  # newest should be first
        self.store.first_look.set()
        return [{"Versions": versions}]


def test_of_two_claims_of_one_instant_exactly_one_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer that looked while its claim stood alone took itself for the first, and so did the
    other, which found its own claim listed last (a fresh-clone CI run of 53d06d0 on moto)."""
    monkeypatch.setattr(write_once, "CONFIRM_S", 0.2, raising=False)
    store = TiedStore()
    won: dict[str, bool] = {}

    def claim(client: TiedClient) -> None:
        won[client.name] = write_once._first_claim(client, "meta", CLAIM)  # type: ignore[arg-type]

    writers = [threading.Thread(target=claim, args=(TiedClient(store, n, n == "b"),)) for n in "ab"]
    for w in writers:
        w.start()
    for w in writers:
        w.join(10)
    assert sorted(won) == ["a", "b"] and sum(won.values()) == 1, won
