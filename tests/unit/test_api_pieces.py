"""The API's pure pieces: byte ranges, tokens and audio links, search ranges and cursors, views."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callvault.api.ranges import RangeNotSatisfiable, parse_range
from callvault.api.search import Address, SearchRefused, date_range, decode_cursor, encode_cursor
from callvault.api.tokens import (
    AudioLink,
    TokenRejected,
    issue_audio_link,
    issue_token,
    read_audio_link,
    read_token,
)
from callvault.api.views import detail, summary
from callvault.rules.access import Role

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SECRET = "a-test-secret-that-is-long-enough-for-hs256"


@given(st.integers(1, 10**7), st.integers(0, 10**7), st.integers(0, 10**7))
def test_a_range_serves_bytes_inside_the_object(size: int, a: int, b: int) -> None:
    try:
        found = parse_range(f"bytes={a}-{b}", size)
    except RangeNotSatisfiable:
        assert a >= size
        return
    if b < a:
        assert found is None  # invalid: the whole object
        return
    assert found is not None
    assert found.first == a and found.last == min(b, size - 1) and 1 <= found.length <= size


@given(st.integers(1, 10**6), st.integers(1, 2 * 10**6))
def test_a_suffix_range_is_the_last_bytes(size: int, suffix: int) -> None:
    found = parse_range(f"bytes=-{suffix}", size)
    assert found is not None and found.last == size - 1 and found.length == min(size, suffix)


@pytest.mark.parametrize("header", [None, "", "bytes=", "items=0-1", "bytes=0-1,5-6", "bytes=x-"])
def test_ranges_this_api_does_not_serve_mean_the_whole_object(header: str | None) -> None:
    assert parse_range(header, 100) is None


def test_a_range_past_the_end_is_unsatisfiable() -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=100-", 100)
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=-0", 100)


def test_a_token_round_trips_and_expires_by_the_given_clock() -> None:
    text = issue_token(SECRET, "coach@acme", Role.QA, ["acme", "beta"], NOW, timedelta(hours=1))
    grant = read_token(SECRET, text, NOW + timedelta(minutes=59))
    assert grant.role is Role.QA and grant.tenants == {"acme", "beta"} and grant.subject == "coach@acme"
    with pytest.raises(TokenRejected, match="expired"):
        read_token(SECRET, text, NOW + timedelta(hours=1, minutes=1))
    with pytest.raises(TokenRejected, match="signature"):
        read_token(SECRET + "x", text, NOW)


@pytest.mark.parametrize(
    ("tenants", "message"), [([], "at least one"), (["ACME"], "tenant"), (["a/b"], "tenant")]
)
def test_a_token_for_no_or_bad_tenants_is_not_issued(tenants: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        issue_token(SECRET, "x", Role.QA, tenants, NOW, timedelta(hours=1))


def test_an_audio_link_is_not_a_token_and_a_token_is_not_a_link() -> None:
    link = AudioLink(
        "acme",
        "c-1",
        "rec",
        "acme/2026/11/25/c-1.wav",
        "audio/wav",
        1000,
        "ab" * 32,
        None,
        NOW + timedelta(minutes=5),
        "evt",
        "coach@acme",
    )
    text = issue_audio_link(SECRET, link)
    assert read_audio_link(SECRET, text, NOW) == link
    with pytest.raises(TokenRejected, match="not meant"):
        read_token(SECRET, text, NOW)
    token = issue_token(SECRET, "x", Role.ADMIN, ["*"], NOW, timedelta(hours=1))
    with pytest.raises(TokenRejected, match="not meant"):
        read_audio_link(SECRET, token, NOW)


def test_a_search_covers_the_last_week_by_default_and_refuses_wide_or_reversed_ranges() -> None:
    today = date(2026, 11, 25)
    assert date_range(None, None, today, 186) == (date(2026, 11, 19), today)
    with pytest.raises(SearchRefused, match="after"):
        date_range(date(2026, 11, 26), today, today, 186)
    with pytest.raises(SearchRefused, match="at most 186"):
        date_range(date(2026, 1, 1), today, today, 186)


@given(
    st.dates(),
    st.from_regex(r"[a-z0-9-]{1,64}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9._:-]{1,128}", fullmatch=True),
)
def test_a_cursor_round_trips(day: date, tenant: str, call_id: str) -> None:
    address = Address(day, tenant, call_id)
    assert decode_cursor(encode_cursor(address)) == address


def _doc() -> dict[str, object]:
    return {
        "call_id": "c-1",
        "tenant": "acme",
        "started_at": "2026-11-25T09:00:00Z",
        "participants": {"caller": "p-caller", "callee": "p-callee"},
        "agent_id": "agent-7",
        "expires_at": "2027-05-25T09:00:00Z",
        "duration_s": 38.0,
        "disclosure": {
            "verdict": "compliant",
            "prompt_id": "n",
            "played_at": "2026-11-25T09:00:00Z",
            "event_id": "e",
        },
        "recording": {
            "outcome": "archived",
            "key": "acme/2026/11/25/c-1.wav",
            "expires_at": "2026-12-25T09:00:06Z",
            "sha256": "0" * 64,
            "size_bytes": 10,
            "content_type": "audio/wav",
        },
    }


def test_views_never_show_participants_and_hide_restricted_details() -> None:
    shown = detail(_doc(), date(2026, 11, 25), NOW).model_dump_json()
    assert "p-caller" not in shown and "participants" not in shown
    hidden = summary(_doc(), date(2026, 11, 25), frozenset({"p-callee"}), NOW)
    assert hidden.restricted and hidden.agent_id is None and hidden.outcome is None
    assert summary(_doc(), date(2026, 11, 25), frozenset({"other"}), NOW).agent_id == "agent-7"


def test_a_search_cursor_goes_on_after_the_tenant_it_finished() -> None:
    """A budgeted search stops between tenants and days; its cursor must skip what was searched."""
    from datetime import date

    from callvault.api.search import TENANT_DONE, Address, SearchQuery

    day = date(2026, 11, 30)
    query = SearchQuery(
        ("acme", "beta", "zeta"), date(2026, 11, 28), day, after=Address(day, "beta", TENANT_DONE)
    )
    assert query.days_left_to_search() == [day, date(2026, 11, 29), date(2026, 11, 28)]
    assert [t for t in query.tenants if not query.tenant_done(day, t)] == ["zeta"]
    assert not query.tenant_done(date(2026, 11, 29), "acme")
    midway = SearchQuery(("acme", "beta"), day, day, after=Address(day, "beta", "c-5"))
    assert not midway.tenant_done(day, "beta") and midway.tenant_done(day, "acme")
    assert not midway.wants_key(Address(day, "beta", "c-4")) and midway.wants_key(Address(day, "beta", "c-6"))
    assert not query.wants_key(Address(day, "beta", "zz-last-call"))  # '~' sorts after every call id


def test_a_restricted_call_matches_on_address_and_time_only() -> None:
    from datetime import date

    from callvault.api.search import SearchQuery

    doc = {"agent_id": "a-17", "recording": {"outcome": "archived"}}
    plain = SearchQuery(("acme",), date(2026, 11, 30), date(2026, 11, 30))
    by_agent = SearchQuery(("acme",), date(2026, 11, 30), date(2026, 11, 30), agent_id="a-17")
    assert by_agent.wants_document(doc) and not by_agent.wants_document(doc, restricted=True)
    assert plain.wants_document(doc, restricted=True)
