"""`storage init` against the real S3 endpoint: buckets, versioning, object lock, backstop rules."""

from __future__ import annotations

import pytest

from callvault.settings import Settings
from callvault.storage.bootstrap import init_storage
from callvault.storage.client import make_s3_client
from tests.cli import run_callvault

pytestmark = pytest.mark.integration


def test_buckets_are_ready_and_init_is_idempotent(settings: Settings) -> None:
    s3 = make_s3_client(settings)
    again = init_storage(s3, settings)  # the session fixture ran it once already
    assert not any(r.created for r in again)
    by_name = {r.bucket: r for r in again}
    for bucket in (settings.recordings_bucket, settings.metadata_bucket, settings.audit_bucket):
        assert by_name[bucket].versioning == "enabled"
        assert by_name[bucket].object_lock == "enabled"
    rules = s3.get_bucket_lifecycle_configuration(Bucket=settings.recordings_bucket)["Rules"]
    backstop = next(r for r in rules if r["ID"] == "backstop-recording")
    assert backstop["Filter"] == {"Tag": {"Key": "retention-class", "Value": "recording"}}
    assert backstop["Expiration"]["Days"] == 38  # P1M at its longest (31 days) + 7 days margin
    meta = s3.get_bucket_lifecycle_configuration(Bucket=settings.metadata_bucket)["Rules"]
    assert next(r for r in meta if r["ID"] == "backstop-metadata")["Expiration"]["Days"] == 6 * 31 + 7


def test_cli_init_reports_an_unreachable_endpoint_in_one_sentence() -> None:
    result = run_callvault("storage", "init", env={"CALLVAULT_S3_ENDPOINT": "http://127.0.0.1:9"})
    assert result.returncode != 0
    assert "cannot reach the S3 endpoint http://127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_init_runs_against_the_store(settings: Settings) -> None:
    from tests.conftest import settings_env

    result = run_callvault("storage", "init", env=settings_env(settings))
    assert result.returncode == 0, result.stderr
    assert settings.recordings_bucket in result.stdout
