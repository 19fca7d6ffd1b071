"""`callvault storage init`: the buckets, their versioning, object lock, encryption and backstop rules.

Idempotent: run it at every deploy. Each step that a store does not support is
reported and skipped, never fatal, so the same command serves AWS, MinIO and moto.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from botocore.client import BaseClient
from botocore.exceptions import ClientError

from callvault.rules.durations import CalendarDuration
from callvault.rules.retention import RetentionClass, backstop_days
from callvault.settings import Settings
from callvault.storage.errors import error_code


@dataclass
class BucketReport:
    bucket: str
    created: bool = False
    versioning: str = "off"
    object_lock: str = "off"
    encryption: str = "off"
    lifecycle: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BucketPlan:
    name: str
    object_lock: bool
    versioning: bool
    # (rule id, tag value or None for every object, days after creation)
    expirations: tuple[tuple[str, str | None, int], ...]


def bucket_plans(settings: Settings) -> list[BucketPlan]:
    """What each bucket needs. The archive buckets get object lock for legal holds."""
    rec_days = backstop_days(settings.retention.recording)
    meta_days = backstop_days(settings.retention.metadata)
    return [
        # Staging holds raw uploads only until the worker decides; a stray one must
        # not outlive the recording retention either.
        BucketPlan(settings.staging_bucket, False, False, (("backstop-staging", None, rec_days),)),
        BucketPlan(
            settings.recordings_bucket,
            True,
            True,
            (("backstop-recording", RetentionClass.RECORDING.value, rec_days),),
        ),
        BucketPlan(
            settings.metadata_bucket,
            True,
            True,
            (("backstop-metadata", RetentionClass.METADATA.value, meta_days),),
        ),
        BucketPlan(settings.audit_bucket, True, True, ()),
        # Access-request exports: the purger erases each on time; this catches strays.
        BucketPlan(
            settings.exports_bucket,
            False,
            False,
            (("backstop-export", None, backstop_days(CalendarDuration.parse(settings.export_retention))),),
        ),
    ]


def _exists(s3: BaseClient, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
        return True
    except ClientError as exc:
        if error_code(exc) in {"404", "NoSuchBucket", "NotFound"}:
            return False
        raise


def _create(s3: BaseClient, plan: BucketPlan, region: str, report: BucketReport) -> None:
    kwargs: dict[str, object] = {"Bucket": plan.name}
    if plan.object_lock:
        kwargs["ObjectLockEnabledForBucket"] = True
    if region and region != "us-east-1":
        try:
            s3.create_bucket(**kwargs, CreateBucketConfiguration={"LocationConstraint": region})
            return
        except ClientError as exc:
            # A store on premises (Ceph RGW, whose zone group is not an AWS region) refuses
            # the constraint; its buckets live where the store is, so create it there.
            if error_code(exc) != "InvalidLocationConstraint" or _on_aws(s3):
                raise
            report.notes.append(
                f"the store does not know the region {region}; the bucket is in the store's own placement"
            )
    s3.create_bucket(**kwargs)


def _on_aws(s3: BaseClient) -> bool:
    """Whether this client talks to AWS itself, where a refused region is a real mistake."""
    return str(s3.meta.endpoint_url).endswith(".amazonaws.com")


def _lifecycle_rules(plan: BucketPlan) -> list[dict[str, object]]:
    rules: list[dict[str, object]] = []
    for rule_id, tag, days in plan.expirations:
        rule: dict[str, object] = {
            "ID": rule_id,
            "Status": "Enabled",
            "Filter": {"Tag": {"Key": "retention-class", "Value": tag}} if tag else {"Prefix": ""},
            "Expiration": {"Days": days},
        }
        if plan.versioning:
            # Expiration only lays a delete marker on a versioned bucket; this removes the data.
            rule["NoncurrentVersionExpiration"] = {"NoncurrentDays": 1}
        rules.append(rule)
    rules.append(
        {
            "ID": "abort-incomplete-uploads",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        }
    )
    return rules


def init_bucket(s3: BaseClient, plan: BucketPlan, region: str) -> BucketReport:
    report = BucketReport(plan.name)
    if not _exists(s3, plan.name):
        _create(s3, plan, region, report)
        report.created = True
    if plan.versioning:
        s3.put_bucket_versioning(Bucket=plan.name, VersioningConfiguration={"Status": "Enabled"})
    report.versioning = s3.get_bucket_versioning(Bucket=plan.name).get("Status", "off").lower()
    if plan.object_lock:
        try:
            lock = s3.get_object_lock_configuration(Bucket=plan.name)
            status = lock.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
            report.object_lock = "enabled" if status == "Enabled" else "off"
        except ClientError as exc:
            report.object_lock = "off"
            report.notes.append(f"object lock unavailable ({error_code(exc)})")
        if report.object_lock == "off" and not report.created:
            report.notes.append(
                "the bucket exists without object lock, which can only be set at creation; "
                "legal holds there rely on the purger alone"
            )
    try:
        s3.put_bucket_encryption(
            Bucket=plan.name,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
        report.encryption = "AES256"
    except ClientError as exc:
        report.notes.append(f"default encryption not supported here ({error_code(exc)})")
    try:
        rules = _lifecycle_rules(plan)
        s3.put_bucket_lifecycle_configuration(Bucket=plan.name, LifecycleConfiguration={"Rules": rules})
        report.lifecycle = [
            f"{r['ID']}: {r['Expiration']['Days']} days"
            for r in rules
            if "Expiration" in r  # type: ignore[index]
        ]
    except ClientError as exc:
        report.notes.append(f"lifecycle rules not supported here ({error_code(exc)})")
    return report


def init_storage(
    s3: BaseClient, settings: Settings, staging_s3: BaseClient | None = None
) -> list[BucketReport]:
    """Set up every bucket; the staging bucket in its own store when it has one."""
    reports = []
    for plan in bucket_plans(settings):
        if plan.name == settings.staging_bucket and staging_s3 is not None:
            reports.append(init_bucket(staging_s3, plan, settings.staging_s3_region or settings.s3_region))
        else:
            reports.append(init_bucket(s3, plan, settings.s3_region))
    return reports
