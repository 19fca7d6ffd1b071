"""Processing sites: declared with their country, and who may read what from where. Pure."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from callvault.contract.fields import format_rfc3339
from callvault.rules.audit_replay import replay
from callvault.rules.sites import parse_sites, site_refusal
from callvault.settings import Settings

SITES = {"be-machelen": "BE", "nl-weert": "NL", "ma-rabat": "MA"}


def test_sites_are_declared_with_their_country() -> None:
    assert parse_sites("be-machelen=BE, nl-weert=nl,ma-rabat=MA") == SITES
    assert parse_sites("") == {}


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        ("machelen", "is not site=COUNTRY"),
        ("Machelen=BE", "is not site=COUNTRY"),
        ("be-machelen=Belgium", "is not an ISO 3166 country code"),
        ("a=BE,a=NL", "declared twice"),
    ],
)
def test_a_bad_declaration_is_one_sentence(text: str, sentence: str) -> None:
    with pytest.raises(ValueError, match=sentence):
        parse_sites(text)


def test_who_may_read_from_where() -> None:
    assert site_refusal(None, {}, "acme", ()) is None, "no sites declared: not checked"
    assert "names none" in str(site_refusal(None, SITES, "acme", ()))
    assert "not one this callvault declares" in str(site_refusal("us-austin", SITES, "acme", ()))
    assert site_refusal("nl-weert", SITES, "acme", ()) is None, "inside the EEA: any tenant"
    refused = site_refusal("ma-rabat", SITES, "acme", ())
    assert refused == (
        "the site ma-rabat is in MA, outside the EEA, and tenant 'acme' has not allowed processing there "
        "(callvault policy allow-site)"
    )
    assert site_refusal("ma-rabat", SITES, "acme", ("ma-rabat",)) is None


T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def _event(kind: str, at: datetime, **fields: object) -> dict[str, object]:
    return {"type": kind, "event_id": str(uuid.uuid4()), "call_id": "c1", "tenant": "acme",
            "occurred_at": format_rfc3339(at), **fields}  # fmt: skip


def _read_from(site: str, country: str, at: datetime) -> dict[str, object]:
    return _event("recording.accessed", at, accessed_by="coach@rabat", role="qa", purpose="qa",
                  what="metadata", granted_tenants=["acme"], site=site, site_country=country)  # fmt: skip


def _allowed(at: datetime, sites: list[str], version: int) -> dict[str, object]:
    return {
        "type": "policy.changed", "event_id": str(uuid.uuid4()), "tenant": "acme",
        "occurred_at": format_rfc3339(at), "version": version, "changes": {"allow_site": "ma-rabat"},
        "changed_by": "dpo", "reason": "client asked", "effective_at": format_rfc3339(at),
        "policy": {"tenant_rules": {}, "queues": {}, "allowed_sites": sites},
    }  # fmt: skip


def test_the_replay_flags_an_access_from_a_site_not_allowed_at_the_time() -> None:
    expires = format_rfc3339(T0 + timedelta(days=180))
    archived = _event("metadata.archived", T0, object={"key": "acme/2026/11/02/c1.json"},
                      call_started_at=format_rfc3339(T0), expires_at=expires)  # fmt: skip
    before = _read_from("ma-rabat", "MA", T0 + timedelta(days=1))
    allowed = _allowed(T0 + timedelta(days=2), ["ma-rabat"], 1)
    after = _read_from("ma-rabat", "MA", T0 + timedelta(days=3))
    denied = _allowed(T0 + timedelta(days=4), [], 2)
    again = _read_from("ma-rabat", "MA", T0 + timedelta(days=5))
    inside = _read_from("be-machelen", "BE", T0 + timedelta(days=5))

    result = replay([archived, before, allowed, after, denied, again, inside], T0 + timedelta(days=6),
                    timedelta(minutes=10), Settings().policy_defaults)  # fmt: skip

    flagged = [v for v in result.violations if v.rule == "access_from_site_not_allowed"]
    assert [v.evidence for v in flagged] == [(before["event_id"],), (again["event_id"],)]
    assert result.accesses_by_site == {"ma-rabat (MA)": 3, "be-machelen (BE)": 1}


def test_the_replay_holds_a_withdrawal_made_while_a_version_was_pending_against_later_reads() -> None:
    """Issue 32: deny-site with a version pending a month out; the replay reads the versions callvault
    itself proves, and a read from the site after the withdrawal, or after the pending version takes
    effect, is flagged."""
    from callvault.rules import evidence
    from callvault.rules.client_policy import Scope, next_versions, site_versions

    defaults = Settings().policy_defaults
    bounds = Settings().policy_bounds
    history = site_versions([], "acme", "ma-rabat", True, changed_by="dpo", reason="annex", changed_at=T0)
    history += next_versions(
        history, "acme", Scope(terms={"recording": "P7D"}), None, changed_by="dpo", reason="clause",
        changed_at=T0, effective_at=T0 + timedelta(days=30), bounds=bounds, defaults=defaults,
    )  # fmt: skip
    history += site_versions(
        history,
        "acme",
        "ma-rabat",
        False,
        changed_by="dpo",
        reason="annex ended",
        changed_at=T0 + timedelta(days=2),
    )
    proofs = [evidence.policy_changed(v).model_dump(mode="json") for v in history]
    expires = format_rfc3339(T0 + timedelta(days=180))
    archived = _event("metadata.archived", T0, object={"key": "acme/2026/11/02/c1.json"},
                      call_started_at=format_rfc3339(T0), expires_at=expires)  # fmt: skip
    allowed = _read_from("ma-rabat", "MA", T0 + timedelta(days=1))
    after = _read_from("ma-rabat", "MA", T0 + timedelta(days=3))
    after_pending = _read_from("ma-rabat", "MA", T0 + timedelta(days=31))

    result = replay([*proofs, archived, allowed, after, after_pending], T0 + timedelta(days=32),
                    timedelta(minutes=10), defaults)  # fmt: skip

    flagged = [v.evidence for v in result.violations if v.rule == "access_from_site_not_allowed"]
    assert flagged == [(after["event_id"],), (after_pending["event_id"],)]
