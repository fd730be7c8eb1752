"""The control's connections: a TCP site whose every connection has a deadline for its request
head (against slowloris: aiohttp has none) and a lifetime, whatever it does. Every response
closes its connection, so a connection carries one request and its deadlines are that
request's."""

from __future__ import annotations

import asyncio
import re
from typing import Any, Protocol

from aiohttp import web

from probe.control.limits import LISTEN_BACKLOG

_END_OF_HEAD = re.compile(rb"\r?\n\r?\n")


class ConnectionDeadlines(asyncio.Protocol):
    """aiohttp's protocol for one connection, with two deadlines of our own (aiohttp has none
    for a request head that never ends): the head must be complete `header_timeout` seconds
    after the connection was accepted, and the connection is aborted `lifetime` seconds after
    it, whatever it is doing (every response closes its connection, so one connection carries
    one request)."""

    def __init__(self, inner: Any, header_timeout: float, lifetime: float) -> None:
        self.inner = inner
        self.header_timeout = header_timeout
        self.lifetime = lifetime
        self.transport: asyncio.Transport | None = None
        self._tail = b""
        self._head_done = False
        self._timers: list[asyncio.TimerHandle] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        loop = asyncio.get_running_loop()
        self._timers = [
            loop.call_later(self.header_timeout, self._head_deadline),
            loop.call_later(self.lifetime, self._abort),
        ]
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self._head_done:
            window = self._tail + data
            if _END_OF_HEAD.search(window):
                self._head_done = True
                self._timers[0].cancel()
            else:
                self._tail = window[-3:]
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        result: bool | None = self.inner.eof_received()
        return result

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in self._timers:
            timer.cancel()
        self.inner.connection_lost(exc)

    def _head_deadline(self) -> None:
        if not self._head_done:
            self._abort()

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class SiteDeadlines(Protocol):
    """What a site's connections are bounded by (`ControlServerConfig`, and the collector's
    configuration)."""

    @property
    def header_timeout(self) -> float: ...

    @property
    def connection_lifetime(self) -> float: ...


class ControlSite(web.BaseSite):
    """A TCP site whose connections have the control's deadlines (`ConnectionDeadlines`); the
    collector's site is the same."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, config: SiteDeadlines) -> None:
        super().__init__(runner, backlog=LISTEN_BACKLOG)
        self._host = host
        self._port = port
        self._config = config
        self._listening: asyncio.Server | None = None

    @property
    def name(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def port(self) -> int:
        server = self._listening
        if server is not None and server.sockets:
            return int(server.sockets[0].getsockname()[1])
        return self._port

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        header_timeout = self._config.header_timeout
        lifetime = self._config.connection_lifetime

        def protocol() -> asyncio.Protocol:
            return ConnectionDeadlines(server(), header_timeout, lifetime)

        self._listening = await loop.create_server(
            protocol, self._host, self._port, backlog=self._backlog, reuse_address=True
        )
        self._server = self._listening


async def start_site(
    runner: web.BaseRunner, host: str, port: int, deadlines: SiteDeadlines
) -> ControlSite:
    """Set up `runner` and listen on host:port (0: any free port); on failure the runner is
    cleaned up before the error goes on (the control's and the collector's `start_server`)."""
    await runner.setup()
    site = ControlSite(runner, host, port, deadlines)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return site
