"""`callvault tenant offboard|enable`: a client's contract ends, or it is taken on again.

`offboard` returns the client's data to a location it owns and/or erases it,
proven on `lifecycle` (`tenant.returned`, `tenant.erased`, and a deletion event
per object); killed half-way, the same command again finishes it. See
`stream/offboarding.py` for the order of the steps and why.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from callvault.cli.config import load_settings
from callvault.cli.errors import UserError
from callvault.cli.options import requester
from callvault.clock import SystemClock
from callvault.rules.data_classes import data_classes
from callvault.settings import Settings
from callvault.storage import rewrapping
from callvault.storage.client import make_return_s3_client, make_s3_client, make_staging_s3_client
from callvault.storage.errors import StorageFault, describe
from callvault.storage.sealing import Keyring
from callvault.storage.tenant_keys import alias_of, ensure_tenant_key, make_kms_client, tenant_key
from callvault.stream.bus import lifecycle_emitter
from callvault.stream.offboarding import Offboarding, OffboardingRefused, Outcome, enable
from callvault.stream.offloop import S3Runner

app = typer.Typer(
    help="Clients' contracts: return or erase a tenant's data at the end.", no_args_is_help=True
)


def _runner(settings: Settings) -> S3Runner:
    return S3Runner(
        make_s3_client(settings, attempts=2),
        max_workers=settings.s3_max_concurrency,
        endpoint=settings.s3_endpoint,
        give_up_after=3,  # a person is waiting: say what failed rather than hang
    )


def _return_client(
    settings: Settings, endpoint: str | None, key: str | None, secret: str | None, region: str | None
) -> Any:
    """The client's store: options, else CALLVAULT_RETURN_*, else the archive's store and keys."""
    endpoint = endpoint or os.environ.get("CALLVAULT_RETURN_ENDPOINT")
    key = key or os.environ.get("CALLVAULT_RETURN_ACCESS_KEY")
    secret = secret or os.environ.get("CALLVAULT_RETURN_SECRET_KEY")
    region = region or os.environ.get("CALLVAULT_RETURN_REGION") or ""
    if bool(key) != bool(secret):
        raise UserError("give both the return store's access key and its secret key, or neither")
    keys = (key, secret) if key and secret else None
    return make_return_s3_client(endpoint, keys, region, settings)


async def _offboard(settings: Settings, console: Console, dest: Any, **how: Any) -> Outcome:
    runner = _runner(settings)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        async with lifecycle_emitter(settings) as emit:
            with Progress(*columns, console=console) as progress:
                tasks: dict[str, Any] = {}

                def step(name: str, done: int, total: int) -> None:
                    if name not in tasks:
                        tasks[name] = progress.add_task(name, total=total)
                    progress.update(tasks[name], completed=done, total=total)

                staging = make_staging_s3_client(settings) if settings.staging_is_separate else None
                # The client's key is destroyed after its erasure where objects are sealed (issue 29).
                job = Offboarding(
                    settings, runner, emit, SystemClock(), dest=dest, progress=step, staging=staging
                )
                return await job.run(**how)
    finally:
        runner.close()


@app.command("offboard")
def offboard(
    tenant: str = typer.Argument(..., help="the client tenant whose contract ends"),
    reason: str = typer.Option(
        ..., "--reason", help="the contract and its end, as the auditor should read it"
    ),
    return_to: str = typer.Option(
        None, "--return-to", help="s3://bucket/prefix the client owns: its data goes there"
    ),
    erase: bool = typer.Option(
        False, "--erase", help="erase all of the tenant's data (legal holds excepted)"
    ),
    return_endpoint: str = typer.Option(
        None, help="the return store's endpoint (or CALLVAULT_RETURN_ENDPOINT)"
    ),
    return_access_key: str = typer.Option(None, help="its access key (or CALLVAULT_RETURN_ACCESS_KEY)"),
    return_secret_key: str = typer.Option(None, help="its secret key (or CALLVAULT_RETURN_SECRET_KEY)"),
    return_region: str = typer.Option(None, help="its region (or CALLVAULT_RETURN_REGION)"),
) -> None:
    """Return and/or erase a client's data at the end of its contract; run again to finish a cut-short run."""
    settings = load_settings()
    console = Console()
    dest = (
        _return_client(settings, return_endpoint, return_access_key, return_secret_key, return_region)
        if return_to
        else None
    )
    try:
        outcome = asyncio.run(
            _offboard(
                settings,
                console,
                dest,
                tenant=tenant,
                reason=reason,
                by=requester(),
                return_to=return_to,
                erase=erase,
            )
        )
    except OffboardingRefused as exc:
        raise UserError(f"tenant {tenant!r} was not offboarded: {exc}") from exc
    except (BotoCoreError, ClientError, StorageFault) as exc:
        raise UserError(
            f"the offboarding of {tenant!r} stopped: {describe(exc, settings.s3_endpoint)}; "
            "run the same command again to finish it"
        ) from exc
    if outcome.resumed:
        console.print(f"finished the offboarding of {tenant} that an earlier run began")
    if outcome.manifest_sha256 is not None:
        counts = ", ".join(f"{n} {c}" for c, n in sorted(outcome.returned.items())) or "nothing"
        console.print(f"returned to {return_to}: {counts}; manifest SHA-256 {outcome.manifest_sha256}")
    if erase:
        counts = ", ".join(f"{n} {c}" for c, n in sorted(outcome.erased.items())) or "nothing left to erase"
        console.print(f"erased: {counts}")
        if outcome.held_calls:
            console.print(f"kept by legal holds: {', '.join(outcome.held_calls)}")
        if outcome.key is not None:
            console.print(f"the client's key: {outcome.key}")
        if outcome.key_note is not None:
            console.print(outcome.key_note)
    console.print(
        f"tenant {tenant} is offboarded: its new events are dead-lettered until `callvault tenant enable`"
    )


@app.command("enable")
def enable_tenant(
    tenant: str = typer.Argument(..., help="an offboarded tenant"),
    reason: str = typer.Option(..., "--reason", help="why it is taken on again"),
) -> None:
    """Take an offboarded tenant on again: its events are accepted from now."""
    settings = load_settings()

    async def run() -> None:
        runner = _runner(settings)
        try:
            async with lifecycle_emitter(settings) as emit:
                await enable(runner, settings, emit, SystemClock(), tenant, requester(), reason)
        finally:
            runner.close()

    try:
        asyncio.run(run())
    except OffboardingRefused as exc:
        raise UserError(str(exc)) from exc
    except (BotoCoreError, ClientError) as exc:
        raise UserError(describe(exc, settings.s3_endpoint)) from exc
    Console().print(f"tenant {tenant} is enabled: its events are accepted again")


keys_app = typer.Typer(
    help="Each client's key in the KMS: what its recordings and metadata are sealed under.",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def create_key(tenant: str = typer.Argument(..., help="the client tenant")) -> None:
    """Make the tenant's KMS key, alias/callvault/TENANT, if it has none; print its ARN."""
    settings = load_settings()
    kms = make_kms_client(settings)
    try:
        arn, made = ensure_tenant_key(kms, tenant)
    except (BotoCoreError, ClientError) as exc:
        raise UserError(describe(exc, settings.kms_endpoint or "AWS KMS")) from exc
    Console().print(f"{alias_of(tenant)}: {arn} ({'made now' if made else 'there already'})")


@keys_app.command("rotate")
def rotate_key(
    tenant: str = typer.Argument(..., help="the client tenant"),
    rewrap: bool = typer.Option(
        False,
        "--rewrap",
        help="then re-wrap every existing object's data key under the new key version "
        "(a metadata copy per object; no audio is re-encrypted). A run that stopped is resumed",
    ),
) -> None:
    """New objects are sealed under a new version of the tenant's key; old ones stay readable."""
    settings = load_settings()
    keyring = Keyring.for_settings(settings)
    s3 = make_s3_client(settings)
    meta = settings.metadata_bucket
    console = Console()
    try:
        record = rewrapping.rewrap_record(s3, meta, tenant) if rewrap else None
        if record is not None and not record.done:
            console.print(
                f"resuming the re-wrap of {tenant} under {record.key_id} "
                f"(rotated {record.rotated_at:%Y-%m-%d %H:%M:%S}Z)"
            )
        else:
            found = tenant_key(keyring.kms, tenant)
            if found is None:
                raise UserError(f"tenant {tenant} has no key ({alias_of(tenant)}): nothing to rotate")
            keyring.kms.rotate_key_on_demand(KeyId=found["KeyId"])
            record = rewrapping.Rewrap(
                tenant=tenant, key_id=str(found["Arn"]), rotated_at=SystemClock().now()
            )
            console.print(
                f"{alias_of(tenant)}: {record.key_id} rotated; new objects are sealed under its new version"
            )
            if not rewrap:
                return
            rewrapping.save_rewrap(s3, meta, record)
        buckets = [c.bucket(settings) for c in data_classes()]
        with Progress(console=console, transient=True) as progress:
            tasks: dict[str, Any] = {}

            def step(bucket: str, done: int, total: int) -> None:
                if bucket not in tasks:
                    tasks[bucket] = progress.add_task(f"re-wrapping {bucket}", total=total)
                progress.update(tasks[bucket], completed=done, total=total)

            count = rewrapping.rewrap_tenant(s3, keyring, buckets, record, SystemClock(), step)
        rewrapping.save_rewrap(s3, meta, record.model_copy(update={"done": True}))
    except (BotoCoreError, ClientError) as exc:
        raise UserError(describe(exc, settings.kms_endpoint or settings.s3_endpoint)) from exc
    console.print(f"{count} object(s) of {tenant} re-wrapped under {record.key_id}")
