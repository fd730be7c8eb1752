"""The control's logs: an access log without client addresses (unless the operator asks for
them), aiohttp's own lines about clients rate-limited and without addresses, and failed accepts
(no file descriptor free) as one line a minute. A client must not be able to flood the log or
get its address written."""

from __future__ import annotations

import asyncio
import errno
import logging
import math
import time
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from probe.addresses import parse_ip
from probe.control.config import ControlServerConfig
from probe.control.limits import LOG_BURST, LOG_WINDOW

log = logging.getLogger("probe.control")


class AccessLogger(AbstractAccessLogger):
    """Method, path, status and duration; the client's address only when asked for."""

    with_addresses = False

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        who = f"{request.remote} " if self.with_addresses else ""
        self.logger.info(
            "%s%s %s %s %.3fs", who, request.method, request.path, response.status, time
        )


class ServerLogFilter(logging.Filter):
    """For aiohttp's own log lines about clients ("Error handling request from <address>" for
    malformed HTTP, and the like): every IP address among a record's arguments is replaced
    unless addresses are wanted, and at most `burst` lines per `window` seconds pass (a client
    can cause them at will); the first line after a held-back spell says how many were held."""

    def __init__(
        self, *, hide_addresses: bool, burst: int = LOG_BURST, window: float = LOG_WINDOW
    ) -> None:
        super().__init__()
        self.hide_addresses = hide_addresses
        self.burst = burst
        self.window = window
        self._start = -math.inf
        self._count = 0
        self.held = 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        held_before = 0
        if now - self._start >= self.window:
            held_before = self.held
            self._start, self._count, self.held = now, 0, 0
        self._count += 1
        if self._count > self.burst:
            self.held += 1
            return False
        args = record.args
        if self.hide_addresses and isinstance(args, tuple) and any(map(_is_address, args)):
            record.args = tuple("-" if _is_address(a) else a for a in args)
        if held_before:
            record.msg = (
                f"{record.getMessage()} ({held_before} similar lines held back"
                f" in the last {self.window:g} s)"
            )
            record.args = None
        return True


def _is_address(value: object) -> bool:
    if isinstance(value, tuple) and value:
        value = value[0]  # a peername
    return isinstance(value, str) and parse_ip(value) is not None


_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class AcceptErrors:
    """The event loop's exception handler while the control runs: "socket.accept() out of
    system resource" (no file descriptor free: asyncio retries every second and would log a
    traceback each time) becomes one line per `window` seconds with a count; everything else
    goes to the handler that was there before."""

    def __init__(self, previous: Any, window: float = LOG_WINDOW) -> None:
        self.previous = previous
        self.window = window
        self._last = -math.inf
        self.count = 0
        self.logged = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        message = str(context.get("message", ""))
        if isinstance(exc, OSError) and exc.errno in _RESOURCE_ERRNOS and "accept" in message:
            self._accept_failed(loop, exc)
        elif self.previous is not None:
            self.previous(loop, context)
        else:
            loop.default_exception_handler(context)

    def _accept_failed(self, loop: asyncio.AbstractEventLoop, exc: OSError) -> None:
        self.count += 1
        now = loop.time()
        if now - self._last < self.window:
            return
        self._last = now
        self.logged += 1
        log.warning(
            "cannot accept connections: %s (%d time(s) since the last such line;"
            " this line repeats at most every %g s)",
            exc.strerror or errno.errorcode.get(exc.errno or 0, "?"),
            self.count,
            self.window,
        )
        self.count = 0


def server_logger(config: ControlServerConfig) -> logging.Logger:
    """aiohttp's logger for this server: a child of `probe.control` with its own filter (so
    that every runner has its own rate limit and address policy)."""
    logger = logging.Logger("probe.control.server")
    logger.parent = log
    logger.addFilter(ServerLogFilter(hide_addresses=not config.log_client_addresses))
    return logger


def runner_options(config: ControlServerConfig) -> dict[str, Any]:
    """How aiohttp runs the control: our access log and server logger (client addresses only
    with `log_client_addresses`, error paths included), a client's disconnect cancels its
    request, and a response drains at most 2 s of an unread body."""

    class ConfiguredAccessLogger(AccessLogger):
        with_addresses = config.log_client_addresses

    return {
        "access_log_class": ConfiguredAccessLogger,
        "access_log": logging.getLogger("probe.control.access"),
        "logger": server_logger(config),
        "handler_cancellation": True,
        "lingering_time": 2.0,
    }
