"""Where a bucket is, as its store reports it, and whether callvault may use it there.

Blocking (boto3): call it off the event loop.

AWS answers no constraint for us-east-1 and `EU` for the oldest eu-west-1
buckets; a store on premises answers a name of its own (Ceph RGW: `default`),
which says nothing about the country it stands in.
"""

from __future__ import annotations

from botocore.client import BaseClient
from botocore.exceptions import ClientError

from callvault.rules.residency import outside_eea, residency_basis, residency_problem, undeclared_problem
from callvault.rules.secret_form import endpoint_host
from callvault.settings import Settings
from callvault.storage.client import make_s3_client, make_staging_s3_client
from callvault.storage.errors import error_code

_AWS_ALIASES = {"": "us-east-1", "EU": "eu-west-1"}


def reported_location(s3: BaseClient, bucket: str) -> str:
    answer = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") or ""
    return _AWS_ALIASES.get(answer, answer)


def residency_problems(s3: BaseClient, settings: Settings, staging_s3: BaseClient | None = None) -> list[str]:
    """Why callvault may not run against its buckets where they are: a sentence each, none if it may.

    Every bucket it reads or writes counts: the archive's four, staging and the
    other upload buckets (in the staging store when that is apart). A bucket
    that does not exist yet holds nothing and is left to `storage init`.
    """
    found = []
    staging_endpoint = settings.staging_s3_endpoint if staging_s3 is not None else settings.s3_endpoint
    for client, endpoint, buckets in (
        (s3, settings.s3_endpoint, sorted(settings.own_buckets)),
        (staging_s3 or s3, staging_endpoint, sorted(settings.upload_buckets)),
    ):
        host = endpoint_host(endpoint) if endpoint else None
        basis = residency_basis(host, settings.storage_country, settings.dev_values_allowed)
        for bucket in buckets:
            problem = _problem(client, bucket, settings, basis, host or "")
            if problem:
                found.append(problem)
    return found


def _problem(s3: BaseClient, bucket: str, settings: Settings, basis: str, host: str) -> str | None:
    if basis == "country":  # the declared country decides; nothing to ask the store
        return residency_problem(bucket, "", settings.allowed_places, settings.storage_country)
    try:
        reported = reported_location(s3, bucket)
    except ClientError as exc:
        code = error_code(exc)
        if code in {"NoSuchBucket", "404"}:
            return None
        if code in {"AccessDenied", "403", "AllAccessDisabled"}:
            return (
                f"callvault may not read where s3://{bucket} is ({code}); grant it s3:GetBucketLocation, "
                "or declare the store's country with CALLVAULT_STORAGE_COUNTRY"
            )
        raise
    if basis == "undeclared":
        return undeclared_problem(bucket, host, reported)
    return residency_problem(bucket, reported, settings.allowed_places, None)


def destination_problem(
    s3: BaseClient, settings: Settings, bucket: str, endpoint: str | None = None
) -> str | None:
    """Why callvault may not send data to `bucket` (another organisation's: a subject's export, a
    client's data at its contract's end): none of callvault's own or producers' buckets, whatever the
    store (a name is refused on any endpoint: fail closed), an existing bucket, and where the residency
    rule allows, as for callvault's own buckets. `endpoint`: the recipient's store, when it is not the
    archive's (its location is then asked of it; the archive's declared country says nothing of it).
    None if it may."""
    if bucket in settings.own_buckets or bucket in settings.upload_buckets:
        return f"s3://{bucket} is callvault's own bucket or a producers' upload bucket, not a recipient's"
    archive_host = endpoint_host(settings.s3_endpoint) if settings.s3_endpoint else None
    host = endpoint_host(endpoint) if endpoint else archive_host
    country = settings.storage_country if host == archive_host else None
    basis = residency_basis(host, country, settings.dev_values_allowed)
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if error_code(exc) in {"NoSuchBucket", "404"}:
            return f"s3://{bucket} does not exist in its store; the recipient must create it first"
        if error_code(exc) in {"AccessDenied", "403"}:
            return (
                f"callvault may not write to s3://{bucket} ({error_code(exc)}); the recipient must grant it"
            )
        raise
    return _problem(s3, bucket, settings, basis, host or "")


def check_residency(settings: Settings) -> list[str]:
    """`residency_problems` on clients of its own, one try a call: the caller decides how to wait."""
    staging = make_staging_s3_client(settings, attempts=1) if settings.staging_is_separate else None
    return residency_problems(make_s3_client(settings, attempts=1), settings, staging)


def outside_eea_notice(settings: Settings) -> str | None:
    """The line every start prints when places outside the EEA are allowed, with the operator's reason."""
    outside = outside_eea(settings.allowed_places)
    if not outside:
        return None
    reason = settings.allowed_regions_reason.strip()
    return f"storage outside the EEA allowed: {', '.join(outside)}, because: {reason}"
