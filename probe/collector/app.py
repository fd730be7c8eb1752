"""The collector's application: `GET /v1/health` and `POST /v1/records`, every error as JSON.

An upload is authorised (a bearer token from the tokens file names the volunteer group; none
needed without a tokens file) before it takes one of `max_concurrent_requests` slots (503
with Retry-After when none is free); its body is read within its deadline and its bounds
(`body`), each line checked in a worker thread (`records`), and the good records stored in
one durable transaction (`storage`) before the reply lists every line's outcome: `stored`,
`duplicate` (its content hash is known: a retry stores nothing twice) or `rejected` with the
reason. The request fails as a whole, storing nothing, only when it cannot be read (400,
408, 413, 415), is not authorised (401), or the disk is full (507)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
from aiohttp import web

from probe import __version__, results
from probe.collector.body import BodyError, Line, check_headers, read_lines
from probe.collector.config import CollectorConfig
from probe.collector.limits import MAX_REASON_CHARS, RETRY_AFTER_SECONDS
from probe.collector.records import Accepted, LineChecker
from probe.collector.storage import DiskFull, Storage, StorageError
from probe.collector.tokens import Tokens, load_tokens
from probe.control.logs import AcceptErrors, AccessLogger, ServerLogFilter
from probe.control.responses import json_error, json_errors, one_request_per_connection

log = logging.getLogger("probe.collector")

STORAGE = web.AppKey("storage", Storage)
COLLECTOR = web.AppKey("collector", object)


class Collector:
    """The state of one application: configuration, tokens, slots, line checker, storage."""

    def __init__(self, config: CollectorConfig, storage: Storage) -> None:
        self.config = config
        self.storage = storage
        self.tokens: Tokens | None = None
        if config.tokens_file is not None:
            self.tokens = load_tokens(config.tokens_file)
        self.busy = asyncio.Semaphore(config.max_concurrent_requests)
        self.checker = LineChecker(config.max_depth)
        self._accept_errors: AcceptErrors | None = None
        self._compactions: asyncio.Task[None] | None = None

    def reload_tokens(self) -> None:
        """Read the tokens file again (SIGHUP); a bad file keeps the tokens in use."""
        if self.config.tokens_file is None:
            return
        try:
            self.tokens = load_tokens(self.config.tokens_file)
        except (OSError, ValueError) as exc:
            log.warning("tokens not reloaded, the old ones stay in use: %s", exc)
            return
        log.info("tokens reloaded: %d", len(self.tokens.entries))

    async def health(self, request: web.Request) -> web.Response:
        body = {"status": "ok", "software_version": __version__, **self.storage.health()}
        return web.json_response(body)

    async def upload(self, request: web.Request) -> web.Response:
        group: str | None = None
        if self.tokens is not None:
            group = self.tokens.group_of(request.headers.get("Authorization", ""))
            if group is None:
                response = json_error(401, "missing or wrong bearer token")
                response.headers["WWW-Authenticate"] = 'Bearer realm="probe collector"'
                return response
        if self.busy.locked():
            response = json_error(503, "busy: try again later")
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return response
        async with self.busy:
            lines = await self.read_body(request)
            if isinstance(lines, web.Response):
                return lines
            checked = await asyncio.to_thread(self.check_lines, lines)
            records = [item for _, item in checked if isinstance(item, Accepted)]
            try:
                new = await self.storage.store(records, group)
            except DiskFull as exc:
                return json_error(507, f"{exc}: nothing of this request was stored")
            except StorageError as exc:
                return json_error(500, f"{exc}: nothing of this request was stored")
        return web.json_response(_reply(checked, new))

    async def read_body(self, request: web.Request) -> list[Line] | web.Response:
        config = self.config
        try:
            gzip = check_headers(request.headers, config.max_body_bytes)
            async with asyncio.timeout(config.body_timeout):
                return await read_lines(
                    request.content.iter_any(),
                    gzip=gzip,
                    max_body_bytes=config.max_body_bytes,
                    max_decoded_bytes=config.max_decoded_bytes,
                    max_records=config.max_records,
                    max_record_bytes=config.max_record_bytes,
                )
        except BodyError as exc:
            return json_error(exc.status, exc.message)
        except TimeoutError:
            return json_error(408, f"the body did not arrive within {config.body_timeout:g} s")
        except (ConnectionError, aiohttp.ClientPayloadError, web.HTTPException):
            return json_error(400, "the body was cut short")

    def check_lines(self, lines: list[Line]) -> list[tuple[int, Accepted | str]]:
        """Each line's record, or why it is rejected (in a worker thread)."""
        latest = results.latest_time()
        checked: list[tuple[int, Accepted | str]] = []
        for line in lines:
            if line.raw is None:
                reason: Accepted | str = f"record larger than {self.config.max_record_bytes} bytes"
            else:
                reason = self.checker.check(line.raw, latest)
            checked.append((line.number, reason))
        return checked

    async def on_startup(self, app: web.Application) -> None:
        await self.storage.open()
        loop = asyncio.get_running_loop()
        handler = AcceptErrors(loop.get_exception_handler())
        self._accept_errors = handler
        loop.set_exception_handler(handler)
        self._compactions = asyncio.create_task(self.storage.run_compactions())

    async def on_cleanup(self, app: web.Application) -> None:
        if self._compactions is not None:
            self._compactions.cancel()
            await asyncio.gather(self._compactions, return_exceptions=True)
        await self.storage.close()
        if self._accept_errors is not None:
            asyncio.get_running_loop().set_exception_handler(self._accept_errors.previous)


def _reply(checked: list[tuple[int, Accepted | str]], new: list[bool]) -> dict[str, Any]:
    lines: list[dict[str, Any]] = []
    counts = {"stored": 0, "duplicate": 0, "rejected": 0}
    fresh = iter(new)
    for number, item in checked:
        if isinstance(item, Accepted):
            status = "stored" if next(fresh) else "duplicate"
            lines.append({"line": number, "status": status, "sha256": item.sha256.hex()})
        else:
            status = "rejected"
            reason = item if len(item) <= MAX_REASON_CHARS else item[: MAX_REASON_CHARS - 1]
            lines.append({"line": number, "status": status, "reason": reason})
        counts[status] += 1
    return {**counts, "lines": lines}


def create_app(config: CollectorConfig) -> web.Application:
    """The aiohttp application of `probe collector serve`; its storage opens at startup
    (recovery, index) and compacts every pending record at cleanup."""
    app = web.Application(client_max_size=config.max_body_bytes, middlewares=[json_errors(log)])
    app.on_response_prepare.append(one_request_per_connection)
    storage = Storage(config)
    collector = Collector(config, storage)
    app[STORAGE] = storage
    app[COLLECTOR] = collector
    app.router.add_get("/v1/health", collector.health)
    app.router.add_post("/v1/records", collector.upload)
    app.on_startup.append(collector.on_startup)
    app.on_cleanup.append(collector.on_cleanup)
    return app


def runner_options(config: CollectorConfig) -> dict[str, Any]:
    """How aiohttp runs the collector: access log and aiohttp's own lines without client
    addresses (unless asked), rate-limited; a client's disconnect cancels its request; bodies
    are never decompressed by aiohttp (we do it, bounded)."""

    class ConfiguredAccessLogger(AccessLogger):
        with_addresses = config.log_client_addresses

    server_log = logging.Logger("probe.collector.server")
    server_log.parent = log
    server_log.addFilter(ServerLogFilter(hide_addresses=not config.log_client_addresses))
    return {
        "access_log_class": ConfiguredAccessLogger,
        "access_log": logging.getLogger("probe.collector.access"),
        "logger": server_log,
        "handler_cancellation": True,
        "lingering_time": 2.0,
        "auto_decompress": False,
    }
