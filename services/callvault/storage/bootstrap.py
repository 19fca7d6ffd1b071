"""`callvault storage init`: the buckets, their versioning, object lock, encryption and backstop rules.

Idempotent: run it at every deploy. Each step that a store does not support is
reported and skipped, never fatal, so the same command serves AWS, MinIO and moto.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from botocore.client import BaseClient
from botocore.exceptions import ClientError

from callvault.rules.client_policy import terms_ever
from callvault.rules.data_classes import RECORDING, DataClass, data_classes
from callvault.rules.durations import CalendarDuration
from callvault.rules.retention import backstop_days
from callvault.settings import Settings
from callvault.storage import store_profile
from callvault.storage.errors import error_code
from callvault.storage.policies import PolicyBook, load_book


@dataclass
class BucketReport:
    bucket: str
    created: bool = False
    versioning: str = "off"
    object_lock: str = "off"
    encryption: str = "off"
    lifecycle: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # The store refused to change the rules it has (a permission, say), as opposed to having none:
    # its old rules go on expiring objects.
    lifecycle_refused: str | None = None


@dataclass(frozen=True, slots=True)
class BucketPlan:
    name: str
    object_lock: bool
    versioning: bool
    # (rule id, tag value or None for every object, days after creation, key prefix or "")
    expirations: tuple[Expiration, ...]


Expiration = tuple[str, str | None, int, str]


def _backstops(data_class: DataClass, settings: Settings, book: PolicyBook) -> tuple[Expiration, ...]:
    """The lifecycle backstop of one class: never before any term a policy gives it.

    S3 applies the earliest of the rules an object matches, so the class-wide rule
    must outlast the longest term of every tenant; a tenant whose terms are all
    shorter gets a rule of its own (its prefix), at its longest term plus the margin.
    """
    defaults = settings.policy_defaults
    by_tenant = {
        tenant: max(backstop_days(t) for t in terms_ever(data_class.name, history, defaults))
        for tenant, history in sorted(book.items())
    }
    widest = max([backstop_days(defaults.retention.duration_for(data_class.name)), *by_tenant.values()])
    name = data_class.name
    rules: list[Expiration] = [(f"backstop-{name}", name, widest, "")]
    rules += [(f"backstop-{name}-{t}", name, days, f"{t}/") for t, days in by_tenant.items() if days < widest]
    return tuple(rules)


def bucket_plans(settings: Settings, book: PolicyBook | None = None) -> list[BucketPlan]:
    """What each bucket needs. The archive buckets get object lock for legal holds.

    `book`: every tenant's client-policy history, which the backstop rules must respect.
    """
    rec_days = max(rule[2] for rule in _backstops(RECORDING, settings, book or {}))
    archives = [
        BucketPlan(c.bucket(settings), True, True, _backstops(c, settings, book or {}))
        for c in data_classes()
    ]
    return [
        # Staging holds raw uploads only until the worker decides; a stray one must
        # not outlive the recording retention either.
        BucketPlan(settings.staging_bucket, False, False, (("backstop-staging", None, rec_days, ""),)),
        *archives,
        BucketPlan(settings.audit_bucket, True, True, ()),
        # Access-request exports: the purger erases each on time; this catches strays.
        BucketPlan(
            settings.exports_bucket,
            False,
            False,
            (
                (
                    "backstop-export",
                    None,
                    backstop_days(CalendarDuration.parse(settings.export_retention)),
                    "",
                ),
            ),
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
    for rule_id, tag, days, prefix in plan.expirations:
        rule: dict[str, object] = {
            "ID": rule_id,
            "Status": "Enabled",
            "Filter": _filter(tag, prefix),
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


def _filter(tag: str | None, prefix: str) -> dict[str, object]:
    if tag is None:
        return {"Prefix": prefix}
    by_tag = {"Key": "retention-class", "Value": tag}
    return {"And": {"Prefix": prefix, "Tags": [by_tag]}} if prefix else {"Tag": by_tag}


# What a store without lifecycle rules answers: then no rule of its own expires anything.
_NO_LIFECYCLE = frozenset({"NotImplemented", "MethodNotAllowed", "XNotImplemented"})


def apply_lifecycle(s3: BaseClient, plan: BucketPlan, report: BucketReport) -> None:
    """Set the bucket's backstop rules; a store without lifecycle support is noted, not fatal."""
    try:
        rules = _lifecycle_rules(plan)
        s3.put_bucket_lifecycle_configuration(Bucket=plan.name, LifecycleConfiguration={"Rules": rules})
        report.lifecycle = [
            f"{r['ID']}: {r['Expiration']['Days']} days"
            for r in rules
            if "Expiration" in r  # type: ignore[index]
        ]
    except ClientError as exc:
        code = error_code(exc) or "?"
        if code in _NO_LIFECYCLE:
            report.notes.append(f"lifecycle rules not supported here ({code})")
        else:
            report.lifecycle_refused = code
            report.notes.append(f"the lifecycle rules could not be changed ({code}); the old ones stand")


def apply_backstops(s3: BaseClient, settings: Settings, book: PolicyBook) -> list[BucketReport]:
    """The archive buckets' backstop rules brought in step with the client policies (after a change)."""
    archive_buckets = {c.bucket(settings) for c in data_classes()}
    reports = []
    for plan in bucket_plans(settings, book):
        if plan.name in archive_buckets:
            report = BucketReport(plan.name)
            apply_lifecycle(s3, plan, report)
            reports.append(report)
    return reports


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
    apply_lifecycle(s3, plan, report)
    return report


def init_storage(
    s3: BaseClient, settings: Settings, staging_s3: BaseClient | None = None
) -> list[BucketReport]:
    """Set up every bucket; the staging bucket in its own store when it has one."""
    reports = []
    for plan in bucket_plans(settings, _existing_book(s3, settings)):
        if plan.name == settings.staging_bucket and staging_s3 is not None:
            reports.append(init_bucket(staging_s3, plan, settings.staging_s3_region or settings.s3_region))
        else:
            reports.append(init_bucket(s3, plan, settings.s3_region))
    store_profile.measure(s3, settings.metadata_bucket)  # what the worker must check on each copy
    return reports


def _existing_book(s3: BaseClient, settings: Settings) -> PolicyBook:
    """The client policies already stored (a re-run of `storage init` must not undercut them)."""
    try:
        return load_book(s3, settings.metadata_bucket)
    except ClientError as exc:
        if error_code(exc) in {"NoSuchBucket", "404", "NotFound"}:
            return {}
        raise
