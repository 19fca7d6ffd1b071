"""Structured access logs: one JSON line per request, with no personal data; and its metrics.

The path names tenants and call ids (not personal data), except an audio
link's, which is a credential and is masked. The query string is left out: a
declared purpose is free text and may name someone. The request id is taken
from `X-Request-ID` when a proxy sets a sane one, returned in the response,
and written into the `recording.accessed` event, so a log
line and an audit event can be matched.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callvault.observability.metrics import API_REQUESTS, API_SECONDS

log = logging.getLogger("callvault.api.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def _without_secrets(path: str) -> str:
    """An audio link is a bearer credential for a few minutes: never in a log."""
    return "/api/v1/audio/<link>" if path.startswith("/api/v1/audio/") else path


def log_json_lines(stream: Any = None) -> None:
    """Access lines as bare JSON on stdout (one per line), for a log shipper to parse."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False


class AccessLogMiddleware:
    """One JSON line per request, under callvault's own request id.

    A client's `X-Request-ID` never becomes callvault's id (access events are
    named by it, and a client could replay or collide ids). A trusted proxy's
    (a gateway's trace id, `CALLVAULT_API_TRUSTED_PROXIES`) is kept beside it as
    `client_request_id`; anyone else's is ignored.
    """

    def __init__(self, app: ASGIApp, trusted_proxies: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.trusted_proxies = trusted_proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        offered = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        peer = (scope.get("client") or ("", 0))[0]
        client_id = offered if peer in self.trusted_proxies and _REQUEST_ID.fullmatch(offered) else None
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["client_request_id"] = client_id
        started = time.perf_counter()
        status = 500
        sent = 0

        async def tracking_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            state = scope.get("state", {})
            grant = state.get("grant")
            line: dict[str, Any] = {
                "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "request_id": request_id,
                "client_request_id": client_id,
                "method": scope.get("method"),
                "path": _without_secrets(str(scope.get("path"))),
                "status": status,
                "bytes": sent,
                "ms": round((time.perf_counter() - started) * 1000, 1),
                "who": grant.subject if grant else None,
                "role": grant.role.value if grant else None,
            }
            if "link_access" in state:
                line["access_event_id"] = state["link_access"]
            log.info(json.dumps(line, separators=(",", ":")))
            # The route's template, never the path: paths name calls and carry audio links.
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            API_REQUESTS.labels(scope.get("method") or "", route, str(status)).inc()
            API_SECONDS.labels(route).observe(time.perf_counter() - started)
