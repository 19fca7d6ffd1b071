"""`callvault policy set|cancel|show|history|list`: each client's own terms, versioned.

`set` stores a new version of the tenant's policy (or of one of its queue
rules, with `--queue`) and proves it with `policy.changed` on `lifecycle`;
`cancel` withdraws a version still pending (`policy.cancelled`); the others
read what is stored. A shorter term, `--no-recording` and `deny-site` apply at
once even while a version is pending, and are carried into it. Durations are ISO 8601 (`P7D`, `P3M`), within
`CALLVAULT_POLICY_SHORTEST_TERM` .. `CALLVAULT_POLICY_LONGEST_TERM`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.table import Table

from callvault.cli.config import load_settings
from callvault.cli.errors import UserError
from callvault.cli.options import instant_option, requester
from callvault.clock import SystemClock
from callvault.contract.fields import TENANT_PATTERN, format_rfc3339
from callvault.rules.client_policy import (
    PolicyRefused,
    PolicyVersion,
    Scope,
    pending_versions,
    terms_at,
    version_at,
)
from callvault.rules.data_classes import data_classes
from callvault.settings import Settings
from callvault.storage import policies
from callvault.storage.client import make_s3_client
from callvault.storage.errors import describe
from callvault.stream.bus import lifecycle_emitter
from callvault.stream.policy_changes import (
    CALLVAULT_KEY,
    cancel_policy,
    change_kms_key,
    change_policy,
    change_role,
    change_site,
)

app = typer.Typer(
    help="Client policies: each tenant's retention terms, grace and recording.", no_args_is_help=True
)


async def _with_producer(
    settings: Settings, change: Callable[..., Awaitable[PolicyVersion]], *args: Any, **how: Any
) -> PolicyVersion:
    async with lifecycle_emitter(settings) as emit:
        return await change(make_s3_client(settings, attempts=2), settings, emit, *args, **how)


def _run(
    settings: Settings, tenant: str, change: Callable[..., Awaitable[PolicyVersion]], *args: Any, **how: Any
) -> PolicyVersion:
    if not re.fullmatch(TENANT_PATTERN, tenant):
        raise UserError(f"{tenant!r} is not a tenant name: lowercase letters, digits and '-', at most 64")
    try:
        return asyncio.run(_with_producer(settings, change, tenant, *args, **how))
    except PolicyRefused as exc:
        raise UserError(f"the policy of {tenant!r} was not changed: {exc}") from exc
    except (BotoCoreError, ClientError) as exc:
        raise UserError(describe(exc, settings.s3_endpoint)) from exc


@app.command("set")
def set_policy(
    tenant: str = typer.Argument(..., help="the client tenant"),
    recording: str = typer.Option(
        None, "--recording", help="how long recordings are kept (ISO 8601, e.g. P7D)"
    ),
    metadata: str = typer.Option(None, "--metadata", help="how long call metadata is kept (e.g. P3M)"),
    queue: str = typer.Option(None, "--queue", help="make it a rule for this queue of the tenant"),
    grace: str = typer.Option(None, "--grace", help="how long to wait for a disclosure (e.g. PT2M)"),
    no_recording: bool = typer.Option(False, "--no-recording", help="recording is not allowed at all"),
    allow_recording: bool = typer.Option(False, "--allow-recording", help="recording is allowed again"),
    reason: str = typer.Option(..., "--reason", help="why: the contract clause or instruction"),
    effective: str = typer.Option(
        None, "--effective", help="RFC 3339 instant it takes effect (default: now)"
    ),
    role: str = typer.Option(
        None,
        "--role",
        help="controller (the company's own QA data, the default) or processor (the client's, processed on "
        "its instructions: its subjects' requests are forwarded to --contact)",
    ),
    contact: str = typer.Option(None, "--contact", help="who at the client takes its subjects' requests"),
    kms_key: str = typer.Option(
        None,
        "--kms-key",
        help="seal the client's new objects under its own KMS key (bring your own key): the key's ARN, in "
        "a region CALLVAULT_ALLOWED_REGIONS allows; `callvault` to go back to callvault's key for it",
    ),
    payments: str = typer.Option(
        None,
        "--payments",
        help="allowed_in_pause (the default: each payment window must lie inside a recording pause) or "
        "forbidden (a recording spanning any payment is rejected)",
    ),
) -> None:
    """Store a new version of a tenant's policy (or a queue rule) and prove it on `lifecycle`."""
    if no_recording and allow_recording:
        raise UserError("--no-recording and --allow-recording say opposite things; give one")
    others = (
        recording or metadata or queue or grace or no_recording or allow_recording or effective or payments
    )
    if kms_key is not None:
        _set_kms_key(tenant, kms_key, reason, others or role or contact)
        return
    if role is not None or contact is not None:
        _set_role(tenant, role, contact, reason, others)
        return
    if payments is not None and payments not in ("allowed_in_pause", "forbidden"):
        raise UserError(f"--payments is allowed_in_pause or forbidden, not {payments!r}")
    terms = {name: text for name, text in (("recording", recording), ("metadata", metadata)) if text}
    allowed = False if no_recording else (True if allow_recording else None)
    change = Scope(terms=terms, grace=grace, recording_allowed=allowed, payments=payments)
    settings = load_settings()
    version = _run(
        settings, tenant, change_policy, change, queue=queue, changed_by=requester(), reason=reason,
        now=SystemClock().now(), effective_at=instant_option("--effective", effective),
    )  # fmt: skip
    console = Console()
    console.print(
        f"policy of {tenant} is now version {version.version}, in force from "
        f"{format_rfc3339(version.effective_at)}: {_described(version.change)}"
    )


def _set_kms_key(tenant: str, kms_key: str, reason: str, mixed: object) -> None:
    if mixed:
        raise UserError("--kms-key changes the key the client's objects are sealed under; give it alone")
    settings = load_settings()
    version = _run(
        settings, tenant, change_kms_key, None if kms_key == CALLVAULT_KEY else kms_key,
        changed_by=requester(), reason=reason, now=SystemClock().now(),
    )  # fmt: skip
    Console().print(
        f"policy of {tenant} is now version {version.version}: new objects sealed under "
        + (f"the client's own key {version.kms_key}" if version.kms_key else "callvault's key for it")
    )


def _set_role(tenant: str, role: str | None, contact: str | None, reason: str, mixed: object) -> None:
    if mixed:
        raise UserError(
            "--role and --contact change whose data the calls are; give them in a change of their own"
        )
    if role is not None and role not in ("controller", "processor"):
        raise UserError(f"--role is controller or processor, not {role!r}")
    settings = load_settings()
    version = _run(
        settings, tenant, change_role, role, contact, changed_by=requester(), reason=reason,
        now=SystemClock().now(),
    )  # fmt: skip
    Console().print(
        f"policy of {tenant} is now version {version.version}: {version.role}"
        + (f", subjects' requests forwarded to {version.contact}" if version.role == "processor" else "")
    )


@app.command("allow-site")
def allow_site(
    tenant: str = typer.Argument(..., help="the client tenant"),
    site: str = typer.Argument(..., help="a declared processing site outside the EEA (CALLVAULT_SITES)"),
    reason: str = typer.Option(
        ..., "--reason", help="the client's request: who asked, when, under which clauses"
    ),
) -> None:
    """Let people at a site outside the EEA read this client's data (a new policy version, in force now)."""
    settings = load_settings()
    version = _run(
        settings, tenant, change_site, site, allow=True, changed_by=requester(), reason=reason,
        now=SystemClock().now(),
    )  # fmt: skip
    Console().print(f"{tenant} allows the site {site} from version {version.version} of its policy")


@app.command("deny-site")
def deny_site(
    tenant: str = typer.Argument(..., help="the client tenant"),
    site: str = typer.Argument(..., help="a site the client allowed"),
    reason: str = typer.Option("the client no longer allows it", "--reason", help="why it ends"),
) -> None:
    """Stop people at a site outside the EEA reading this client's data (a new version, in force now)."""
    settings = load_settings()
    version = _run(
        settings, tenant, change_site, site, allow=False, changed_by=requester(), reason=reason,
        now=SystemClock().now(),
    )  # fmt: skip
    Console().print(
        f"{tenant} no longer allows the site {site}, from version {version.version} of its policy"
    )


@app.command("cancel")
def cancel(
    tenant: str = typer.Argument(..., help="the client tenant"),
    version: int = typer.Argument(..., help="the pending version to cancel (policy show lists them)"),
    reason: str = typer.Option(..., "--reason", help="why: the auditor reads it"),
) -> None:
    """Cancel a version that has not taken effect yet; what stood before it stays in force."""
    settings = load_settings()
    replaced = _run(
        settings, tenant, cancel_policy, version, changed_by=requester(), reason=reason,
        now=SystemClock().now(),
    )  # fmt: skip
    Console().print(
        f"version {version} of {tenant}'s policy is cancelled: version {replaced.version} keeps what "
        f"stood before it from {format_rfc3339(replaced.effective_at)}"
    )


def _described(values: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in values.items()) or "nothing set"


def _history(settings: Settings, tenant: str) -> list[PolicyVersion]:
    try:
        return policies.history(make_s3_client(settings, attempts=2), settings.metadata_bucket, tenant)
    except (BotoCoreError, ClientError) as exc:
        raise UserError(describe(exc, settings.s3_endpoint)) from exc


@app.command("show")
def show(tenant: str = typer.Argument(..., help="the client tenant")) -> None:
    """What applies to the tenant now, scope by scope (the defaults where its policy is silent)."""
    settings = load_settings()
    history = _history(settings, tenant)
    now = SystemClock().now()
    current = version_at(history, now)
    console = Console()
    title = f"{tenant}: version {current.version}" if current else f"{tenant}: no policy, the defaults apply"
    table = Table(title=title)
    for column in ("scope", *(c.name for c in data_classes()), "grace", "recording", "payments"):
        table.add_column(column)
    scopes: list[str | None] = [None, *sorted(current.queues)] if current else [None]
    for queue in scopes:
        terms = terms_at(history, queue, now, settings.policy_defaults)
        table.add_row(
            "tenant" if queue is None else f"queue {queue}",
            *(str(terms.retention.duration_for(c.name)) for c in data_classes()),
            f"{terms.grace.total_seconds():.0f} s",
            "allowed" if terms.recording_allowed else "not allowed",
            "forbidden" if terms.payments_forbidden else "in a pause",
        )
    console.print(table)
    sites = ", ".join(current.allowed_sites) if current and current.allowed_sites else "none"
    console.print(f"processing sites outside the EEA allowed: {sites}")
    for version in pending_versions(history, now):
        console.print(f"version {version.version} takes effect at {format_rfc3339(version.effective_at)}")
    if current is not None and current.role == "processor":
        console.print(f"processor: the client is the controller; requests are forwarded to {current.contact}")
    if current is not None and current.kms_key:
        console.print(f"new objects sealed under the client's own key {current.kms_key}")


@app.command("history")
def history(tenant: str = typer.Argument(..., help="the client tenant")) -> None:
    """Every version of the tenant's policy: what changed, who, when, why, from when."""
    settings = load_settings()
    versions = _history(settings, tenant)
    table = Table(title=f"{tenant}: {len(versions)} versions")
    for column in ("version", "effective", "changed", "by", "what changed", "reason"):
        table.add_column(column)
    for v in versions:
        table.add_row(
            str(v.version), format_rfc3339(v.effective_at), format_rfc3339(v.changed_at), v.changed_by,
            _described(v.change), v.reason,
        )  # fmt: skip
    Console().print(table)


@app.command("list")
def list_policies() -> None:
    """The tenants with a policy, and the version in force for each."""
    settings = load_settings()
    try:
        book = policies.load_book(make_s3_client(settings, attempts=2), settings.metadata_bucket)
    except (BotoCoreError, ClientError) as exc:
        raise UserError(describe(exc, settings.s3_endpoint)) from exc
    now = SystemClock().now()
    table = Table(title=f"client policies ({len(book)} tenants; others: the defaults)")
    for column in ("tenant", "in force", "versions", "queues"):
        table.add_column(column)
    for tenant, versions in sorted(book.items()):
        current = version_at(versions, now)
        table.add_row(
            tenant,
            str(current.version) if current else "none yet",
            str(len(versions)),
            ", ".join(sorted(current.queues)) if current else "",
        )
    Console().print(table)
