"""The pure rules of signed commands, and the settings that carry the keys (issue 26, item 4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from callvault.rules.command_signature import (
    Refusal,
    Verified,
    canonical_bytes,
    check_age,
    check_signature,
    new_identity,
    parse_command_keys,
    parse_signing_identity,
    replay_verdict,
    seed_text,
    sign_document,
)
from callvault.settings import DEV_COMMAND_SIGNING_KEY, Settings

ANNA = new_identity("dpo-anna")
KEYS = {ANNA.name: ANNA.public_key}
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


@given(st.dictionaries(st.text(max_size=10), json_values, max_size=6))
def test_what_is_signed_does_not_depend_on_the_order_of_fields(doc: dict[str, object]) -> None:
    signed = sign_document(doc, ANNA)
    reordered = dict(reversed(list(signed.items())))
    assert canonical_bytes(reordered) == canonical_bytes(signed)
    assert check_signature(reordered, KEYS) == Verified("dpo-anna")


def test_each_forgery_has_its_reason() -> None:
    doc = {"type": "legal_hold.release", "call_id": "c-1", "reason": "settled"}
    signed = sign_document(doc, ANNA)
    assert check_signature(doc, KEYS).reason == "unsigned"  # type: ignore[union-attr]
    assert check_signature({**doc, "signed_by": "dpo-anna"}, KEYS).reason == "unsigned"  # type: ignore[union-attr]
    assert check_signature(sign_document(doc, new_identity("eve")), KEYS).reason == "unknown_key"  # type: ignore[union-attr]
    assert check_signature({**signed, "call_id": "c-2"}, KEYS).reason == "bad_signature"  # type: ignore[union-attr]
    assert check_signature({**signed, "signature": "zz"}, KEYS).reason == "bad_signature"  # type: ignore[union-attr]
    assert check_signature(sign_document(doc, new_identity("dpo-anna")), KEYS).reason == "bad_signature"  # type: ignore[union-attr]


def test_the_window_is_either_side_of_the_clock() -> None:
    window = timedelta(minutes=15)
    assert check_age(NOW - timedelta(minutes=14), NOW, window, "a") is None
    assert check_age(NOW + timedelta(minutes=14), NOW, window, "a") is None
    old = check_age(NOW - timedelta(minutes=16), NOW, window, "a")
    ahead = check_age(NOW + timedelta(minutes=16), NOW, window, "a")
    assert isinstance(old, Refusal) and isinstance(ahead, Refusal)
    assert (old.reason, ahead.reason) == ("too_old", "too_old")


def test_a_command_id_taken_elsewhere_is_a_replay_and_at_its_own_offset_a_redelivery() -> None:
    assert replay_verdict(None, (0, 5)) == "first"
    assert replay_verdict((0, 5), (0, 5)) == "redelivered"
    assert replay_verdict((0, 5), (0, 9)) == "replayed"
    assert replay_verdict((0, 5), (1, 5)) == "replayed"


def test_command_keys_are_read_from_the_variable_or_a_file(tmp_path: Path) -> None:
    other = new_identity("api")
    text = f"{ANNA.name}={ANNA.public_key}, {other.name}={other.public_key.upper()}"
    assert parse_command_keys(text) == {"dpo-anna": ANNA.public_key, "api": other.public_key}
    listed = tmp_path / "keys"
    listed.write_text(f"# the DPO office\n{ANNA.name}={ANNA.public_key}\n\n{other.name}={other.public_key}\n")
    assert parse_command_keys(f"@{listed}") == {"dpo-anna": ANNA.public_key, "api": other.public_key}
    for bad, said in (
        ("dpo-anna", "is not NAME=PUBLIC_KEY"),
        ("dpo anna=00", "is not NAME=PUBLIC_KEY"),
        ("dpo-anna=1234", "is not 64 hex"),
        (f"a={ANNA.public_key},a={other.public_key}", "two different public keys"),
        (f"@{tmp_path / 'none'}", "cannot read the command keys file"),
    ):
        with pytest.raises(ValueError, match=said):
            parse_command_keys(bad)


def test_a_signing_key_is_name_and_seed_and_its_errors_never_show_the_seed() -> None:
    assert parse_signing_identity(seed_text(ANNA)).public_key == ANNA.public_key
    seed = seed_text(ANNA).partition(":")[2]
    for bad in (seed, f"dpo-anna:{seed[:-2]}", f"bad name:{seed}"):
        with pytest.raises(ValueError) as caught:
            parse_signing_identity(bad)
        assert seed[:40] not in str(caught.value)


def test_settings_trust_the_dev_key_on_the_embedded_stack_only() -> None:
    dev = Settings()
    assert list(dev.trusted_command_keys) == ["callvault-dev"]
    assert dev.command_identity().name == "callvault-dev"
    prod = Settings(env="prod")
    assert prod.trusted_command_keys == {}, "nobody is trusted until the operator says who"
    with pytest.raises(ValueError, match="CALLVAULT_COMMAND_SIGNING_KEY is not set"):
        prod.command_identity()
    dev_key = Settings(env="prod", command_signing_key=SecretStr(DEV_COMMAND_SIGNING_KEY))
    with pytest.raises(ValueError, match="is the published dev key"):
        dev_key.command_identity()
    assert any(
        "CALLVAULT_COMMAND_SIGNING_KEY is the published dev key" in p for p in dev_key.secret_problems()
    )
    dev_public = parse_signing_identity(DEV_COMMAND_SIGNING_KEY).public_key
    trusting = Settings(env="prod", command_keys=f"ops={dev_public}")
    assert any("trusts the published dev key (as 'ops')" in p for p in trusting.secret_problems())
    mine = Settings(
        env="prod", command_signing_key=SecretStr(seed_text(ANNA)), command_keys=f"dpo-anna={ANNA.public_key}"
    )
    assert mine.command_identity().name == "dpo-anna" and mine.trusted_command_keys == KEYS
    assert not [p for p in mine.secret_problems() if "COMMAND" in p]


def test_bad_command_settings_are_refused_with_the_setting() -> None:
    with pytest.raises(ValidationError, match="command_keys"):
        Settings(command_keys="anna")
    with pytest.raises(ValidationError, match="command_max_age"):
        Settings(command_max_age="P1M")
    assert Settings(command_max_age="PT1H").command_window == timedelta(hours=1)
