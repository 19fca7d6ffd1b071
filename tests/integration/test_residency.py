"""Buckets outside the allowed regions stop `storage init`, the API and the worker, with the sentence.

On the real store: the exports bucket made in us-east-1 beforehand, as a
mistaken set-up would; then the same with eu-west-2 added to the allowed
regions with a reason, which both accept.
"""

from __future__ import annotations

import secrets

import pytest

from callvault.rules.residency import EEA_REGIONS
from callvault.settings import Settings
from callvault.storage.client import make_s3_client
from tests.cli import run_callvault
from tests.conftest import make_settings, settings_env, spawn_worker
from tests.stack import Servers

pytestmark = pytest.mark.integration


def _bucket_in(settings: Settings, bucket: str, region: str) -> None:
    """Make `bucket` in `region` of the test's store, as someone else might have."""
    s3 = make_s3_client(settings.model_copy(update={"s3_region": region}))
    where = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=bucket, **where)


def test_a_bucket_outside_the_allowed_regions_stops_init_and_the_worker(servers: Servers) -> None:
    settings = make_settings(servers, "z" + secrets.token_hex(3))
    _bucket_in(settings, settings.exports_bucket, "us-east-1")
    env = settings_env(settings)

    init = run_callvault("storage", "init", env=env)
    assert init.returncode != 0 and "Traceback" not in init.stderr
    assert f"s3://{settings.exports_bucket} is in us-east-1 (US)" in init.stderr, init.stderr

    api = run_callvault("api", env={**env, "CALLVAULT_API_PORT": "0", "CALLVAULT_API_OPS_PORT": "0"})
    assert api.returncode != 0 and f"s3://{settings.exports_bucket} is in us-east-1 (US)" in api.stderr

    worker = spawn_worker(settings, "worker-outside-the-eea")
    try:
        assert worker.proc is not None and worker.proc.wait(timeout=60) != 0, "the worker ran anyway"
    finally:
        worker.stop()
    log = worker.log_path.read_text()
    assert f"s3://{settings.exports_bucket} is in us-east-1 (US)" in log and "Traceback" not in log


def test_a_region_added_with_its_reason_is_accepted_and_the_reason_logged(servers: Servers) -> None:
    settings = make_settings(
        servers, "z" + secrets.token_hex(3),
        allowed_regions=",".join((*EEA_REGIONS, "eu-west-2")),
        allowed_regions_reason="UK adequacy decision (EU) 2021/1772",
    )  # fmt: skip
    _bucket_in(settings, settings.exports_bucket, "eu-west-2")
    init = run_callvault("storage", "init", env=settings_env(settings))
    assert init.returncode == 0, init.stderr
    assert "storage outside the EEA allowed: eu-west-2, because: UK adequacy decision" in init.stderr
