"""`callvault demo`: the embedded stack, simulated traffic, and a summary of what happened."""

from __future__ import annotations

import typer
from rich.console import Console

from callvault.cli.errors import UserError


def demo(
    calls: int = typer.Option(300, min=1, help="how many simulated calls"),
    timeout: float = typer.Option(90.0, help="seconds to wait for every outcome"),
) -> None:
    """Run everything end to end on the embedded stack, then print the outcome summary."""
    from callvault.embedded.demo import run_demo, summary_tables

    console = Console()
    result = run_demo(console, calls=calls, timeout=timeout)
    for table in summary_tables(result):
        console.print(table)
    console.print(f"demo finished in {result.seconds:.0f}s")
    if result.audit is not None and (result.audit.violations or not result.audit.chain_intact):
        raise UserError(
            f"the audit replay found {result.audit.violations} violation(s); see {result.audit.report_dir}"
        )
    unanswered = [r for r in result.subjects if r.export.startswith("no answer")]
    if unanswered:
        raise UserError(f"{len(unanswered)} data-subject request(s) got no answer: {unanswered[0].export}")
    if result.mismatches:
        shown = "; ".join(f"{c}: expected {e}, got {o}" for c, e, o in result.mismatches[:5])
        raise UserError(f"{len(result.mismatches)} call(s) did not get their expected outcome: {shown}")
