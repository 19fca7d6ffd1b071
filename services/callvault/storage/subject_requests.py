"""The subject-request registry: one JSON object per request, its deadline and status.

`_callvault/subject-requests/{tenant}/{request_id}.json` in the metadata bucket.
The CLI (or the API) records a request before sending its command, so a
request whose worker never answers still shows, with its deadline, in
`callvault subject requests`; the worker updates it when it is done. The audit
log holds the same story as events. Blocking (boto3): call off the loop.
"""

from __future__ import annotations

from botocore.client import BaseClient

from callvault.rules.subject_requests import RequestRecord
from callvault.storage.errors import is_not_found
from callvault.storage.registry import write_entry

REQUESTS_PREFIX = "_callvault/subject-requests/"


def _key(tenant: str, request_id: str) -> str:
    return f"{REQUESTS_PREFIX}{tenant}/{request_id}.json"


def put_request(s3: BaseClient, bucket: str, record: RequestRecord) -> None:
    write_entry(s3, bucket, _key(record.tenant, record.request_id), record)


def get_request(s3: BaseClient, bucket: str, tenant: str, request_id: str) -> RequestRecord | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=_key(tenant, request_id))["Body"].read()
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise
    return RequestRecord.model_validate_json(body)


def list_requests(s3: BaseClient, bucket: str, tenant: str | None = None) -> list[RequestRecord]:
    """Every recorded request (of one tenant, or all)."""
    prefix = REQUESTS_PREFIX + (f"{tenant}/" if tenant else "")
    records = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", ()):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            records.append(RequestRecord.model_validate_json(body))
    return records
