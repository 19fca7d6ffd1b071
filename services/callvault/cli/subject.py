"""`callvault subject ...`: data-subject requests, filed here and carried out by the worker.

`access|erase|restrict|unrestrict|object PHONE --tenant T` pseudonymize the number
first (it is never written, logged or printed), record the request with its
deadline, send the command and wait for the answer. With `--identity-pending`
the request waits, its month not running, until `identity-verified`. `requests`
lists the open ones with the days left; `extend` gives a complex request up to
3 months (and records when the subject was told); `export-link` hands out a
fresh link to an access request's export.
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
from callvault.contract.commands import CommandBase, SubjectExecute, SubjectExtend, SubjectVerifyIdentity
from callvault.rules import evidence
from callvault.rules.rectification import RECTIFIABLE, RectificationRefused, check_field
from callvault.rules.subject_requests import (
    RequestRecord,
    RequestStatus,
    days_left,
    is_overdue,
    open_requests,
)
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
AGENT_HELP = (
    "the subject is an agent, named by their id in place of a number (erasure removes the id from the "
    "calls' metadata; the recordings keep their term)"
)

# The options every request verb takes, declared once: typer reads each parameter's default for its
# option, so the verbs below share these.
PHONE = typer.Argument(None, help="the participant's number, E.164 (+32470123456)")
TENANT = typer.Option(..., "--tenant", help="the client tenant the calls were made for")
REASON = typer.Option(..., "--reason", help="the request as received: channel, reference")
VERIFIED_BY = typer.Option(
    None, "--verified-by", help="who verified the requester's identity (outside callvault)"
)
RECEIVED_AT = typer.Option(
    None, "--received-at", help="when the request reached you (RFC 3339); the deadline runs from it"
)
WAIT = typer.Option(60.0, help=WAIT_HELP)
IDENTITY_PENDING = typer.Option(
    False,
    "--identity-pending",
    help="the requester's identity is still to be checked: record the request, carry it out and "
    "start its month only at `identity-verified`",
)
AGENT = typer.Option(None, "--agent", help=AGENT_HELP)


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
    identity_pending: bool = False,
    export_format: str = "standard",
    deliver_to: str | None = None,
    rectify: dict[str, str | None] | None = None,
    agent: str | None = None,
) -> None:
    if (phone is None) == (agent is None):
        raise UserError("name the subject by a number or by --agent AGENT_ID, one of them")
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
            identity_pending=identity_pending,
            export_format=export_format,
            deliver_to=deliver_to,
            rectify=rectify,
            agent=agent,
        )
    except BadRequest as exc:
        raise UserError(str(exc)) from None
    try:
        record, answer = asyncio.run(
            file_request(settings, command, 0 if identity_pending else wait, rectify)
        )
    except (BotoCoreError, ClientError) as exc:
        raise UserError(describe(exc, settings.s3_endpoint)) from exc
    console = Console()
    if identity_pending:
        console.print(
            f"request {record.request_id}: {kind} for subject {_short(record.subject)} in tenant {tenant}; "
            f"received {record.received_at:%Y-%m-%d}; it waits for the identity check, due "
            f"{record.due_at:%Y-%m-%d}, and its month runs from `callvault subject identity-verified "
            f"{record.request_id} --tenant {tenant} --verified-by NAME`"
        )
        return
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
    if answer["type"] == "subject.rectified":
        what = "completed with the subject's statement" if answer.get("statement_added") else "corrected"
        told = answer.get("recipients") or []
        return (
            f"done (subject.rectified): {answer['field']} of call {answer['call_id']} {what} "
            f"(document version {answer.get('document_version')}); "
            + (
                f"earlier exports to tell (art. 19): {', '.join(told)}"
                if told
                else "no earlier export to tell"
            )
        )
    if answer["type"] == "subject.forwarded":
        return (
            f"forwarded to the client ({answer['contact']}): tenant {answer['tenant']}'s calls are processed "
            "on its instructions, so it is the controller, answers the subject and keeps the deadline; tell "
            f"the subject so. `callvault subject execute {answer['request_id']} --tenant {answer['tenant']} "
            "--instructed-by NAME` carries the request out when the client instructs it"
        )
    line = (
        f"done ({answer['type']}): {answer.get('calls', 0)} calls, "
        f"{answer.get('recordings', 0)} recordings, {answer.get('metadata', 0)} metadata documents"
    )
    held = answer.get("held_calls") or []
    if held:
        line += f"; kept under a legal hold: {', '.join(held)}"
    if answer.get("export_format") == "portable":
        line += "; portable (manifest.json lists every file with its SHA-256)"
    if answer.get("delivered_to"):
        line += f"; delivered to {answer['delivered_to']}"
    return line


def _request_command(kind: str) -> None:
    def command(
        phone: str = PHONE,
        tenant: str = TENANT,
        reason: str = REASON,
        verified_by: str = VERIFIED_BY,
        received_at: str = RECEIVED_AT,
        wait: float = WAIT,
        identity_pending: bool = IDENTITY_PENDING,
        agent: str = AGENT,
    ) -> None:
        _file(kind, phone, tenant, reason, verified_by, received_at, wait, identity_pending, agent=agent)

    command.__doc__ = f"{kind.capitalize()} request: {WHAT[kind]}."
    app.command(kind)(command)


for _kind in WHAT:
    if _kind != "access":
        _request_command(_kind)


@app.command("access")
def access(
    phone: str = PHONE,
    tenant: str = TENANT,
    reason: str = REASON,
    verified_by: str = VERIFIED_BY,
    received_at: str = RECEIVED_AT,
    wait: float = WAIT,
    identity_pending: bool = IDENTITY_PENDING,
    export_format: str = typer.Option(
        "standard",
        "--format",
        help="standard, or portable (GDPR art. 20): each call as JSON of a published schema, with a "
        "manifest of SHA-256s",
    ),
    deliver_to: str = typer.Option(
        None,
        "--deliver-to",
        help="send the portable export to another organisation's bucket (s3://BUCKET/PREFIX)",
    ),
    agent: str = AGENT,
) -> None:
    """Access request: an export of the subject's metadata and recordings, with a download link."""
    if export_format not in ("standard", "portable"):
        raise UserError(f"--format is standard or portable, not {export_format!r}")
    _file("access", phone, tenant, reason, verified_by, received_at, wait, identity_pending, export_format,
          deliver_to, agent=agent)  # fmt: skip


@app.command("rectify")
def rectify(
    phone: str = typer.Argument(..., help="the participant's number, E.164 (+32470123456)"),
    tenant: str = typer.Option(..., "--tenant", help="the client tenant the call was made for"),
    call: str = typer.Option(..., "--call", help="the call whose metadata is wrong or incomplete"),
    field: str = typer.Option(..., "--field", help=f"one of {', '.join(RECTIFIABLE)}"),
    value: str = typer.Option(
        None, "--value", help="the correct value (a participant's number, E.164, becomes its pseudonym)"
    ),
    statement: str = typer.Option(
        None, "--statement", help="the subject's supplementary statement, where they ask for completion"
    ),
    reason: str = REASON,
    verified_by: str = VERIFIED_BY,
    received_at: str = RECEIVED_AT,
    wait: float = WAIT,
    identity_pending: bool = IDENTITY_PENDING,
) -> None:
    """Rectification request: a call's metadata corrected (--value) or completed (--statement)."""
    try:
        check_field(field)
    except RectificationRefused as exc:
        raise UserError(str(exc)) from None
    if (value is None) == (statement is None):
        raise UserError("give either --value (a correction) or --statement (a completion)")
    asked = {"call_id": call, "field": field, "value": value, "statement": statement}
    _file("rectify", phone, tenant, reason, verified_by, received_at, wait, identity_pending, rectify=asked)


@app.command("extend")
def extend_request(
    request_id: str = typer.Argument(..., help="the request to extend"),
    tenant: str = typer.Option(..., "--tenant", help="the tenant the request was filed for"),
    reason: str = typer.Option(..., "--reason", help="why the request is complex or numerous"),
    notified_on: str = typer.Option(
        None,
        "--notified-on",
        help="when the subject was told of the extension and why (RFC 3339); now if absent",
    ),
    wait: float = typer.Option(30.0, help=WAIT_HELP),
) -> None:
    """Extend a request's deadline to 3 months after receipt (once, with a reason; the subject told)."""
    settings = load_settings()
    try:
        command = SubjectExtend(
            event_id=uuid.uuid4(),
            requested_by=requester(),
            requested_at=SystemClock().now(),
            reason=reason,
            request_id=request_id,  # type: ignore[arg-type]
            tenant=tenant,
            notified_on=instant_option("--notified-on", notified_on),
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


def _on_request(kind: type[CommandBase], fields: dict[str, Any]) -> Any:
    """A command about a request already filed, from these fields and who types it; a sentence if bad."""
    try:
        return kind(
            event_id=uuid.uuid4(), requested_by=requester(), requested_at=SystemClock().now(), **fields
        )
    except ValidationError as exc:
        raise UserError(describe_validation_error(exc)) from None


def _carried_out(command: Any, wait: float, refused: str, pending: str) -> None:
    """Send the command and print the request's answer: `refused` says what the worker refused,
    `pending` what was sent when no answer came in time."""
    answer = asyncio.run(submit_command(load_settings(), command, wait))
    if isinstance(answer, str):
        raise UserError(f"the worker refused {refused}: {answer}")
    if answer is None:
        if wait > 0:
            raise UserError(
                f"no worker answered within {wait:.0f}s; {pending} is sent and will be carried out"
            )
        Console().print("sent; `callvault subject requests` shows the request until it is carried out")
        return
    Console().print(_answer_line(answer))


@app.command("execute")
def execute(
    request_id: str = typer.Argument(..., help="a request forwarded to a processor tenant's client"),
    tenant: str = typer.Option(..., "--tenant", help="the tenant the request was filed for"),
    instructed_by: str = typer.Option(
        ..., "--instructed-by", help="who at the client instructed it, and how (a ticket, a letter)"
    ),
    reason: str = typer.Option("the client's instruction", "--reason", help="the instruction as received"),
    wait: float = typer.Option(60.0, help=WAIT_HELP),
) -> None:
    """Carry out a forwarded request on the client's instruction (the client is the controller)."""
    fields = {"reason": reason, "request_id": request_id, "tenant": tenant, "instructed_by": instructed_by}
    _carried_out(_on_request(SubjectExecute, fields), wait, "to carry it out", "the instruction")


@app.command("identity-verified")
def identity_verified(
    request_id: str = typer.Argument(..., help="a request filed with --identity-pending"),
    tenant: str = typer.Option(..., "--tenant", help="the tenant the request was filed for"),
    verified_by: str = typer.Option(..., "--verified-by", help="who checked the requester's identity"),
    verified_at: str = typer.Option(
        None, "--verified-at", help="when the identity was checked (RFC 3339); now if absent"
    ),
    reason: str = typer.Option("identity verified", "--reason", help="how it was checked"),
    wait: float = typer.Option(60.0, help=WAIT_HELP),
) -> None:
    """The requester's identity is checked: the request's month runs from now, and it is carried out."""
    fields = {
        "reason": reason, "request_id": request_id, "tenant": tenant, "verified_by": verified_by,
        "verified_at": instant_option("--verified-at", verified_at),
    }  # fmt: skip
    command = _on_request(SubjectVerifyIdentity, fields)
    Console().print(f"identity verified; request {request_id} is carried out")
    _carried_out(command, wait, "the identity check", "the check")


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
        if r.awaiting_identity:
            age = (now - r.received_at).total_seconds() / 86400
            status += f", identity check pending for {age:.1f} days"
        if r.forwarded_to and r.status is RequestStatus.FORWARDED:
            status += f" to {r.forwarded_to}: the client's deadline"
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
