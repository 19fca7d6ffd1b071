"""Each client's key in KMS (issue 29, its second part), on moto's KMS in this process: a data key per
tenant and class, asked once per period; sealed objects open only under their own tenant and class;
a shredded key opens nothing, the other tenants' keys untouched."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from moto import mock_aws

from callvault.contract.sealed import header_size, new_header, open_all, parse_header, seal
from callvault.settings import Settings
from callvault.storage.tenant_keys import (
    DataKeys,
    KeyRefused,
    alias_of,
    context_of,
    ensure_tenant_key,
    make_kms_client,
    schedule_destruction,
    tenant_key,
    unwrap,
)


@pytest.fixture
def kms() -> Iterator[object]:
    with mock_aws():
        yield make_kms_client(Settings(s3_endpoint="", kms_endpoint=""))


def sealed_for(keys: DataKeys, tenant: str, data_class: str, plain: bytes) -> bytes:
    data_key, wrapped, key_id = keys.for_object(tenant, data_class)
    header = new_header(key_id, wrapped, len(plain), context_of(tenant, data_class), 4096)
    return b"".join(seal(header, data_key, [plain]))


def opened(kms: object, data: bytes) -> bytes:
    header = parse_header(data[: header_size(data)])
    return open_all(data, unwrap(kms, header))  # type: ignore[arg-type]


def test_a_key_per_tenant_made_once_and_data_keys_asked_once_per_period(kms: object) -> None:
    arn, made = ensure_tenant_key(kms, "acme")  # type: ignore[arg-type]
    assert made and ensure_tenant_key(kms, "acme") == (arn, False)  # type: ignore[arg-type]
    assert tenant_key(kms, "globex") is None  # type: ignore[arg-type]
    ensure_tenant_key(kms, "globex")  # type: ignore[arg-type]
    keys = DataKeys(kms, ttl_s=300)  # type: ignore[arg-type]
    objects = [sealed_for(keys, "acme", "recording", os.urandom(10_000)) for _ in range(1000)]
    assert keys.requests == 1, "one GenerateDataKey for a thousand recordings"
    headers = [parse_header(o[: header_size(o)]) for o in objects[:2]]
    assert headers[0].salt != headers[1].salt, "each object its own key"
    assert headers[0].key_id == arn
    sealed_for(keys, "acme", "metadata", b"{}")
    sealed_for(keys, "globex", "recording", b"x")
    assert keys.requests == 3, "one per tenant and class"


def test_an_object_opens_under_its_tenant_and_class_only(kms: object) -> None:
    for tenant in ("acme", "globex"):
        ensure_tenant_key(kms, tenant)  # type: ignore[arg-type]
    keys = DataKeys(kms)  # type: ignore[arg-type]
    plain = os.urandom(5000)
    data = sealed_for(keys, "acme", "recording", plain)
    assert opened(kms, data) == plain
    size = header_size(data)
    moved = data[:size].replace(b'"tenant":"acme"', b'"tenant":"acmf"')  # relabelled as another tenant's
    with pytest.raises(KeyRefused, match="does not unwrap under its key and context"):
        opened(kms, moved + data[size:])


def test_a_shredded_tenants_objects_open_no_more_and_the_others_do(kms: object) -> None:
    acme, _ = ensure_tenant_key(kms, "acme")  # type: ignore[arg-type]
    ensure_tenant_key(kms, "globex")  # type: ignore[arg-type]
    keys = DataKeys(kms)  # type: ignore[arg-type]
    theirs = sealed_for(keys, "acme", "recording", b"acme's call")
    others = sealed_for(keys, "globex", "recording", b"globex's call")
    when = schedule_destruction(kms, acme, 7)  # type: ignore[arg-type]
    assert when is not None
    with pytest.raises(KeyRefused, match="PendingDeletion"):
        opened(kms, theirs)  # an old version restored behind callvault's back: still closed
    assert opened(kms, others) == b"globex's call"
    assert tenant_key(kms, "acme")["KeyState"] == "PendingDeletion"  # type: ignore[arg-type,index]
    assert alias_of("acme") == "alias/callvault/acme"
