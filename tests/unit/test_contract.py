"""The checked-in schemas match the models; settings and pure helpers of the contract."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callvault.contract.base import deterministic_id
from callvault.contract.fields import format_rfc3339
from callvault.contract.schemas import all_schemas, drift
from callvault.rules.pseudonym import pseudonymize
from callvault.rules.retention import RetentionClass
from callvault.settings import Settings
from callvault.storage.layout import (
    ArchiveKey,
    lifecycle_tags,
    metadata_key,
    parse_archive_key,
    recording_key,
    tagging_header,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def test_schemas_match_the_models() -> None:
    problems = drift(SCHEMAS)
    assert not problems, f"schemas/ is out of date for {problems}; run `make schemas`"


def test_every_contract_type_has_a_schema() -> None:
    names = set(all_schemas())
    for expected in ("call-events/call.started.json", "call-events/recording.objected.json",
                     "lifecycle/recording.deleted.json", "commands/legal_hold.place.json",
                     "commands/subject.object.json", "deadletter/deadletter.json"):  # fmt: skip
        assert expected in names
    started = json.loads((SCHEMAS / "call-events/call.started.json").read_text())
    assert started["properties"]["call_id"]["pattern"] == "^[A-Za-z0-9._:-]{1,128}$"


def test_defaults_work_with_nothing_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("CALLVAULT_"):
            monkeypatch.delenv(name)
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.topic("call-events") == "callvault.call-events"
    assert (s.recording_retention, s.metadata_retention, s.disclosure_grace) == ("P1M", "P6M", "PT5M")
    assert s.timezone == "Europe/Brussels" and s.s3_region == "eu-west-1"


def test_bad_settings_explain_themselves() -> None:
    with pytest.raises(ValueError, match="is not an ISO 8601 duration"):
        Settings(recording_retention="one month")
    with pytest.raises(ValueError, match="must be hours, minutes or seconds"):
        Settings(disclosure_grace="P1D")
    with pytest.raises(ValueError, match="is not an IANA time zone"):
        Settings(timezone="Mars/Olympus")


def test_pseudonyms_are_stable_keyed_and_tenant_scoped() -> None:
    a = pseudonymize(b"k1" * 8, "acme", "+32470000000")
    assert a == pseudonymize(b"k1" * 8, "acme", "+32470000000")
    assert a != pseudonymize(b"k2" * 8, "acme", "+32470000000")
    assert a != pseudonymize(b"k1" * 8, "globex", "+32470000000")
    assert len(a) == 64 and "32470000000" not in a


def test_layout_follows_the_contract() -> None:
    late_evening_brussels = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    assert recording_key("acme", "c1", late_evening_brussels, "wav") == "acme/2026/03/01/c1.wav"
    assert metadata_key("acme", "c1", late_evening_brussels) == "acme/2026/03/01/c1.json"
    tags = lifecycle_tags(RetentionClass.RECORDING, datetime(2026, 4, 1, 23, 30, tzinfo=UTC), "acme")
    assert tags == {"retention-class": "recording", "expires-at": "2026-04-01T23:30:00Z", "tenant": "acme"}
    assert tagging_header(tags) == "retention-class=recording&expires-at=2026-04-01T23%3A30%3A00Z&tenant=acme"


def test_ids_and_timestamps_are_deterministic() -> None:
    assert deterministic_id("a", "b") == deterministic_id("a", "b") != deterministic_id("a", "c")
    assert format_rfc3339(datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)) == "2026-01-01T12:00:00.123Z"


@given(
    st.from_regex(r"[a-z0-9-]{1,64}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9._:-]{1,128}", fullmatch=True),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)),
)
def test_an_archive_key_reads_back_as_what_made_it(tenant: str, call_id: str, start: datetime) -> None:
    """The purger names the call of each key it finds; the layout must be readable backwards."""
    for key in (recording_key(tenant, call_id, start, "wav"), metadata_key(tenant, call_id, start)):
        parsed = parse_archive_key(key)
        assert parsed == ArchiveKey(tenant, start.date(), call_id)


@pytest.mark.parametrize(
    "key",
    ["_callvault/legal-holds/x.json", "acme/2026/02/30/c.wav", "acme/2026/01/01/", "ACME/2026/01/01/c.wav"],
)
def test_keys_callvault_did_not_lay_out_are_not_archive_keys(key: str) -> None:
    assert parse_archive_key(key) is None


def test_one_list_of_call_event_types_and_one_of_roles() -> None:
    """Issue 30: the call event types are read off the union, the roles off one enum, schemas included."""
    from typing import get_args

    from callvault.contract.call_events import CALL_EVENT_TYPES, CallEvent
    from callvault.contract.roles import Role
    from callvault.contract.schemas import all_schemas

    assert CALL_EVENT_TYPES == get_args(get_args(CallEvent)[0])
    for name in ("lifecycle/recording.accessed.json", "lifecycle/recording.access_refused.json"):
        assert all_schemas()[name]["$defs"]["Role"]["enum"] == [r.value for r in Role], name
