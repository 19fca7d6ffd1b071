"""Archived objects planted straight into the store, as the worker would have left them.

For the purge benchmark and tests: thousands of objects with chosen start times
(hence due dates) without running thousands of calls through the pipeline.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from botocore.client import BaseClient

from callvault.rules.data_classes import data_class
from callvault.rules.retention import RetentionClass
from callvault.settings import Settings
from callvault.storage.archive import put_document
from callvault.storage.layout import lifecycle_tags, metadata_key, recording_key


@dataclass(frozen=True, slots=True)
class Planted:
    bucket: str
    key: str
    call_id: str
    due_at: datetime


def plant(
    s3: BaseClient,
    settings: Settings,
    started: list[datetime],
    *,
    tenant: str = "seeded",
    retention_class: RetentionClass = RetentionClass.RECORDING,
    call_prefix: str = "seed",
    size_bytes: int = 256,
    threads: int = 16,
) -> list[Planted]:
    """One object per start time; due dates follow from the settings' retention."""
    bucket = data_class(retention_class).bucket(settings)

    def one(index: int) -> Planted:
        call_id = f"{call_prefix}-{index:06d}"
        start = started[index]
        key = (
            recording_key(tenant, call_id, start, "wav")
            if retention_class is RetentionClass.RECORDING
            else metadata_key(tenant, call_id, start)
        )
        due = settings.retention.expires_at(retention_class, start)
        body = os.urandom(size_bytes)
        put_document(  # unsealed: a benchmark's filler, whose bytes nobody opens
            s3,
            bucket=bucket,
            key=key,
            body=body,
            sha256=hashlib.sha256(body).hexdigest(),
            tags=lifecycle_tags(retention_class, due, tenant),
        )
        return Planted(bucket, key, call_id, due)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(one, range(len(started))))
