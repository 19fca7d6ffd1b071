"""The boto3 S3 client, configured once from settings."""

from __future__ import annotations

import boto3
from botocore.client import BaseClient
from botocore.config import Config

from callvault.settings import Settings


def make_s3_client(settings: Settings, *, attempts: int = 3, pool: int | None = None) -> BaseClient:
    """A thread-safe client of the archive's store; boto3 clients may be shared across threads."""
    return _client(
        settings.s3_endpoint,
        settings.s3_access_key,
        settings.s3_secret_key.get_secret_value(),
        settings.s3_region,
        attempts=attempts,
        pool=pool or max(10, settings.s3_max_concurrency),
    )


def make_staging_s3_client(settings: Settings, *, attempts: int = 3, pool: int | None = None) -> BaseClient:
    """A client of the store holding producers' uploads; the archive's unless configured apart."""
    secret = settings.staging_s3_secret_key or settings.s3_secret_key
    return _client(
        settings.staging_s3_endpoint or settings.s3_endpoint,
        settings.staging_s3_access_key or settings.s3_access_key,
        secret.get_secret_value(),
        settings.staging_s3_region or settings.s3_region,
        attempts=attempts,
        pool=pool or max(10, settings.s3_max_concurrency),
    )


def _client(
    endpoint: str | None, access_key: str, secret_key: str, region: str, *, attempts: int, pool: int
) -> BaseClient:
    config = Config(
        region_name=region,
        retries={"max_attempts": attempts, "mode": "standard"},
        max_pool_connections=pool,
        connect_timeout=5,
        read_timeout=60,
        s3={"addressing_style": "path"},
    )
    return boto3.client(
        "s3",
        endpoint_url=endpoint or None,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=config,
    )
