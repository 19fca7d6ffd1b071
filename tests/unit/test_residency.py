"""Where callvault may keep data: the EEA by default, elsewhere only with a reason (issue 17, part 1)."""

from __future__ import annotations

import pytest

from callvault.rules.residency import EEA_REGIONS, outside_eea, parse_places, residency_problem
from callvault.settings import Settings

DEFAULT = frozenset(EEA_REGIONS)


def test_the_default_is_the_eea_regions_of_aws_and_nothing_else() -> None:
    assert Settings().allowed_places == DEFAULT
    assert outside_eea(DEFAULT) == []
    for region in EEA_REGIONS:
        assert residency_problem("b", region, DEFAULT, None) is None


def test_a_bucket_outside_the_list_is_refused_naming_bucket_and_region() -> None:
    problem = residency_problem("callvault-exports", "us-east-1", DEFAULT, None)
    assert problem is not None
    assert "s3://callvault-exports is in us-east-1 (US)" in problem and "CALLVAULT_ALLOWED_REGIONS" in problem
    assert residency_problem("b", "eu-west-2", DEFAULT, None) is not None  # London: not in the EEA


def test_a_region_outside_the_eea_needs_a_reason_and_is_then_allowed() -> None:
    with pytest.raises(ValueError, match="allows eu-west-2, outside the EEA; say why"):
        Settings(allowed_regions="eu-west-1,eu-west-2")
    added = Settings(allowed_regions="eu-west-1,eu-west-2", allowed_regions_reason="UK adequacy, 2021/1772")
    assert residency_problem("b", "eu-west-2", added.allowed_places, None) is None
    assert residency_problem("b", "eu-west-3", added.allowed_places, None) is not None  # not listed


def test_a_store_on_premises_declares_its_country_which_then_decides() -> None:
    # MinIO answers us-east-1 and Ceph RGW `default` wherever they stand.
    assert residency_problem("b", "us-east-1", DEFAULT, "BE") is None
    assert residency_problem("b", "default", DEFAULT, "NO") is None  # Norway: EEA, not EU
    undeclared = residency_problem("b", "default", DEFAULT, None)
    assert undeclared is not None and "CALLVAULT_STORAGE_COUNTRY" in undeclared and "'default'" in undeclared
    with pytest.raises(ValueError, match="CALLVAULT_STORAGE_COUNTRY is MA, outside the EEA"):
        Settings(storage_country="MA")
    allowed = Settings(storage_country="MA", allowed_regions="eu-west-1,MA", allowed_regions_reason="SCCs")
    assert residency_problem("b", "default", allowed.allowed_places, "MA") is None


@pytest.mark.parametrize("text", ["eu_west_1", "be", "Europe", ""])
def test_what_is_neither_a_region_nor_a_country_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_places(text)


def test_a_country_code_must_be_two_capitals() -> None:
    with pytest.raises(ValueError, match="not an ISO 3166 country code"):
        Settings(storage_country="Belgium")


def test_what_decides_where_a_store_stands() -> None:
    """Issue 33, item 6: on main CALLVAULT_STORAGE_COUNTRY=BE let buckets in us-east-1 on AWS pass, and
    a store elsewhere answering eu-west-1 passed with no country declared."""
    from callvault.rules.residency import residency_basis

    assert residency_basis(None, "BE", dev=False) == "reported", "AWS: its region; the country is ignored"
    assert residency_basis("s3.eu-west-1.amazonaws.com", "BE", dev=False) == "reported"
    assert residency_basis("minio.storage", "BE", dev=False) == "country"
    assert residency_basis("minio.storage", None, dev=False) == "undeclared", "anything may answer eu-west-1"
    assert residency_basis("127.0.0.1", None, dev=True) == "reported", "the embedded and test stacks"
