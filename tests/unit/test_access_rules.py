"""Who may see which call: the access verdict, table by table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callvault.rules.access import Answer, CallFacts, Grant, Role, Want, days_left, decide

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def grant(role: Role = Role.QA, *tenants: str) -> Grant:
    return Grant("coach@acme", role, frozenset(tenants or ("acme",)), "jti-1")


def facts(**overrides: object) -> CallFacts:
    values: dict[str, object] = {
        "tenant": "acme",
        "metadata_expires_at": NOW + timedelta(days=150),
        "recording_archived": True,
        "recording_expires_at": NOW + timedelta(days=20),
        "recording_outcome": "archived",
    }
    values.update(overrides)
    return CallFacts(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("want", list(Want))
def test_another_tenant_is_not_found_before_anything_else(want: Want) -> None:
    # Even a restricted, expired call of another tenant answers "not found": nothing leaks.
    other = facts(tenant="globex", restricted=True, metadata_expires_at=NOW - timedelta(days=1))
    for role in Role:
        verdict = decide(grant(role), want, "globex", "c-1", other, NOW)
        assert verdict.answer is Answer.NOT_FOUND
        assert verdict.reason == decide(grant(role), want, "globex", "c-1", None, NOW).reason


def test_the_star_grant_sees_every_tenant() -> None:
    assert decide(grant(Role.ADMIN, "*"), Want.AUDIO, "globex", "c", facts(tenant="globex"), NOW).allowed


def test_auditors_read_metadata_but_do_not_listen() -> None:
    assert decide(grant(Role.AUDITOR), Want.METADATA, "acme", "c", facts(), NOW).allowed
    verdict = decide(grant(Role.AUDITOR), Want.AUDIO, "acme", "c", facts(), NOW)
    assert verdict.answer is Answer.FORBIDDEN and "auditor" in verdict.reason


def test_a_recording_past_its_date_is_gone_while_its_metadata_is_not() -> None:
    expired = facts(recording_expires_at=NOW)
    assert decide(grant(), Want.AUDIO, "acme", "c", expired, NOW).answer is Answer.GONE
    assert decide(grant(), Want.METADATA, "acme", "c", expired, NOW).allowed


def test_metadata_past_its_date_or_an_erased_day_is_gone() -> None:
    old = facts(metadata_expires_at=NOW - timedelta(seconds=1))
    assert decide(grant(), Want.METADATA, "acme", "c", old, NOW).answer is Answer.GONE
    assert decide(grant(), Want.METADATA, "acme", "c", None, NOW, day_erased=True).answer is Answer.GONE
    assert decide(grant(), Want.METADATA, "acme", "c", None, NOW).answer is Answer.NOT_FOUND


def test_a_call_without_an_archived_recording_has_no_audio() -> None:
    rejected = facts(
        recording_archived=False, recording_expires_at=None, recording_outcome="disclosure_missing"
    )
    verdict = decide(grant(), Want.AUDIO, "acme", "c", rejected, NOW)
    assert verdict.answer is Answer.NOT_FOUND and "disclosure_missing" in verdict.reason


@pytest.mark.parametrize("role", list(Role))
def test_a_restricted_call_opens_only_for_the_dpo(role: Role) -> None:
    verdict = decide(grant(role), Want.METADATA, "acme", "c", facts(restricted=True), NOW)
    if role is Role.DPO:
        assert verdict.allowed
    else:
        assert verdict.answer is Answer.RESTRICTED and "restrict" in verdict.reason


@given(st.integers(min_value=-(10**7), max_value=10**8))
def test_days_left_counts_whole_days_up_and_never_below_zero(seconds: int) -> None:
    left = days_left(NOW + timedelta(seconds=seconds), NOW)
    assert left >= 0
    if seconds > 0:
        assert (left - 1) * 86400 < seconds <= left * 86400
    else:
        assert left == 0
