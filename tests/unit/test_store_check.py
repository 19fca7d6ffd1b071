"""verify-store's verdicts: the store's keys against the log's word."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from callvault.rules.purge import Due
from callvault.rules.store_check import FoundKey, check_store, log_view

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TOL = timedelta(minutes=10)


def key(name: str, **overrides: object) -> FoundKey:
    values: dict[str, object] = {
        "bucket": "rec", "key": f"acme/2026/11/01/{name}.wav", "tenant": "acme", "call_id": name,
        "versions": 1, "has_data": True, "day_due": Due.NONE,
    }  # fmt: skip
    values.update(overrides)
    return FoundKey(**values)  # type: ignore[arg-type]


def archived(name: str, **obj: object) -> dict[str, object]:
    return {"type": "recording.archived", "event_id": f"a-{name}", "tenant": "acme", "call_id": name,
            "object": {"bucket": "rec", "key": f"acme/2026/11/01/{name}.wav", **obj}}  # fmt: skip


def deleted(name: str) -> dict[str, object]:
    return {"type": "recording.deleted", "event_id": f"d-{name}",
            "object": {"bucket": "rec", "key": f"acme/2026/11/01/{name}.wav"}}  # fmt: skip


def rules(keys: list[FoundKey], events: list[dict[str, object]], held: set[str] | None = None) -> list[str]:
    return [f"{f.rule}:{f.call_id}" for f in check_store(keys, log_view(events), held or set(), NOW, TOL)]


def test_a_clean_store_has_no_findings() -> None:
    assert rules([key("a"), key("b", day_due=Due.SOME, due_at=NOW)], [archived("a"), archived("b")]) == []


def test_an_object_past_due_is_found_unless_its_call_is_held() -> None:
    late = [key("a", day_due=Due.ALL), key("b", day_due=Due.SOME, due_at=NOW - TOL)]
    assert rules(late, [archived("a"), archived("b")]) == ["past_due_in_store:a", "past_due_in_store:b"]
    assert rules(late, [archived("a"), archived("b")], held={"acme/a", "acme/b"}) == []
    expected = ["past_due_in_store:a", "past_due_in_store:b"]
    assert rules(late, [archived("a"), archived("b")], held={"beta/a", "beta/b"}) == expected, (
        "another tenant's hold on the same ids keeps nothing of acme's"
    )


def test_only_markers_left_past_due_is_still_not_deleted() -> None:
    assert rules([key("a", day_due=Due.ALL, has_data=False, versions=1)], [archived("a")]) == [
        "past_due_in_store:a",
        "missing_from_store:a",  # and its bytes went with no proof
    ]


def test_data_no_event_archived_is_found() -> None:
    assert rules([key("ghost")], [archived("a")]) == ["archived_without_event:ghost", "missing_from_store:a"]


def test_an_archived_object_the_store_lacks_is_missing_unless_its_deletion_is_proven() -> None:
    assert rules([], [archived("a")]) == []  # no bucket walked: nothing to say
    found = check_store([], log_view([archived("a")]), set(), NOW, TOL, buckets={"rec"})
    assert [(f.rule, f.call_id, f.evidence) for f in found] == [("missing_from_store", "a", ("a-a",))]
    assert check_store([], log_view([archived("a"), deleted("a")]), set(), NOW, TOL, buckets={"rec"}) == []
    assert check_store([], log_view([archived("a")]), set(), NOW, TOL, buckets={"meta"}) == []


def test_a_version_whose_bytes_no_archive_event_names_is_found() -> None:
    log = [archived("a", version_id="v1", sha256="11" * 32)]
    same_bytes_again = key("a", unnamed_versions=(("v2", "11" * 32),))  # a rewrite of the same bytes
    assert rules([same_bytes_again], log) == []
    other_bytes = key("a", unnamed_versions=(("v3", "22" * 32),))
    assert rules([other_bytes], log) == ["version_not_archived:a"]


def test_a_proven_deletion_with_versions_left_is_found_with_its_proof() -> None:
    found = check_store([key("a")], log_view([archived("a"), deleted("a")]), set(), NOW, TOL)
    assert [(f.rule, f.evidence) for f in found] == [("deleted_but_present", ("d-a",))]
