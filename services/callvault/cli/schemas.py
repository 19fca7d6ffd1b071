"""`callvault schemas write|check`: the JSON Schemas in `schemas/`, generated from the models."""

from __future__ import annotations

from pathlib import Path

import typer

from callvault.cli.errors import UserError
from callvault.contract.schemas import drift, write_schemas

app = typer.Typer(help="JSON Schema of every event, command and dead letter.", no_args_is_help=True)


@app.command("write")
def write(root: Path = typer.Option(Path("schemas"), help="folder to write into")) -> None:
    """Regenerate the schema files from the contract models."""
    written = write_schemas(root)
    typer.echo(f"wrote {len(written)} schema files under {root}/")


@app.command("check")
def check(root: Path = typer.Option(Path("schemas"), help="folder to compare")) -> None:
    """Fail when the checked-in schemas differ from the models."""
    problems = drift(root)
    if problems:
        raise UserError(
            f"{len(problems)} schema file(s) out of date ({', '.join(problems[:5])}); "
            "run `callvault schemas write`"
        )
    typer.echo("schemas are up to date")
