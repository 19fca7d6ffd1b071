"""`callvault hold place|release|list`: legal holds, carried out by the worker.

Place and release write a command to `commands` and, unless told not to, wait
for the worker's answer: the `legal_hold.*` event that proves it, or the dead
letter that says why it could not be done.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import typer
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from callvault.cli.config import load_settings
from callvault.cli.errors import UserError, describe_validation_error
from callvault.cli.options import requester
from callvault.clock import SystemClock
from callvault.contract.commands import LegalHoldPlace, LegalHoldRelease
from callvault.contract.fields import format_rfc3339
from callvault.storage.client import make_s3_client
from callvault.storage.errors import describe
from callvault.storage.holds import load_holds
from callvault.stream.command_client import submit_command

app = typer.Typer(help="Legal holds: calls the purger must keep.", no_args_is_help=True)


def _submit(command: LegalHoldPlace | LegalHoldRelease, wait_s: float) -> None:
    settings = load_settings()
    console = Console()
    outcome = asyncio.run(submit_command(settings, command, wait_s))
    verb = "placed" if isinstance(command, LegalHoldPlace) else "released"
    if isinstance(outcome, dict):
        console.print(f"legal hold {verb} on call {command.call_id} (tenant {outcome.get('tenant')})")
    elif isinstance(outcome, str):
        raise UserError(f"the worker refused the command: {outcome}")
    elif wait_s > 0:
        raise UserError(
            f"the command was sent but no worker answered within {wait_s:.0f}s; "
            "is `callvault worker` running? It will be carried out when one starts"
        )
    else:
        console.print(f"command sent: legal hold to be {verb} on call {command.call_id}")


@app.command("place")
def place(
    call_id: str = typer.Argument(..., help="the call to keep"),
    reason: str = typer.Option(..., "--reason", help="why: the dispute or case it is kept for"),
    tenant: str = typer.Option(
        None, help="the call's tenant; needed if nothing is archived yet or the id is used by two tenants"
    ),
    wait: float = typer.Option(30.0, help="seconds to wait for the worker's answer; 0 = do not wait"),
) -> None:
    """Keep a call's recording and metadata past their retention, until released."""
    command = _command(LegalHoldPlace, call_id=call_id, reason=reason, tenant=tenant)
    _submit(command, wait)


@app.command("release")
def release(
    call_id: str = typer.Argument(..., help="the held call"),
    reason: str = typer.Option("hold lifted", "--reason", help="why the hold ends"),
    tenant: str = typer.Option(
        None, help="the call's tenant; needed if two tenants' calls of this id are held"
    ),
    wait: float = typer.Option(30.0, help="seconds to wait for the worker's answer; 0 = do not wait"),
) -> None:
    """End a legal hold; a call already past due is deleted in the next purge pass."""
    command = _command(LegalHoldRelease, call_id=call_id, reason=reason, tenant=tenant)
    _submit(command, wait)


def _command(kind: type[LegalHoldPlace] | type[LegalHoldRelease], **fields: Any) -> Any:
    try:
        return kind(
            event_id=uuid.uuid4(),
            requested_by=requester(),
            requested_at=SystemClock().now(),
            **fields,
        )
    except ValidationError as exc:
        raise UserError(describe_validation_error(exc)) from exc


@app.command("list")
def list_holds() -> None:
    """The calls under a legal hold, with who placed each and why."""
    settings = load_settings()
    try:
        holds = load_holds(make_s3_client(settings, attempts=2), settings.metadata_bucket)
    except (BotoCoreError, ClientError) as exc:
        raise UserError(describe(exc, settings.s3_endpoint)) from exc
    table = Table(title=f"legal holds ({len(holds)})")
    for column in ("call", "tenant", "since", "placed by", "reason"):
        table.add_column(column)
    for record in holds.values():
        table.add_row(
            record.call_id, record.tenant, format_rfc3339(record.placed_at), record.placed_by, record.reason
        )
    Console().print(table)
