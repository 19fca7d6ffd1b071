"""`callvault keys new|list`: the key pairs that sign commands (see rules/command_signature.py)."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from callvault.cli.config import load_settings
from callvault.cli.errors import UserError
from callvault.rules.audit_checkpoint import fingerprint
from callvault.rules.command_signature import new_identity, seed_text

app = typer.Typer(help="Command keys: who may issue commands to the worker.", no_args_is_help=True)


@app.command("new")
def new(name: str = typer.Argument(..., help="whose key: a person (dpo-anna) or a role (api)")) -> None:
    """Make a key pair: the private half for the issuer alone, the public half for the worker."""
    try:
        identity = new_identity(name)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    print(f"# {identity.name}'s command key, fingerprint {fingerprint(identity.public_key)}")
    print(f"# For {identity.name} alone, as the secret CALLVAULT_COMMAND_SIGNING_KEY:")
    print(f"CALLVAULT_COMMAND_SIGNING_KEY={seed_text(identity)}")
    print("# For the worker's CALLVAULT_COMMAND_KEYS (comma-separated, or a line of its @file):")
    print(f"{identity.name}={identity.public_key}")


@app.command("list")
def list_keys() -> None:
    """The keys the worker believes (CALLVAULT_COMMAND_KEYS), by name and fingerprint."""
    settings = load_settings()
    keys = settings.trusted_command_keys
    table = Table(title=f"command keys ({len(keys)})")
    for column in ("name", "fingerprint"):
        table.add_column(column)
    for name, public in sorted(keys.items()):
        table.add_row(name, fingerprint(public))
    Console().print(table)
    if not keys:
        raise UserError("CALLVAULT_COMMAND_KEYS names no key: the worker would refuse every command")
