"""Where a bucket is, as its store reports it. Blocking (boto3): call it off the event loop.

AWS answers no constraint for us-east-1 and `EU` for the oldest eu-west-1
buckets; a store on premises answers a name of its own (Ceph RGW: `default`),
which says nothing about the country it stands in.
"""

from __future__ import annotations

from botocore.client import BaseClient

_AWS_ALIASES = {"": "us-east-1", "EU": "eu-west-1"}


def reported_location(s3: BaseClient, bucket: str) -> str:
    answer = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") or ""
    return _AWS_ALIASES.get(answer, answer)
