"""Session fixtures: the servers, callvault's settings for them, and a running worker."""

from __future__ import annotations

import asyncio
import os
import secrets
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callvault.embedded.processes import ChildProcess, free_port
from callvault.embedded.worker_process import start_api_process, start_worker_process
from callvault.rules.audit_checkpoint import private_key, public_hex
from callvault.rules.command_signature import new_identity, seed_text
from callvault.settings import Settings, bucket_settings
from callvault.storage.bootstrap import init_storage
from callvault.storage.client import make_s3_client, make_staging_s3_client
from callvault.stream.bus import ensure_callvault_topics
from tests.stack import Servers, test_servers

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

# Fast clocks for tests: a short grace and quick source retries keep the suite quick.
WORKER_TUNING = {
    "disclosure_grace": "PT3S",
    "source_retries": 2,
    "source_retry_backoff": "PT0.5S",
    "tick_interval_s": 0.5,
    "deletion_in_flight_s": 2.0,
    "stop_wait_s": 1.0,  # a stopped worker's unfinished messages are read again, as after a kill
    # Exports larger than this go up in parts: every access request in the suite takes that path.
    "s3_max_put_bytes": 16 * 1024,
}


def settings_env(settings: Settings) -> dict[str, str]:
    """The CALLVAULT_* variables that reproduce these settings in a child process."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue  # unset stays unset: str(None) would be read back as the text "None"
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"CALLVAULT_{name.upper()}"] = str(value)
    return env


def make_settings(servers: Servers, tag: str, **overrides: object) -> Settings:
    """Settings with topics and buckets of their own, so a shared real server stays clean."""
    values: dict[str, object] = {
        "kafka_bootstrap": servers.kafka_bootstrap,
        "s3_endpoint": servers.s3_endpoint,
        "s3_access_key": servers.s3_access_key,
        "s3_secret_key": servers.s3_secret_key,
        "topic_prefix": f"t{tag}.",
        "app_id": f"callvault-test-{tag}",
        # Every bucket setting (each data class's among them): cvt-{tag}-recordings, -metadata, ...
        **{name: f"cvt-{tag}-{name.removesuffix('_bucket')}" for name in bucket_settings()},
        **WORKER_TUNING,
    }
    if servers.kind.startswith("embedded (Tansu"):
        values["producer_max_batch_bytes"] = 1  # Tansu's end offsets: see the setting
    if servers.kind.startswith("embedded"):
        values["kms_endpoint"] = servers.s3_endpoint  # moto's server answers KMS as well as S3
    elif os.environ.get("CALLVAULT_TEST_KMS"):
        values["kms_endpoint"] = os.environ["CALLVAULT_TEST_KMS"]  # a KMS beside CALLVAULT_TEST_S3's store
    else:
        values["encryption"] = "off"
        values["encryption_off_reason"] = "the test servers name no KMS (set CALLVAULT_TEST_KMS)"
    if servers.kind.startswith("containers"):
        values["storage_country"] = "BE"  # MinIO answers us-east-1 as its location wherever it runs

    values.update(overrides)
    settings = Settings(**values)  # type: ignore[arg-type]
    if not settings.dev_values_allowed:  # CALLVAULT_TEST_* servers, or CALLVAULT_ENV=prod: no dev secrets
        generated = {
            "kafka_allow_plaintext_reason": "the test servers named by CALLVAULT_TEST_KAFKA",
            "pseudonym_key": secrets.token_hex(32),
            "api_token_secret": secrets.token_hex(32),
            "audit_signing_key": secrets.token_hex(32),
        }
        # The auditor's pinned key: the public half of the key these settings sign with.
        generated["audit_public_key"] = public_hex(private_key(generated["audit_signing_key"]))
        # An issuer of commands and the worker's trust in it, as `callvault keys new` makes them.
        issuer = new_identity("test-dpo")
        generated["command_signing_key"] = seed_text(issuer)
        generated["command_keys"] = f"{issuer.name}={issuer.public_key}"
        settings = Settings(**{**values, **generated, **overrides})  # type: ignore[arg-type]
    return settings


async def prepare_async(settings: Settings) -> None:
    """Topics and buckets for these settings (from inside a running event loop)."""
    await ensure_callvault_topics(settings)
    staging = make_staging_s3_client(settings) if settings.staging_is_separate else None
    await asyncio.to_thread(init_storage, make_s3_client(settings), settings, staging)


def prepare(settings: Settings) -> None:
    asyncio.run(prepare_async(settings))


def spawn_worker(
    settings: Settings, name: str = "worker", http_port: int | None = None, ready: bool = False
) -> ChildProcess:
    """A worker for these settings; its health and metrics on `http_port` (any free one by default).

    `ready`: return only once its /readyz answers 200 (it has its partitions and its state), so
    a test's own timeout measures the work it waits for, not how long a loaded machine took to
    start a worker and join its group (the flake of stop 37: a first call not archived in 30 s).
    """
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / f"{name}-{settings.app_id}.log"
    port = http_port or free_port()
    env = {**settings_env(settings), "CALLVAULT_WORKER_HTTP_PORT": str(port)}
    proc = start_worker_process(env, log, name=name)
    if ready:
        try:
            readyz = f"http://127.0.0.1:{port}/readyz"
            proc.wait_ready(lambda: answers_ready(readyz), WORKER_START_S, "ready")
        except BaseException:
            proc.stop()
            raise
    return proc


WORKER_START_S = 120.0  # a worker's start and group join on a loaded 2-core machine, with room


def answers_ready(url: str) -> bool:
    """Whether `url` answers 200 now (a worker's /readyz, a bench's app)."""
    with urllib.request.urlopen(url, timeout=3) as answer:  # noqa: S310 - loopback, a test's or a bench's own process
        return bool(answer.status == 200)


def spawn_api(settings: Settings, name: str = "api") -> tuple[ChildProcess, str, str]:
    """`callvault api` for these settings on free ports: the process, its base URL and its ops URL."""
    ARTIFACTS.mkdir(exist_ok=True)
    port, ops = free_port(), free_port()
    log = ARTIFACTS / f"{name}-{settings.app_id}.log"
    proc = start_api_process(settings_env(settings), log, port, name=name, ops_port=ops)
    return proc, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{ops}"


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    with test_servers() as found:
        yield found


def stack_fixtures(
    name: str, tag: str, *, api: bool = False, scope: str = "module", **overrides: object
) -> tuple[Any, ...]:
    """Fixtures for a stack of a test module's own: `{name}_settings` (topics and buckets of their
    own, made), `{name}_worker` (a worker over them), `{name}_worker_url` (its health and metrics)
    and, with `api`, `api_urls` and `api_url` (`callvault api` over them: its base and ops URLs).
    `overrides` are settings. Assign what it returns to module-level names, where pytest finds them:

        purge_settings, purge_worker, purge_url = stack_fixtures("purge", "p", metadata_retention="PT1H")

    An empty `name` gives the session's own: `settings`, `worker`, `worker_url`.
    """
    prefix = f"{name}_" if name else ""
    ports: dict[str, int] = {}

    @pytest.fixture(scope=scope, name=f"{prefix}settings")  # type: ignore[call-overload]
    def made(servers: Servers) -> Settings:
        settings = make_settings(servers, tag + secrets.token_hex(3), **overrides)
        prepare(settings)
        return settings

    @pytest.fixture(scope=scope, name=f"{prefix}worker")  # type: ignore[call-overload]
    def worker(request: pytest.FixtureRequest) -> Iterator[ChildProcess]:
        ports["worker"] = free_port()
        settings = request.getfixturevalue(f"{prefix}settings")
        # Its log: test-artifacts/worker-{app_id}.log.
        proc = spawn_worker(settings, http_port=ports["worker"], ready=True)
        yield proc
        proc.stop()

    @pytest.fixture(scope=scope, name=f"{prefix}worker_url")  # type: ignore[call-overload]
    def worker_url(request: pytest.FixtureRequest) -> str:
        request.getfixturevalue(f"{prefix}worker")
        return f"http://127.0.0.1:{ports['worker']}"

    if not api:
        return made, worker, worker_url

    @pytest.fixture(scope=scope, name="api_urls")  # type: ignore[call-overload]
    def api_urls(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
        request.getfixturevalue(f"{prefix}worker")
        # Its log: test-artifacts/api-{app_id}.log.
        proc, url, ops = spawn_api(request.getfixturevalue(f"{prefix}settings"))
        yield url, ops
        proc.stop()

    @pytest.fixture(scope=scope, name="api_url")  # type: ignore[call-overload]
    def api_url(api_urls: tuple[str, str]) -> str:
        return api_urls[0]

    return made, worker, worker_url, api_urls, api_url


# The session's stack, which most integration tests share.
settings, worker, worker_url, api_urls, api_url = stack_fixtures("", "", api=True, scope="session")


@pytest.fixture(autouse=True)
def _worker_still_alive(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that ran while the shared worker crashed says so, with the worker's log."""
    yield
    if "worker" in request.fixturenames:
        proc: ChildProcess = request.getfixturevalue("worker")
        assert proc.alive(), f"the worker died during this test; log tail:\n{proc.tail(40)}"


def pytest_report_header(config: pytest.Config) -> str:
    return f"callvault test servers: CALLVAULT_TEST_KAFKA={os.environ.get('CALLVAULT_TEST_KAFKA', '-')}"
