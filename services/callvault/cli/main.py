"""The `callvault` command line."""

from __future__ import annotations

import logging
import sys

import typer

from callvault.cli import (
    api,
    audit,
    demo,
    hold,
    keys,
    policy,
    purge,
    schemas,
    simulate,
    storage,
    subject,
    tenant,
    worker,
)
from callvault.cli.errors import UserError
from callvault.stream.bus import BrokerUnreachable, TopicsMisplaced
from callvault.stream.command_client import CannotSign

app = typer.Typer(
    name="callvault",
    help="Lifecycle of call-center recordings: disclosure evidence, archive, retention, audit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(storage.app, name="storage")
app.add_typer(schemas.app, name="schemas")
app.add_typer(hold.app, name="hold")
app.add_typer(keys.app, name="keys")
app.add_typer(policy.app, name="policy")
app.add_typer(tenant.app, name="tenant")
app.add_typer(subject.app, name="subject")
app.add_typer(audit.app, name="audit")
app.add_typer(api.app, name="api")
app.command("purge")(purge.purge)
app.command("worker")(worker.worker)
app.command("dev")(worker.dev)
app.command("simulate")(simulate.simulate)
app.command("demo")(demo.demo)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except (UserError, BrokerUnreachable, TopicsMisplaced, CannotSign) as exc:
        print(f"callvault: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("callvault: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
