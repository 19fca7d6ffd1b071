"""`callvault storage init`: buckets, versioning, object lock, encryption, backstop rules."""

from __future__ import annotations

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.table import Table

from callvault.cli.config import load_settings
from callvault.cli.errors import UserError
from callvault.cli.residency import refuse_outside_residency
from callvault.storage.bootstrap import BucketReport, init_storage
from callvault.storage.client import make_s3_client, make_staging_s3_client
from callvault.storage.errors import describe

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
