"""`callvault api` (the QA retrieval API and web page) and `callvault api token` (issuing access)."""

from __future__ import annotations

import asyncio
import logging
import logging.config
from collections.abc import Callable
from typing import Any

import typer

from callvault.cli.config import load_settings
from callvault.cli.errors import UserError
from callvault.cli.residency import refuse_outside_residency
from callvault.clock import SystemClock
from callvault.observability.logs import logging_config
from callvault.rules.access import Role
from callvault.rules.durations import CalendarDuration, add_duration

app = typer.Typer(
    help="The QA retrieval API: `callvault api` serves it; `callvault api token` issues access.",
    invoke_without_command=True,
)


@app.callback()
def serve(
    ctx: typer.Context,
    host: str = typer.Option(None, help="address to listen on [default: CALLVAULT_API_HOST, 127.0.0.1]"),
    port: int = typer.Option(None, help="port to listen on [default: CALLVAULT_API_PORT, 8080]"),
) -> None:
    """Serve the API and the coaches' page (/); metrics and docs on the ops port. Until stopped."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from callvault.api.app import create_app, create_ops_app
    from callvault.api.http_log import log_json_lines

    settings = load_settings(api_host=host, api_port=port)  # refuses dev secrets off loopback
    refuse_outside_residency(settings, wait_for_store=True)
    # A loop asked for and not installed is refused here, before anything starts.
    loop = loop_factory(settings.api_loop)
    # One JSON line per request from callvault's own middleware; uvicorn's is off.
    log_config = logging_config(settings.log_format, "warning")
    logging.config.dictConfig(log_config)
    logging.getLogger("callvault.api").setLevel(logging.INFO)
    log_json_lines()
    public = create_app(settings, freeze_heap=True)
    common = {"access_log": False, "log_level": "warning", "log_config": log_config}
    servers = [
        uvicorn.Server(uvicorn.Config(public, host=settings.api_host, port=settings.api_port, **common))
    ]
    where = f"callvault api on http://{settings.api_host}:{settings.api_port}/"
    if settings.api_ops_port:
        ops = create_ops_app(public)
        ops_config = uvicorn.Config(ops, host=settings.api_ops_host, port=settings.api_ops_port, **common)
        servers.append(uvicorn.Server(ops_config))
        where += f"; metrics and docs on http://{settings.api_ops_host}:{settings.api_ops_port}/docs"
    print(where, flush=True)
    with asyncio.Runner(loop_factory=loop) as runner:
        runner.run(_serve_all(servers))


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The API's event loop (`CALLVAULT_API_LOOP`); None: asyncio's own.

    uvicorn picks uvloop by itself only when it runs the loop (`uvicorn.run`); the API runs its
    public and ops listeners in one loop of its own, so it picks here, the same way. On uvloop a
    metadata read under 20 connections cost 3.1 to 4.0 ms of the API's CPU against 4.0 to 5.1 on
    asyncio's loop, 210 to 259 requests/s against 162 to 210 (docs/benchmarks.md).
    """
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise UserError(
                "CALLVAULT_API_LOOP=uvloop, but uvloop is not installed: install it, or say auto"
            ) from None
        return None
    return uvloop.new_event_loop


async def _serve_all(servers: list[Any]) -> None:
    """The public listener and the ops one in one loop; when one stops (a signal), so does the other.

    A busy ops port must not take the API down with it (uvicorn exits the process
    when it cannot bind): the ops listener then stays off, and the log says so.
    """
    public = asyncio.create_task(servers[0].serve())
    ops = [asyncio.create_task(_ops_listener(server)) for server in servers[1:]]
    done, _ = await asyncio.wait([public, *ops], return_when=asyncio.FIRST_COMPLETED)
    if public not in done and all(task.result() == "not started" for task in done):
        await public  # the API goes on alone; signals reach its handlers again
    for server in servers:
        server.should_exit = True
    await asyncio.gather(public, *ops, return_exceptions=True)


async def _ops_listener(server: Any) -> str:
    try:
        await server.serve()
    except SystemExit:
        logging.getLogger("callvault.api").warning(
            "the ops listener could not start (is CALLVAULT_API_OPS_PORT busy?); /metrics and /docs are off"
        )
        return "not started"
    return "stopped"


@app.command("token")
def token(
    subject: str = typer.Option(..., "--subject", help="who the token is for, e.g. an e-mail address"),
    role: Role = typer.Option(..., help="qa, auditor, dpo or admin"),
    tenant: list[str] = typer.Option(..., help="a tenant it may see (repeat); '*' for all"),
    ttl: str = typer.Option(
        "PT12H",
        help="how long it is valid, ISO 8601 (PT12H); at most CALLVAULT_API_TOKEN_MAX_LIFETIME (PT24H)",
    ),
    site: str = typer.Option(
        None, "--site", help="the processing site the person works at (CALLVAULT_SITES)"
    ),
) -> None:
    """Print a signed bearer token (HS256 JWT with CALLVAULT_API_TOKEN_SECRET) for one person."""
    from callvault.api.tokens import issue_token

    settings = load_settings()
    try:
        duration = CalendarDuration.parse(ttl)
        now = SystemClock().now()
        lifetime = add_duration(now, duration, settings.zone) - now
        secret = settings.api_token_secret.get_secret_value()
        if site is not None and site not in settings.site_countries:
            declared = ", ".join(sorted(settings.site_countries)) or "none"
            raise ValueError(f"the site {site!r} is not declared in CALLVAULT_SITES (declared: {declared})")
        if site is None and settings.site_countries:
            raise ValueError("CALLVAULT_SITES declares processing sites: a token must name one (--site)")
        text = issue_token(
            secret, subject, role, tenant, now, lifetime, settings.token_max_lifetime, site=site
        )
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    print(text)
