"""The worker's HTTP side: liveness, readiness and Prometheus metrics.

Served on the worker's own event loop on purpose: a loop stuck in a blocking
call cannot answer /healthz, and that is what a liveness probe must catch.
It is a service of the faust worker that starts before the app, so /healthz
answers while the worker still waits to join its group or recovers its
tables (which can take a while after a crash), and /readyz says why it is
not ready yet. faust's own web server stays off; it would publish table
contents.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from mode import Service

from callvault.observability.metrics import CONTENT_TYPE_LATEST, exposition

log = logging.getLogger("callvault.worker")

STORE_CHECK_TTL_S = 5.0  # a probe every few seconds must not become a HEAD every few seconds


class HealthServer(Service):
    def __init__(
        self,
        host: str,
        port: int,
        *,
        readiness: Callable[[], list[str]],
        store_check: Callable[[], Awaitable[None]],
        before_scrape: Callable[[], None],
        notes: Callable[[], list[str]] = list,
    ) -> None:
        super().__init__()
        self._notes = notes  # what an operator should see that does not make the worker unready
        self._host, self._port = host, port
        self._readiness = readiness  # why the worker is not ready yet; empty when it is
        self._store_check = store_check
        self._before_scrape = before_scrape
        self._store_ok_at = float("-inf")
        self._store_checking: asyncio.Future[None] | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def on_start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        try:
            await site.start()
        except OSError as exc:
            # Without its probes the worker still archives and purges; k8s sees the probe fail.
            log.error("no health or metrics: cannot listen on %s:%d: %s", self._host, self._port, exc)
            await self._runner.cleanup()
            self._runner = None
            return
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # the real one when 0
        self.url = f"http://{self._host}:{port}"
        log.info("health and metrics on %s (/healthz, /readyz, /metrics)", self.url)

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _: web.Request) -> web.Response:
        problems = self._readiness()
        store = await self._store_problem_now()
        if store:
            problems.append(store)
        body = {"status": "unready" if problems else "ready", "problems": problems, "notes": self._notes()}
        return web.json_response(body, status=503 if problems else 200)

    async def _store_problem_now(self) -> str:
        if time.monotonic() - self._store_ok_at < STORE_CHECK_TTL_S:
            return ""
        # One check in flight at most: probes arriving while S3 hangs wait on the same one
        # instead of each leaving another request (and thread) behind.
        if self._store_checking is None or self._store_checking.done():
            self._store_checking = asyncio.ensure_future(self._store_check())
            # Its failure is reported by whichever probe waits for it; none may be left to.
            self._store_checking.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            await asyncio.wait_for(asyncio.shield(self._store_checking), timeout=3.0)
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            return f"s3: {type(exc).__name__}: {exc}"
        self._store_ok_at = time.monotonic()
        return ""

    async def _metrics(self, _: web.Request) -> web.Response:
        self._before_scrape()
        return web.Response(body=exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})
