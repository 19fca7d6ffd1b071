"""`callvault purge`: one pass now, or a dry run at any instant.

A pass from here is the same as the worker leader's (same code, same journal,
same proof ids), for when an operator wants one at once or runs it from a
scheduler. `--as-of` moves the clock only for a dry run: nothing can be deleted
ahead of its date.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

import typer
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import TypeAdapter, ValidationError
from rich.console import Console
from rich.table import Table

from callvault.cli.config import load_settings
from callvault.cli.errors import UserError
from callvault.clock import SystemClock
from callvault.contract.fields import Timestamp, format_rfc3339
from callvault.contract.lifecycle import LifecycleBase
from callvault.settings import Settings
from callvault.storage.client import make_s3_client
from callvault.storage.errors import describe
from callvault.stream.bus import make_producer
from callvault.stream.offloop import S3Runner
from callvault.stream.purger import PassReport, Purger

_instant: TypeAdapter[datetime] = TypeAdapter(Timestamp)


def _parse_as_of(text: str) -> datetime:
    try:
        return _instant.validate_python(text)
    except ValidationError as exc:
        msg = str(exc.errors(include_url=False)[0].get("msg", "")).removeprefix("Value error, ")
        raise UserError(f"--as-of: {msg}") from exc


async def _run(settings: Settings, dry_run: bool, as_of: datetime | None) -> PassReport:
    # No retry-forever here: a person is waiting, so a store that does not answer is an error.
    s3 = S3Runner(make_s3_client(settings, attempts=2), max_workers=settings.s3_max_concurrency,
                  endpoint=settings.s3_endpoint, give_up_after=3)  # fmt: skip
    producer = None
    if not dry_run:
        producer = make_producer(settings.kafka_bootstrap)
        await producer.start()

    async def emit(events: Sequence[LifecycleBase]) -> None:
        assert producer is not None
        sent = [
            await producer.send(settings.lifecycle_topic, key=e.call_id.encode(), value=e.to_json_bytes())
            for e in events
        ]
        await asyncio.gather(*sent)

    try:
        return await Purger(settings, s3, emit, SystemClock()).run_pass(dry_run=dry_run, as_of=as_of)
    finally:
        s3.close()
        if producer is not None:
            await producer.stop()


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
    when = _parse_as_of(as_of) if as_of is not None else None
    settings = load_settings()
    console = Console()
    try:
        with console.status("purging…" if not dry_run else "looking for due objects…"):
            report = asyncio.run(_run(settings, dry_run, when))
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
