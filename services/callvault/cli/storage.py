"""`callvault storage init`: buckets, versioning, object lock, encryption, backstop rules."""

from __future__ import annotations

import asyncio
from collections import Counter

import typer
from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from callvault.cli.config import load_settings
from callvault.cli.errors import UserError
from callvault.cli.residency import refuse_outside_residency
from callvault.clock import SystemClock
from callvault.contract.lifecycle import ObjectRef
from callvault.rules import evidence
from callvault.rules.client_policy import kms_key_at
from callvault.rules.data_classes import data_classes
from callvault.settings import Settings
from callvault.storage.bootstrap import BucketReport, init_storage
from callvault.storage.client import make_s3_client, make_staging_s3_client
from callvault.storage.errors import describe
from callvault.storage.inventory import all_days, list_versions
from callvault.storage.layout import ArchiveKey, day_prefix, parse_archive_key
from callvault.storage.policies import load_book
from callvault.storage.sealing import Keyring, Seal
from callvault.storage.sealing_in_place import SealRefused, drop_replaced, seal_key
from callvault.stream.bus import Emit, lifecycle_emitter

app = typer.Typer(help="S3 storage set-up.", no_args_is_help=True)


def render_reports(reports: list[BucketReport], console: Console) -> None:
    table = Table(title="callvault storage")
    for column in ("bucket", "created", "versioning", "object lock", "encryption", "backstop", "notes"):
        table.add_column(column)
    for r in reports:
        table.add_row(
            r.bucket,
            "yes" if r.created else "existed",
            r.versioning,
            r.object_lock,
            r.encryption,
            ", ".join(r.lifecycle) or "-",
            "; ".join(r.notes) or "",
        )
    console.print(table)


@app.command("init")
def init() -> None:
    """Create or update the buckets; safe to run again."""
    settings = load_settings()
    if not settings.storage_country and settings.s3_region not in settings.allowed_places:
        # Refused before a bucket is made there, not after.
        raise UserError(
            f"refusing to create buckets in {settings.s3_region} (CALLVAULT_S3_REGION): it is not among "
            f"the allowed regions ({', '.join(sorted(settings.allowed_places))}): see "
            "CALLVAULT_ALLOWED_REGIONS"
        )
    refuse_outside_residency(settings, wait_for_store=False)  # buckets that exist already
    try:
        staging = make_staging_s3_client(settings, attempts=2) if settings.staging_is_separate else None
        reports = init_storage(make_s3_client(settings, attempts=2), settings, staging)
    except (BotoCoreError, ClientError) as exc:
        raise UserError(describe(exc, settings.s3_endpoint)) from exc
    render_reports(reports, Console())
    refuse_outside_residency(settings, wait_for_store=False, announce=False)  # where the new ones went


@app.command("encrypt-existing")
def encrypt_existing(
    tenant: str = typer.Option(None, "--tenant", help="only this client's objects (default: every one)"),
) -> None:
    """Seal the recordings and metadata archived before sealing, in place, each under its client's key:
    a new version, proven by `object.sealed`, the unsealed one removed. Resumed by running it again."""
    settings = load_settings()
    if settings.encryption != "on":
        raise UserError(
            "CALLVAULT_ENCRYPTION is off: new objects would be stored unsealed again; turn it on first"
        )
    console = Console()
    try:
        counts = asyncio.run(_encrypt_existing(settings, tenant, console))
    except (BotoCoreError, ClientError) as exc:
        raise UserError(describe(exc, settings.s3_endpoint)) from exc
    console.print(
        f"{counts['sealed']} object(s) sealed in place, {counts['finished']} finished from an earlier run, "
        f"{counts['left']} left as they are, {counts['already']} sealed already"
    )


def _keys_to_seal(s3: BaseClient, bucket: str, tenant: str | None) -> list[tuple[str, ArchiveKey]]:
    """Every archived key of the bucket (of one tenant, if given) holding data. Blocking: off the loop."""
    return [
        (entry.key, parsed)
        for owner, day in all_days(s3, bucket, tenant)
        for entry in list_versions(s3, bucket, f"{day_prefix(owner, day)}/")
        if entry.data_version is not None and (parsed := parse_archive_key(entry.key)) is not None
    ]


async def _encrypt_existing(settings: Settings, tenant: str | None, console: Console) -> Counter[str]:
    s3 = make_s3_client(settings)
    keyring = Keyring.for_settings(settings)
    # boto3 off the loop, which carries the proofs' producer meanwhile.
    book = await asyncio.to_thread(load_book, s3, settings.metadata_bucket)
    counts: Counter[str] = Counter(sealed=0, finished=0, left=0, already=0)
    async with lifecycle_emitter(settings) as emit:
        with Progress(console=console, transient=True) as progress:
            for data_class in data_classes():
                if not data_class.sealed:
                    continue
                bucket = data_class.bucket(settings)
                keys = await asyncio.to_thread(_keys_to_seal, s3, bucket, tenant)
                task = progress.add_task(f"sealing {bucket}", total=len(keys))
                for key, parsed in keys:
                    policy_key = kms_key_at(book.get(parsed.tenant, []), SystemClock().now())
                    how = Seal(keyring, parsed.tenant, data_class.name, policy_key)
                    counts[await _seal_one(s3, emit, bucket, key, parsed, how, console)] += 1
                    progress.advance(task)
    return counts


async def _seal_one(
    s3: BaseClient, emit: Emit, bucket: str, key: str, parsed: ArchiveKey, how: Seal, console: Console
) -> str:
    """One key sealed in place and proven, its unsealed version removed; what became of it."""
    try:
        done = await asyncio.to_thread(seal_key, s3, bucket, key, how)
    except SealRefused as refused:
        console.print(f"  left: {refused}")
        return "left"
    if done is None:
        return "already"
    ref = ObjectRef(bucket=bucket, key=key, sha256=done.sha256, size_bytes=done.size_bytes,
                    version_id=done.version_id)  # fmt: skip
    proof = evidence.object_sealed(
        parsed.tenant, parsed.call_id, ref, list(done.replaced), done.stored_sha256, done.key_id,
        SystemClock().now(),
    )  # fmt: skip
    await emit([proof])  # proven before the unsealed version goes: a run cut short proves it again
    await asyncio.to_thread(drop_replaced, s3, done)
    return "finished" if done.resumed else "sealed"
