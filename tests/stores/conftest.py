"""Each test of the storage case runs once per store lane, on buckets of its own."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from botocore.client import BaseClient

from callvault.settings import Settings, bucket_settings
from callvault.storage.bootstrap import BucketReport, init_storage
from callvault.storage.client import make_s3_client
from callvault.storage.sealing import Keyring
from tests.stores.lanes import LANES, Lane, open_lane


@pytest.fixture(scope="module", params=LANES)
def lane(request: pytest.FixtureRequest) -> Iterator[Lane]:
    with open_lane(request.param) as opened:
        yield opened


@dataclass(frozen=True)
class Store:
    lane: Lane
    s3: BaseClient
    settings: Settings
    reports: list[BucketReport]

    def keyring(self) -> Keyring:
        """The lane's KMS, to seal and open with; the test skips where the lane has none."""
        if self.lane.kms_endpoint is None:
            pytest.skip("this lane names no KMS (CALLVAULT_TEST_KMS): sealing is checked on the others")
        return Keyring.for_settings(self.settings)

    def lenient(self, what: str) -> None:
        """Skip here when this store is known to let `what` pass: the check holds on stricter ones."""
        if what in self.lane.lenient:
            pytest.skip(f"{what}; this check holds on the stricter stores (Ceph RGW, AWS)")


@pytest.fixture
def store(lane: Lane) -> Store:
    """callvault's buckets, freshly made by `storage init` under names no other test uses."""
    tag = f"cv{secrets.token_hex(4)}"
    settings = Settings(
        s3_endpoint=lane.endpoint or "",  # "": boto3's own endpoint, which moto in-process answers
        s3_region=lane.region,
        s3_access_key=lane.keys[0],
        s3_secret_key=lane.keys[1],
        kms_endpoint=lane.kms_endpoint or "",
        **{name: f"{tag}-{name.removesuffix('_bucket')}" for name in bucket_settings()},  # type: ignore[arg-type]
    )
    s3 = make_s3_client(settings, attempts=2)
    return Store(lane, s3, settings, init_storage(s3, settings))
