"""`callvault audit replay|verify-store|verify|public-key`: the audit log read back and checked."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.progress import Progress

from callvault.audit.partial import (
    binding_problems,
    coverage_problems,
    merge_partials,
    partial_document,
    read_partials,
    store_problems,
    write_partial,
)
from callvault.audit.partitioned import EventFilter, replay_partitions
from callvault.audit.period import verify_period
from callvault.audit.report import report_document, write_report
from callvault.audit.sources import AuditLog, log_events
from callvault.audit.store_facts import LogFacts
from callvault.audit.store_walk import compare_by_day, policy_findings
from callvault.cli.config import load_settings
from callvault.cli.errors import UserError
from callvault.cli.options import instant_option
from callvault.clock import SystemClock
from callvault.contract.fields import format_rfc3339
from callvault.rules.audit_checkpoint import Freshness, fingerprint, private_key, public_hex
from callvault.rules.audit_replay import (
    ReplayResult,
)
from callvault.rules.durations import CalendarDuration
from callvault.rules.store_check import FoundKey
from callvault.settings import Settings
from callvault.storage.client import make_s3_client
from callvault.storage.errors import describe
from callvault.storage.holds import held_calls
from callvault.storage.sealing import Keyring

T = TypeVar("T")
app = typer.Typer(help="For auditors: the audit log replayed and checked.", no_args_is_help=True)


def _trusted_key(settings: Settings, explicit: str | None = None) -> str:
    """The public key to check checkpoints against: given, or pinned; never the signer's own choice."""
    if explicit:
        key = explicit.strip().lower()
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise UserError("--public-key is 32 bytes of Ed25519 as 64 hex characters")
        return key
    try:
        return settings.trusted_audit_key
    except ValueError as exc:
        raise UserError(str(exc)) from exc


def _tolerance(text: str) -> timedelta:
    try:
        slack = CalendarDuration.parse(text)
    except ValueError as exc:
        raise UserError(f"--tolerance: {exc}") from exc
    if not slack.is_exact:
        raise UserError("--tolerance must be hours, minutes or seconds, such as PT10M")
    return slack.as_timedelta()


def _read_log(
    settings: Settings, console: Console, fold: Callable[[Iterator[dict[str, Any]]], T]
) -> tuple[AuditLog, T]:
    """Fold the whole log (archived segments, then the topic's tail) as it is read; a progress bar."""
    log = AuditLog()
    try:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("reading audit segments", total=None)
            events = log_events(
                make_s3_client(settings, attempts=2),
                settings,
                log,
                on_segment=lambda done, total: progress.update(task, completed=done, total=total),
            )
            folded = fold(events)
    except (BotoCoreError, ClientError) as exc:
        raise UserError(describe(exc, settings.s3_endpoint)) from exc
    return log, folded


@app.command("replay")
def replay_command(
    tenant: str = typer.Option(None, help="only this tenant's calls"),
    since: str = typer.Option(None, "--from", help="RFC 3339: events from this instant"),
    until: str = typer.Option(None, "--to", help="RFC 3339: events before this instant"),
    tolerance: str = typer.Option("PT10M", help="how late a deletion may be before it is a violation"),
    out: Path = typer.Option(Path("audit-report"), help="directory for report.json and report.html"),
    spill_dir: Path = typer.Option(
        None,
        help="where the replay keeps calls and event ids on disk while it reads (default: a temporary one)",
    ),
    keep_calls: int = typer.Option(
        20_000, min=1, help="call stories each process keeps in memory; the rest wait on disk"
    ),
    processes: int = typer.Option(
        None, min=1, help="replay processes (default: one per core, at most one per partition)"
    ),
    partitions: str = typer.Option(
        None, help="only these partitions (comma-separated), for a partial result: needs --partial-out"
    ),
    partial_out: str = typer.Option(
        None, help="write a partial result (a folder, or s3://bucket/prefix) for `callvault audit merge`"
    ),
) -> None:
    """Read the archived audit log and the topic's tail, check every rule, write the report."""
    start, end = instant_option("--from", since), instant_option("--to", until)
    slack = _tolerance(tolerance)
    settings = load_settings(acts=False)  # reads only
    only = _partitions(partitions, settings.partitions)
    if only is not None and partial_out is None:
        raise UserError("a replay of some partitions is a partial result: give --partial-out, then merge")
    console = Console()
    console.print(f"checkpoints checked against the key {fingerprint(_trusted_key(settings))}")
    now = SystemClock().now()
    try:
        with (
            tempfile.TemporaryDirectory(prefix="callvault-replay-", dir=spill_dir) as scratch,
            console.status("replaying the audit log") as status,
        ):
            done = replay_partitions(
                settings, Path(scratch), now, slack, keep_event=EventFilter(tenant, start, end),
                processes=processes, keep=keep_calls, on_step=status.update, only=only,
                command_keys=_command_keys(settings, console),
            )  # fmt: skip
        if partial_out is not None:
            doc = partial_document(
                done.result, done.requests, done.commands, done.log, done.partitions, settings.partitions, now
            )
            where = write_partial(make_s3_client(settings, attempts=2), doc, partial_out)
    except (BotoCoreError, ClientError) as exc:
        raise UserError(describe(exc, settings.s3_endpoint)) from exc
    log, result, spilled = done.log, done.result, done.scratch_bytes
    if partial_out is not None:
        console.print(
            f"partition(s) {', '.join(map(str, done.partitions))} of {settings.partitions}: "
            f"{result.events} events, {len(result.violations)} violation(s) so far; partial result in {where}"
        )
        return
    doc = report_document(
        result, log, now, {"tenant": tenant, "from": since, "to": until, "tolerance": tolerance}
    )
    write_report(doc, out)
    console.print(
        _summary(result, log, out)
        + f"; {done.processes} process(es), {spilled / 1e6:.1f} MB of scratch on disk"
    )
    _finish(console, result, log)


def _summary(result: ReplayResult, log: AuditLog, out: Path) -> str:
    chain = "intact" if not log.breaks else f"BROKEN ({len(log.breaks)})"
    return (
        f"{result.events} events replayed ({log.archived_events} archived, "
        f"{log.tail_events} from the topic), "
        f"{log.checkpoints} signed checkpoint(s), hash chain {chain}, {len(result.violations)} violation(s); "
        f"report in {out}/"
    )


def _partitions(text: str | None, count: int) -> list[int] | None:
    if text is None:
        return None
    try:
        chosen = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError as exc:
        raise UserError(f"--partitions: {text!r} is not a comma-separated list of partition numbers") from exc
    outside = [p for p in chosen if not 0 <= p < count]
    if not chosen or outside:
        raise UserError(f"--partitions: the log has partitions 0 to {count - 1}; {text!r} names others")
    return chosen


def _finish(console: Console, result: ReplayResult, log: AuditLog) -> None:
    for violation in result.violations[:20]:
        console.print(
            f"  [red]{violation.rule}[/red] {violation.tenant}/{violation.call_id or '-'}: {violation.detail}"
        )
    if result.violations or log.breaks:
        raise typer.Exit(1)


@app.command("merge")
def merge_command(
    sources: list[str] = typer.Argument(..., help="folders or s3://bucket/prefix holding partial-*.json"),
    out: Path = typer.Option(Path("audit-report"), help="directory for report.json and report.html"),
) -> None:
    """Join partial replays (one per partition, from `audit replay --partitions N --partial-out`)."""
    settings = load_settings(acts=False)  # reads only
    console = Console()
    try:
        docs = read_partials(make_s3_client(settings, attempts=2), sources)
    except (BotoCoreError, ClientError) as exc:
        raise UserError(describe(exc, settings.s3_endpoint)) from exc
    except ValueError as exc:
        raise UserError(f"a partial replay cannot be read: {exc}") from exc
    problems = binding_problems(docs) or coverage_problems(docs)
    if not problems:
        try:
            problems = store_problems(make_s3_client(settings, attempts=2), settings, docs)
        except (BotoCoreError, ClientError) as exc:
            raise UserError(describe(exc, settings.s3_endpoint)) from exc
    if problems:
        raise UserError("the partials do not make one replay: " + "; ".join(problems))
    try:
        result, log, as_of = merge_partials(docs, _command_keys(settings, console))
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"a partial replay cannot be read: {exc!r}") from exc
    write_report(report_document(result, log, as_of, {"merged_from": ", ".join(sources)}), out)
    console.print(_summary(result, log, out) + f"; merged from {len(docs)} partial(s)")
    _finish(console, result, log)


@app.command("verify-store")
def verify_store(
    tolerance: str = typer.Option("PT10M", help="how far past its date an object may still be there"),
    out: Path = typer.Option(Path("audit-report"), help="directory for verify-store.json"),
    decrypt: bool = typer.Option(
        False,
        "--decrypt",
        help="also open each object under its client's key and check its plaintext's "
        "SHA-256 (reads every object); names the objects stored unsealed",
    ),
) -> None:
    """Walk the archive buckets and check them against the log: objects past due, data with no event."""
    slack = _tolerance(tolerance)
    settings = load_settings(acts=False)  # reads only
    console = Console()
    now = SystemClock().now()
    s3 = make_s3_client(settings, attempts=2)
    with tempfile.TemporaryDirectory(prefix="callvault-verify-store-") as scratch:
        facts = LogFacts(Path(scratch) / "facts.sqlite")
        log, _ = _read_log(settings, console, facts.add)
        try:
            held = held_calls(s3, settings.metadata_bucket)
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("walking the buckets", total=None)

                def on_day(bucket: str, done: int, total: int) -> None:
                    progress.update(task, description=f"walking {bucket}", completed=done, total=total)

                keyring = Keyring.for_settings(settings) if decrypt else None
                unsealed: list[str] = []
                sealed = 0

                def seen(found: FoundKey) -> None:
                    nonlocal sealed
                    if found.opened is None:
                        return
                    if found.opened[0]:
                        sealed += 1
                    else:
                        unsealed.append(f"s3://{found.bucket}/{found.key}")

                keys_checked, findings = compare_by_day(
                    s3, settings, facts, held, now, slack, on_day, keyring, seen=seen
                )
            findings += policy_findings(s3, settings)
        except (BotoCoreError, ClientError) as exc:
            raise UserError(describe(exc, settings.s3_endpoint)) from exc
        finally:
            facts.close()
    events_read = log.archived_events + log.tail_events
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "generated_at": format_rfc3339(now),
        "tolerance": tolerance,
        "keys_checked": keys_checked,
        "events_read": events_read,
        "held_calls": len(held),
        "findings": [asdict(f) for f in findings],
    }
    if decrypt:  # what is stored as it is (archived before encryption, or with it off): named, not flagged
        doc["unsealed_objects"] = len(unsealed)
        doc["unsealed"] = unsealed[:1000]
    (out / "verify-store.json").write_text(json.dumps(doc, indent=2) + "\n")
    console.print(
        f"{keys_checked} keys checked against {events_read} events "
        f"({len(held)} held calls), {len(findings)} finding(s); details in {out}/verify-store.json"
    )
    if decrypt:
        console.print(f"{sealed} object(s) stored sealed, opened; {len(unsealed)} stored unsealed")
    for finding in findings[:20]:
        console.print(f"  [red]{finding.rule}[/red] s3://{finding.bucket}/{finding.key}: {finding.detail}")
    if findings:
        raise typer.Exit(1)


@app.command("verify")
def verify_command(
    since: str = typer.Option(..., "--from", help="RFC 3339: the period's start"),
    until: str = typer.Option(None, "--to", help="RFC 3339: the period's end (default now)"),
    public_key: str = typer.Option(
        None,
        help="hex of the Ed25519 key you trust (default CALLVAULT_AUDIT_PUBLIC_KEY; the signing key's own "
        "only on the embedded stack)",
    ),
) -> None:
    """Check one period's chain from the signed checkpoint before it, reading only that period's segments."""
    settings = load_settings(acts=False)  # reads only
    start = instant_option("--from", since)
    end = instant_option("--to", until) or SystemClock().now()
    assert start is not None
    if end <= start:
        raise UserError("--to must be after --from")
    trusted = _trusted_key(settings, public_key)
    console = Console()
    console.print(f"checkpoints checked against the key {fingerprint(trusted)}")
    try:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("reading the period's segments", total=None)
            report = verify_period(
                make_s3_client(settings, attempts=2), settings.audit_bucket, settings.partitions, start, end,
                trusted, on_segment=lambda n: progress.update(task, completed=n),
                freshness=Freshness(SystemClock().now(), timedelta(seconds=settings.audit_checkpoint_s)),
            )  # fmt: skip
    except (BotoCoreError, ClientError) as exc:
        raise UserError(describe(exc, settings.s3_endpoint)) from exc
    opened = f"checkpoint {report.opened_by}" if report.opened_by is not None else "the log's first segment"
    closed = (
        f"checkpoint {report.closed_by}" if report.closed_by is not None else "no checkpoint yet (still open)"
    )
    verdict = "intact" if report.intact else f"BROKEN ({len(report.problems) + len(report.breaks)})"
    console.print(
        f"{format_rfc3339(start)} to {format_rfc3339(end)}: from {opened} to {closed}, "
        f"{report.checkpoints} checkpoint(s) and {report.segments} segment(s) read, chain {verdict}"
    )
    if report.unsigned_partitions:
        console.print(
            f"partitions {', '.join(map(str, report.unsigned_partitions))}: the last segments are after the "
            "last checkpoint, chained but not signed yet"
        )
    for note in report.notes:
        console.print(f"  [yellow]note[/yellow] {note}")
    for problem in report.problems:
        console.print(f"  [red]checkpoint[/red] {problem}")
    for found in report.breaks:
        console.print(f"  [red]{found.kind}[/red] {found.segment}: {found.detail}")
    if not report.intact:
        raise typer.Exit(1)


def _command_keys(settings: Settings, console: Console) -> dict[str, str] | None:
    """The public keys commands are signed with, to check the holds and subject requests against;
    without them (CALLVAULT_COMMAND_KEYS) that check is left out, and the reader is told."""
    keys = settings.trusted_command_keys
    if not keys:
        console.print("commands not checked: set CALLVAULT_COMMAND_KEYS to the keys commands are signed with")
        return None
    return keys


@app.command("public-key")
def public_key_command() -> None:
    """Print the public key that verifies the audit checkpoints (hex), for auditors."""
    settings = load_settings(acts=False)
    key = public_hex(private_key(settings.audit_signing_key.get_secret_value()))
    typer.echo(key)
    typer.echo(f"fingerprint {fingerprint(key)}: hand both to the auditor out of band, at go-live")
