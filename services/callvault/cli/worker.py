"""`callvault worker` and `callvault dev`."""

from __future__ import annotations

import asyncio
import signal
import sys
import time

import typer
from rich.console import Console

from callvault.cli.config import load_settings
from callvault.embedded.worker_process import start_worker_process
from callvault.stream.bus import ensure_callvault_topics


def worker() -> None:
    """Run the stream-processing worker against the configured Kafka and S3."""
    from callvault.stream.app import run_worker  # faust is heavy: import on use

    settings = load_settings()  # refuses dev or placeholder secrets off loopback
    # Where the buckets are is checked inside the worker (stream/residency_gate.py), after its
    # health server is up, so a worker started during an S3 outage still answers /healthz.
    asyncio.run(ensure_callvault_topics(settings))
    run_worker(settings)


def dev(
    grace: str = typer.Option("PT30S", help="disclosure grace for dev (the contract default is PT5M)"),
    port: int = typer.Option(8080, help="port of the QA API and page"),
) -> None:
    """Run the embedded stack (broker, object store, worker, API) in the foreground; Ctrl-C stops all."""
    from datetime import timedelta

    from callvault.api.tokens import issue_token
    from callvault.clock import SystemClock
    from callvault.embedded.stack import EmbeddedStack
    from callvault.embedded.worker_process import start_api_process
    from callvault.rules.access import Role
    from callvault.storage.bootstrap import init_storage
    from callvault.storage.client import make_s3_client

    console = Console()
    with EmbeddedStack() as stack:
        settings = load_settings(
            kafka_bootstrap=stack.kafka_bootstrap, s3_endpoint=stack.s3_endpoint, disclosure_grace=grace
        )
        asyncio.run(ensure_callvault_topics(settings))
        init_storage(make_s3_client(settings), settings)
        env = {**stack.env(), "CALLVAULT_DISCLOSURE_GRACE": grace}
        proc = start_worker_process(env, stack.run_dir / "worker.log")
        api = start_api_process(env, stack.run_dir / "api.log", port)
        token = issue_token(
            settings.api_token_secret.get_secret_value(),
            "dev@localhost",
            Role.QA,
            ["*"],
            SystemClock().now(),
            timedelta(hours=12),
        )
        stop = False

        def _stop(*_: object) -> None:
            nonlocal stop
            stop = True

        # Before the banner: whoever reads "Ctrl-C stops everything" may press it at once.
        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        console.print("[bold]callvault dev[/bold] is running. In another terminal:")
        for name, value in env.items():
            console.print(f"  export {name}={value}")
        console.print("  callvault simulate --calls 20")
        worker_ops = f"http://{settings.worker_http_host}:{settings.worker_http_port}"
        console.print(f"Worker probes and metrics: {worker_ops}/readyz, {worker_ops}/metrics")
        console.print(f"QA page and API: http://127.0.0.1:{port}/  (docs at /docs); a 12-hour QA token:")
        console.print(f"  {token}", soft_wrap=True)
        console.print(
            f"Logs: {stack.run_dir}/  (worker.log, api.log, tansu.log, moto.log). Ctrl-C stops everything."
        )
        try:
            while not stop and proc.alive() and api.alive():
                time.sleep(0.3)
            for name, child in (("worker", proc), ("API", api)):
                if not child.alive() and not stop:
                    console.print(f"[red]the {name} exited[/red]; its log ends with:\n{child.tail()}")
                    sys.exit(1)
        finally:
            api.stop()
            proc.stop()
            console.print("stopped")
