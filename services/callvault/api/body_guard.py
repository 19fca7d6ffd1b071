"""Request bodies: the token is checked before a byte of one is read, and no body is unbounded.

FastAPI reads a route's body before it resolves the route's dependencies, the
token check among them: without this, a 64 MiB body with no token would be read
whole before its 401, and invalid JSON without a token would earn a 422 that
tells a stranger what the route expects. Here a request that carries a body is
refused with 401 unless its bearer token is valid, and with 413 past
`CALLVAULT_API_MAX_BODY_BYTES`, whether it says its length or streams.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

TokenCheck = Callable[[str], str | None]  # the Authorization header -> why it is refused, or None


class BodyTooLarge(Exception):
    pass


class BodyGuard:
    def __init__(self, app: ASGIApp, *, max_bytes: int, check_token: TokenCheck) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.check_token = check_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        refused = self.check_token(headers.get(b"authorization", b"").decode("latin-1"))
        if refused is not None:
            await _answer(send, 401, refused, {"www-authenticate": 'Bearer error="invalid_token"'})
            return
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _answer(send, 413, self._too_large())
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _answer(send, 413, self._too_large())

    def _too_large(self) -> str:
        return f"the request body is larger than {self.max_bytes} bytes (CALLVAULT_API_MAX_BODY_BYTES)"


async def _answer(send: Send, status: int, error: str, extra: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": error, "status": status}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
