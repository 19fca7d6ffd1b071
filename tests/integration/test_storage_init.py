"""`callvault storage init` end to end; what it makes of each bucket: tests/stores, on every store."""

from __future__ import annotations

import pytest

from callvault.settings import Settings
from tests.cli import run_callvault

pytestmark = pytest.mark.integration


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
