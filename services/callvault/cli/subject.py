"""`callvault subject ...`: data-subject requests, filed here and carried out by the worker.

`access|erase|restrict|unrestrict|object PHONE --tenant T` pseudonymize the number
first (it is never written, logged or printed), record the request with its
deadline, send the command and wait for the answer. `requests` lists the open
ones with the days left; `extend` gives a complex request up to 3 months;
`export-link` hands out a fresh link to an access request's export.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import typer
from aiokafka.errors import KafkaError
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from callvault.cli.config import load_settings
from callvault.cli.errors import UserError, describe_validation_error
from callvault.cli.options import instant_option, requester
from callvault.clock import SystemClock
from callvault.contract.base import ContractModel
from callvault.contract.commands import SubjectExtend
from callvault.rules import evidence
from callvault.rules.subject_requests import RequestRecord, days_left, is_overdue, open_requests
from callvault.settings import Settings
from callvault.storage.client import make_s3_client
from callvault.storage.errors import describe
from callvault.storage.subject_requests import get_request, list_requests
from callvault.stream.command_client import submit_command
from callvault.stream.subject_client import (
    BadRequest,
    export_link,
    export_link_expiry,
    file_request,
    subject_command,
)

app = typer.Typer(
    help="Data-subject requests: access, erasure, restriction, objection.", no_args_is_help=True
)

WHAT = {
    "access": "an export of the subject's metadata and recordings, with a download link",
    "erase": "every recording and metadata of the subject's calls deleted (legal holds reported, kept)",
    "restrict": "QA access to the subject's calls blocked until unrestricted",
    "unrestrict": "QA access to the subject's calls restored",
    "object": "the subject's future recordings refused and the existing ones erased",
}
WAIT_HELP = "seconds to wait for the worker's answer; 0 = do not wait"


def _short(subject: str) -> str:
    return f"{subject[:12]}…"


def _file(
    kind: str,
    phone: str,
    tenant: str,
    reason: str,
    verified_by: str | None,
    received_at: str | None,
    wait: float,
) -> None:
    settings = load_settings()
    now = SystemClock().now()
    try:
        command = subject_command(
            settings,
            kind,
            phone,
            tenant,
            command_id=uuid.uuid4(),
            requested_by=requester(),
            reason=reason,
            verified_by=verified_by,
            received_at=instant_option("--received-at", received_at),
            now=now,
        )
    except BadRequest as exc:
        raise UserError(str(exc)) from None
    try:
        record, answer = asyncio.run(file_request(settings, command, wait))
    except (BotoCoreError, ClientError) as exc:
        raise UserError(describe(exc, settings.s3_endpoint)) from exc
    console = Console()
    console.print(
        f"request {record.request_id}: {kind} for subject {_short(record.subject)} in tenant {tenant}; "
        f"received {record.received_at:%Y-%m-%d}, due {record.due_at:%Y-%m-%d}"
    )
    if isinstance(answer, str):
        raise UserError(f"the worker could not carry out the request: {answer}")
    if answer is None:
        if wait > 0:
            raise UserError(
                f"the request is recorded and sent but no worker answered within {wait:.0f}s; "
                "is `callvault worker` running? `callvault subject requests` shows it until it is done"
            )
        console.print("sent; `callvault subject requests` shows it until the worker has carried it out")
        return
    console.print(_answer_line(answer))
    if answer.get("export_uri"):
        expires = datetime.fromisoformat(answer["export_expires_at"])
        link = export_link(make_s3_client(settings, attempts=2), settings, answer["export_uri"], expires, now)
        console.print(f"export (until {answer['export_expires_at']}): {link}", soft_wrap=True)


def _answer_line(answer: dict[str, Any]) -> str:
    line = (
        f"done ({answer['type']}): {answer.get('calls', 0)} calls, "
        f"{answer.get('recordings', 0)} recordings, {answer.get('metadata', 0)} metadata documents"
    )
    held = answer.get("held_calls") or []
    if held:
        line += f"; kept under a legal hold: {', '.join(held)}"
    return line


def _request_command(kind: str) -> None:
    def command(
        phone: str = typer.Argument(..., help="the participant's number, E.164 (+32470123456)"),
        tenant: str = typer.Option(..., "--tenant", help="the client tenant the calls were made for"),
        reason: str = typer.Option(..., "--reason", help="the request as received: channel, reference"),
        verified_by: str = typer.Option(
            None, "--verified-by", help="who verified the requester's identity (outside callvault)"
        ),
        received_at: str = typer.Option(
            None, "--received-at", help="when the request reached you (RFC 3339); the deadline runs from it"
        ),
        wait: float = typer.Option(60.0, help=WAIT_HELP),
    ) -> None:
        _file(kind, phone, tenant, reason, verified_by, received_at, wait)

    command.__doc__ = f"{kind.capitalize()} request: {WHAT[kind]}."
    app.command(kind)(command)


for _kind in WHAT:
    _request_command(_kind)


@app.command("extend")
def extend_request(
    request_id: str = typer.Argument(..., help="the request to extend"),
    tenant: str = typer.Option(..., "--tenant", help="the tenant the request was filed for"),
    reason: str = typer.Option(..., "--reason", help="why the request is complex or numerous"),
    wait: float = typer.Option(30.0, help=WAIT_HELP),
) -> None:
    """Extend a request's deadline to 3 months after receipt (once, with a reason)."""
    settings = load_settings()
    try:
        command = SubjectExtend(
            event_id=uuid.uuid4(),
            requested_by=requester(),
            requested_at=SystemClock().now(),
            reason=reason,
            request_id=request_id,  # type: ignore[arg-type]
            tenant=tenant,
        )
    except ValidationError as exc:
        raise UserError(describe_validation_error(exc)) from None
    answer = asyncio.run(submit_command(settings, command, wait))
    if isinstance(answer, str):
        raise UserError(f"the worker refused the extension: {answer}")
    if answer is None:
        raise UserError(
            f"no worker answered within {wait:.0f}s; the extension is sent and will be carried out"
        )
    Console().print(f"request {request_id} now due {answer['due_at']}")


def _load(settings: Settings, tenant: str | None) -> list[RequestRecord]:
    try:
        return list_requests(make_s3_client(settings, attempts=2), settings.metadata_bucket, tenant)
    except (BotoCoreError, ClientError) as exc:
        raise UserError(describe(exc, settings.s3_endpoint)) from exc


@app.command("requests")
def requests(
    tenant: str = typer.Option(None, "--tenant", help="only this tenant's requests"),
    show_all: bool = typer.Option(False, "--all", help="fulfilled requests too"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per line"),
) -> None:
    """Open requests with their deadlines, the nearest first; overdue ones say by how much."""
    settings = load_settings()
    now = SystemClock().now()
    records = _load(settings, tenant)
    shown = sorted(records, key=lambda r: r.due_at) if show_all else open_requests(records)
    if as_json:
        for r in shown:
            row = r.model_dump(mode="json", exclude={"outcome"})
            row |= {"days_left": round(days_left(r, now), 2), "overdue": is_overdue(r, now)}
            typer.echo(json.dumps(row))
        return
    overdue = sum(is_overdue(r, now) for r in shown)
    title = f"subject requests: {len(shown)} {'in all' if show_all else 'open'}, {overdue} overdue"
    table = Table(title=title)
    table.add_column("request", no_wrap=True)  # an id to copy: never wrapped
    for column in ("tenant", "kind", "subject", "received (UTC)", "due (UTC)", "days left"):
        table.add_column(column, no_wrap=True)
    table.add_column("status", overflow="fold", max_width=60)
    table.add_column("verified by")
    for r in shown:
        left = days_left(r, now)
        when = (
            f"[red]overdue by {-left:.1f}[/red]"
            if is_overdue(r, now)
            else (f"{left:.1f}" if r.is_open else "-")
        )
        status = r.status.value + (" (extended)" if r.extended_reason else "")
        table.add_row(
            r.request_id,
            r.tenant,
            r.kind,
            _short(r.subject),
            f"{r.received_at.astimezone(UTC):%Y-%m-%d %H:%M}",
            f"{r.due_at.astimezone(UTC):%Y-%m-%d %H:%M}",
            when,
            status + (f": {r.refusal}" if r.refusal else ""),
            r.verified_by or "-",
        )
    Console().print(table)


@app.command("export-link")
def link(
    request_id: str = typer.Argument(..., help="a fulfilled access request"),
    tenant: str = typer.Option(..., "--tenant", help="the tenant the request was filed for"),
    purpose: str = typer.Option(
        "handing the export to the data subject", "--purpose", help="why the link is handed out; logged"
    ),
    by: str = typer.Option(None, "--by", help="who hands it out (default: you at this terminal); logged"),
) -> None:
    """A fresh download link to an access request's export, while the export lasts (an access event)."""
    settings = load_settings()
    s3 = make_s3_client(settings, attempts=2)
    try:
        record = get_request(s3, settings.metadata_bucket, tenant, request_id)
    except (BotoCoreError, ClientError) as exc:
        raise UserError(describe(exc, settings.s3_endpoint)) from exc
    outcome = record.outcome if record is not None else None
    if record is None or record.kind != "access" or not outcome or not outcome.get("export_uri"):
        raise UserError(f"request {request_id} of tenant {tenant!r} is not a fulfilled access request")
    now = SystemClock().now()
    expires = datetime.fromisoformat(outcome["export_expires_at"])
    try:
        url = export_link(s3, settings, outcome["export_uri"], expires, now)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    if url is None:
        raise UserError(
            f"the export of request {request_id} expired at {outcome['export_expires_at']} and is erased"
        )
    event = evidence.export_accessed(
        record,
        accessed_by=by or requester(),
        role=None,
        purpose=purpose,
        link_expires_at=export_link_expiry(settings, expires, now),
        handout_id=str(uuid.uuid4()),
        api_request_id=None,
        now=now,
    )
    asyncio.run(_log_handout(settings, event))  # logged before the link is shown
    typer.echo(url)


async def _log_handout(settings: Settings, event: ContractModel) -> None:
    from callvault.api.access_events import AccessLog, AccessNotLogged

    access = AccessLog(settings)
    try:
        await access.start()
        await access.record(event)
    except (AccessNotLogged, KafkaError, OSError) as exc:
        raise UserError(
            f"the hand-out could not be written to the audit log, so no link is shown: {exc}"
        ) from exc
    finally:
        await access.stop()
