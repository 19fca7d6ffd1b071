"""The boto3 S3 client, configured once from settings."""

from __future__ import annotations

import boto3
from botocore.client import BaseClient
from botocore.config import Config

from callvault.settings import Settings


def make_s3_client(settings: Settings, *, attempts: int = 3, pool: int | None = None) -> BaseClient:
    """A thread-safe client; boto3 clients (not resources) may be shared across threads."""
    config = Config(
        region_name=settings.s3_region,
        retries={"max_attempts": attempts, "mode": "standard"},
        max_pool_connections=pool or max(10, settings.s3_max_concurrency),
        connect_timeout=5,
        read_timeout=60,
        s3={"addressing_style": "path"},
    )
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint or None,
        aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=settings.s3_secret_key.get_secret_value(),
        config=config,
    )
