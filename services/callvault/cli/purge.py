"""`callvault purge`: one pass now, or a dry run at any instant.

A pass from here is the same as the worker leader's (same code, same journal,
same proof ids), for when an operator wants one at once or runs it from a
scheduler. `--as-of` moves the clock only for a dry run: nothing can be deleted
ahead of its date.
"""

from __future__ import annotations

import asyncio

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.table import Table

from callvault.cli.config import load_settings
from callvault.cli.errors import UserError
from callvault.cli.options import instant_option
from callvault.contract.fields import format_rfc3339
from callvault.storage.errors import describe
from callvault.stream.purger import standalone_pass


def _table(title: str, rows: list[tuple[str, ...]], columns: tuple[str, ...], limit: int) -> Table:
    shown = rows[:limit]
    more = f" (first {limit} of {len(rows)})" if len(rows) > limit else ""
    table = Table(title=f"{title}: {len(rows)}{more}")
    for column in columns:
        table.add_column(column)
    for row in shown:
        table.add_row(*row)
    return table


def purge(
    dry_run: bool = typer.Option(False, "--dry-run", help="show what a pass would delete; delete nothing"),
    as_of: str = typer.Option(None, "--as-of", help="RFC 3339 instant of the dry run (only with --dry-run)"),
    limit: int = typer.Option(50, min=1, help="rows shown per table"),
) -> None:
    """Run one purge pass now, or show what a pass at --as-of would delete."""
    if as_of is not None and not dry_run:
        raise UserError(
            "--as-of goes only with --dry-run: a pass that deletes does so as of now, never early"
        )
    when = instant_option("--as-of", as_of)
    settings = load_settings()
    console = Console()
    try:
        with console.status("purging…" if not dry_run else "looking for due objects…"):
            report = asyncio.run(standalone_pass(settings, dry_run=dry_run, as_of=when))
    except (BotoCoreError, ClientError) as exc:
        raise UserError(describe(exc, settings.s3_endpoint)) from exc
    verb = "would delete" if dry_run else "deleted"
    console.print(
        _table(
            verb,
            [
                (
                    o.retention_class.value,
                    o.tenant,
                    o.call_id,
                    f"s3://{o.bucket}/{o.key}",
                    format_rfc3339(o.due_at),
                )
                for o in report.deleted
            ],
            ("class", "tenant", "call", "object", "due at"),
            limit,
        )
    )
    console.print(
        _table(
            "kept by legal holds",
            [
                (o.call_id, f"s3://{o.bucket}/{o.key}", format_rfc3339(o.due_at), h.reason, h.placed_by)
                for o, h in report.held
            ],
            ("call", "object", "due at", "hold reason", "placed by"),
            limit,
        )
    )
    console.print(
        f"as of {format_rfc3339(report.as_of)}: {len(report.deleted)} {verb}, {len(report.held)} held, "
        f"{report.not_due} not yet due in the {report.days_listed} days looked at"
        + (f", {report.recovered} finished from an interrupted pass" if report.recovered else "")
        + (f", {len(report.skipped)} skipped (no callvault due date)" if report.skipped else "")
    )
    if report.failed:
        for key, why in list(report.failed.items())[:limit]:
            console.print(f"[red]not deleted[/red] {key}: {why}")
        raise typer.Exit(1)
