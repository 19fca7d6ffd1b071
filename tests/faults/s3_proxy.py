"""A TCP proxy in front of the S3 endpoint that fails on demand: the store's bad days, on cue.

Modes: `pass` (a plain pipe), `503` (every request answered `503 Service
Unavailable` with an S3 error body, the store untouched), `refuse` (nothing
listens: connection refused), `cut` (the request reaches the store, which
carries it out, and the connection is closed before the answer: the worst case,
a write done whose caller never hears so), `delay` (each new connection waits
`delay_s` first). Changing the mode drops every open connection, so a client's
kept-alive connection cannot slip past the fault.

It runs its own event loop on a thread: the test's loop and the proxy never
wait for each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Literal

from callvault.embedded.processes import free_port

Mode = Literal["pass", "503", "refuse", "cut", "delay"]

_UNAVAILABLE = (
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>ServiceUnavailable</Code>"
    b"<Message>injected by the fault proxy</Message></Error>"
)
_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n"
    b"Connection: close\r\nContent-Length: " + str(len(_UNAVAILABLE)).encode() + b"\r\n\r\n" + _UNAVAILABLE
)


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self.mode: Mode = "pass"
        self.delay_s = 1.0  # how long each new connection waits in `delay`
        self._open: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="s3-fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        self._call(self._close_all(stop_listening=True))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def set(self, mode: Mode) -> None:
        """Switch the fault; open connections are dropped so that the new mode applies at once."""
        self.mode = mode
        self._call(self._close_all(stop_listening=mode == "refuse"))
        if mode != "refuse":
            self._call(self._listen())

    def _call(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._handle, "127.0.0.1", self.port, reuse_address=True
            )

    async def _close_all(self, *, stop_listening: bool) -> None:
        if stop_listening and self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.add(writer)
        mode = self.mode
        up_writer: asyncio.StreamWriter | None = None
        try:
            if mode == "503":
                with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                    await reader.readuntil(b"\r\n\r\n")
                writer.write(_503)
                await writer.drain()
                return
            if mode == "delay":
                await asyncio.sleep(self.delay_s)
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            self._open.add(up_writer)
            if mode == "cut":
                await _pipe_until_answer(reader, up_writer, up_reader)
                return
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    self._open.discard(w)
                    w.transport.abort()


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    while data := await src.read(65536):
        dst.write(data)
        await dst.drain()
    with contextlib.suppress(OSError):
        dst.write_eof()


async def _pipe_until_answer(
    client: asyncio.StreamReader, upstream: asyncio.StreamWriter, answers: asyncio.StreamReader
) -> None:
    """Forward the request; once the store starts answering, drop everything: done, but unheard."""
    forward = asyncio.ensure_future(_pipe(client, upstream))
    try:
        await answers.read(1)
    finally:
        forward.cancel()
