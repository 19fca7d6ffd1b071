"""The boto3 S3 client, configured once from settings."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from prometheus_client import Counter

from callvault.observability.metrics import S3_REQUESTS
from callvault.settings import Settings


def make_s3_client(settings: Settings, *, attempts: int = 3, pool: int | None = None) -> BaseClient:
    """A thread-safe client of the archive's store; boto3 clients may be shared across threads."""
    return _client(
        settings.s3_endpoint,
        settings.s3_keys(),
        settings.s3_region,
        attempts=attempts,
        pool=pool or max(10, settings.s3_max_concurrency),
    )


def make_staging_s3_client(settings: Settings, *, attempts: int = 3, pool: int | None = None) -> BaseClient:
    """A client of the store holding producers' uploads; the archive's unless configured apart."""
    keys = settings.s3_keys()
    if settings.staging_s3_access_key and settings.staging_s3_secret_key is not None:
        keys = settings.staging_s3_access_key, settings.staging_s3_secret_key.get_secret_value()
    return _client(
        settings.staging_s3_endpoint or settings.s3_endpoint,
        keys,
        settings.staging_s3_region or settings.s3_region,
        attempts=attempts,
        pool=pool or max(10, settings.s3_max_concurrency),
    )


def _client(
    endpoint: str | None, keys: tuple[str, str] | None, region: str, *, attempts: int, pool: int
) -> BaseClient:
    """`keys` None: boto3's default credential chain (pod identity, instance profile, AWS_* variables)."""
    config = Config(
        region_name=region,
        retries={"max_attempts": attempts, "mode": "standard"},
        max_pool_connections=pool,
        connect_timeout=5,
        read_timeout=60,
        s3={"addressing_style": "path"},
    )
    client = boto3.client(
        "s3",
        endpoint_url=endpoint or None,
        aws_access_key_id=keys[0] if keys else None,
        aws_secret_access_key=keys[1] if keys else None,
        config=config,
    )
    count_requests(client, "s3", S3_REQUESTS)
    return client


def count_requests(client: BaseClient, service: str, counter: Counter) -> None:
    """Every attempt the client puts on the wire, by operation, in `counter`: `callvault_s3_requests_total`,
    `callvault_kms_requests_total`, and what bench/ingest.py reads of them."""

    def count(*, event_name: str = "", **_: Any) -> None:
        counter.labels(event_name.rsplit(".", 1)[-1] or "unknown").inc()  # before-send.s3.PutObject

    client.meta.events.register(f"before-send.{service}", count)


def make_return_s3_client(
    endpoint: str | None, keys: tuple[str, str] | None, region: str, settings: Settings
) -> BaseClient:
    """A client of the store a client's data is returned to (its own, with its own credentials);
    the archive's store and keys where none are given."""
    return _client(
        endpoint if endpoint is not None else settings.s3_endpoint,
        keys if keys is not None else settings.s3_keys(),
        region or settings.s3_region,
        attempts=3,
        pool=max(10, settings.s3_max_concurrency),
    )
