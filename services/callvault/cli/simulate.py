"""`callvault simulate`: realistic call traffic from the producer's side."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime

import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from callvault.cli.config import load_settings
from callvault.clock import SystemClock
from callvault.rules.client_policy import terms_at
from callvault.rules.retention import RetentionPolicy
from callvault.settings import Settings
from callvault.simulation.plan import SimulatedCall, TrafficOptions, plan_traffic
from callvault.simulation.publish import publish_calls
from callvault.storage.client import make_s3_client
from callvault.storage.policies import load_book


def _client_terms(settings: Settings, now: datetime) -> dict[str, RetentionPolicy]:
    """Each tenant's terms by its stored client policy, so that the expected outcomes are its own."""
    try:
        book = load_book(make_s3_client(settings, attempts=2), settings.metadata_bucket)
    except (BotoCoreError, ClientError):
        return {}  # no store to read yet: the publisher will say so
    return {t: terms_at(h, None, now, settings.policy_defaults).retention for t, h in book.items()}


def run_simulation(
    settings: Settings, opts: TrafficOptions, rate: float, console: Console
) -> list[SimulatedCall]:
    now = SystemClock().now()
    calls = plan_traffic(opts, now, settings.retention, _client_terms(settings, now))
    with Progress(
        TextColumn("simulating calls"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("calls", total=len(calls))
        asyncio.run(publish_calls(settings, calls, rate=rate, on_call=lambda _c: progress.advance(task)))
    return calls


def expected_table(calls: list[SimulatedCall], title: str = "simulated calls") -> Table:
    table = Table(title=title)
    table.add_column("scenario")
    table.add_column("expected outcome")
    table.add_column("calls", justify="right")
    for (scenario, expected), n in sorted(Counter((c.scenario, c.expected) for c in calls).items()):
        table.add_row(scenario, expected, str(n))
    return table


def simulate(
    calls: int = typer.Option(50, min=1, help="how many calls"),
    rate: float = typer.Option(0.0, min=0, help="calls per second; 0 = as fast as possible"),
    tenants: str = typer.Option("acme,globex", help="comma-separated tenants"),
    missing: float = typer.Option(0.1, min=0, max=1, help="share with no disclosure"),
    late: float = typer.Option(0.1, min=0, max=1, help="share whose disclosure event arrives late"),
    after_start: float = typer.Option(0.05, min=0, max=1, help="share disclosed after recording began"),
    objected: float = typer.Option(0.03, min=0, max=1, help="share where the participant objects"),
    mismatch: float = typer.Option(0.0, min=0, max=1, help="share announcing a wrong checksum"),
    payments: float = typer.Option(
        0.0,
        min=0,
        max=1,
        help="share taking a card payment: clean, resume forgotten, pause late, "
        "pause not silent, payment events late",
    ),
    duplicates: float = typer.Option(0.05, min=0, max=1, help="share with one event sent twice"),
    backdate_months: int = typer.Option(0, min=0, help="spread some calls over this many past months"),
    backdated: float = typer.Option(0.1, min=0, max=1, help="share of calls backdated"),
    audio_seconds: float = typer.Option(3.0, min=0.1, help="length of each generated recording"),
    seed: int = typer.Option(1, help="random seed: same seed, same traffic"),
) -> None:
    """Upload generated audio to staging and publish call events, like a call-center platform."""
    settings = load_settings(acts=False)  # reads only
    tenant_list = tuple(t.strip() for t in tenants.split(",") if t.strip())
    opts = TrafficOptions(
        calls=calls, tenants=tenant_list, missing=missing, late=late, after_start=after_start,
        objected=objected, mismatch=mismatch, payments=payments, duplicates=duplicates,
        backdate_months=backdate_months, backdated=backdated, audio_seconds=audio_seconds,
        seed=seed, staging_bucket=settings.staging_bucket,
    )  # fmt: skip
    console = Console()
    simulated = run_simulation(settings, opts, rate, console)
    console.print(expected_table(simulated))
