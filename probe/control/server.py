"""The control server's application: `/v1/health` and `/v1/measure`, every error as JSON. A
measure request is authorised, its body read within its deadline before it takes one of the
`max_concurrent_requests` slots, its targets measured with `probe.round.measure` under the request's
deadline (a client that goes away cancels them), and each result bounded as soon as it is
made."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
from aiohttp import web

from probe import __version__, failures
from probe.control.config import ControlServerConfig
from probe.control.connections import ControlSite, start_site
from probe.control.guard import literal_of, make_address_guard, redact_refused
from probe.control.limits import MAX_REPLY_BYTES_PER_TARGET
from probe.control.logs import AcceptErrors, runner_options
from probe.control.replies import (
    RESULT_OVERHEAD,
    ReplyBudget,
    bounded_result,
    dump,
    reply_head,
    reply_rest,
)
from probe.control.request import BadRequest, parse_targets
from probe.control.responses import json_error, json_errors, one_request_per_connection
from probe.observations import Observations
from probe.round.measure import MeasureConfig, RunState, measure_target
from probe.steps import dns
from probe.targets import Target
from probe.vantage.geoip import GeoIP

log = logging.getLogger("probe.control")


class _Control:
    """The state of one application: its configuration, slots, GeoIP databases and resolver
    pool, and its handlers."""

    def __init__(self, config: ControlServerConfig) -> None:
        self.config = config
        self.busy = asyncio.Semaphore(config.max_concurrent_requests)
        self.refuse = make_address_guard(config.allow_nets)
        self.measure_config = MeasureConfig(
            timeout=config.measure.timeout,
            resolver=config.measure.resolver,
            ca_files=config.measure.ca_files,
            body_cap=config.measure.body_cap,
            source_address=config.measure.source_address,
            concurrency=config.measure.concurrency,
            refuse_address=self.refuse,
        )
        self.geoip = GeoIP(config.geoip_dbs)
        self.pool = dns.GetaddrinfoPool()
        self.deadline = config.measure_deadline
        self.accept_errors: list[AcceptErrors] = []

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "software_version": __version__})

    def authorised(self, request: web.Request) -> bool:
        if self.config.token is None:
            return True
        header = request.headers.get("Authorization", "")
        expected = f"Bearer {self.config.token}"
        return (
            hashlib.sha256(header.encode()).digest() == hashlib.sha256(expected.encode()).digest()
        )

    async def measure(self, request: web.Request) -> web.Response:
        if not self.authorised(request):
            return json_error(401, "missing or wrong bearer token")
        targets = await self.read_targets(request)
        if isinstance(targets, web.Response):
            return targets
        if self.busy.locked():
            response = json_error(503, "saturated: try again later")
            response.headers["Retry-After"] = "30"
            return response
        head = reply_head(
            __version__, self.client_facts(request.remote or ""), self.config.neutral_quic_port
        )
        budget = ReplyBudget(targets, self.config.max_reply_bytes, len(head) + RESULT_OVERHEAD)
        async with self.busy:
            results = await self.measure_targets(targets, budget)
        text = head + reply_rest(targets, results, budget, self.deadline)
        return web.Response(text=text, content_type="application/json")

    async def read_targets(self, request: web.Request) -> list[Target] | web.Response:
        """The request's targets, or the error response. The body is read, within its
        deadline, before a slot is taken: a client that sends slowly holds its own
        connection, never a slot."""
        config = self.config
        try:
            async with asyncio.timeout(config.body_timeout):
                raw = await request.read()
        except TimeoutError:
            return json_error(408, f"the body did not arrive within {config.body_timeout:g} s")
        except web.HTTPRequestEntityTooLarge:
            return json_error(413, f"request larger than {config.max_request_bytes} bytes")
        except (ConnectionError, aiohttp.ClientPayloadError):
            return json_error(400, "the body was cut short")
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            return json_error(400, "the body is not JSON")
        try:
            return parse_targets(body, config.max_targets)
        except BadRequest as exc:
            return json_error(400, str(exc))
        except (ValueError, TypeError, RecursionError):
            return json_error(400, "malformed targets")

    def client_facts(self, client_ip: str) -> dict[str, Any]:
        """What the reply tells the caller about itself (the echo)."""
        info = self.geoip.lookup(client_ip)
        return {"ip": client_ip, "asn": info.asn, "cc": info.cc, "network_name": info.as_org_name}

    async def measure_targets(
        self, targets: Sequence[Target], budget: ReplyBudget
    ) -> list[str | None]:
        """Each target's bounded result (None: unfinished at the deadline)."""
        config = self.measure_config
        resolver = dns.Resolver(
            config.resolver, pool=self.pool, source_address=config.source_address
        )
        state = RunState(config=config, resolver=resolver)

        def finish(index: int, target: Target, observations: Observations) -> str:
            redact_refused(observations, self.refuse, literal_of(target))
            self.geoip.annotate(observations.queries)
            text, cut = bounded_result(target.id, observations, MAX_REPLY_BYTES_PER_TARGET)
            return budget.admit(index, target.id, text, cut)

        return await measure_all(targets, state, self.deadline, finish)

    async def on_startup(self, app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        handler = AcceptErrors(loop.get_exception_handler())
        self.accept_errors.append(handler)
        loop.set_exception_handler(handler)

    async def on_cleanup(self, app: web.Application) -> None:
        if self.accept_errors:
            asyncio.get_running_loop().set_exception_handler(self.accept_errors.pop().previous)
        self.pool.close()
        self.geoip.close()


def create_app(config: ControlServerConfig) -> web.Application:
    """The aiohttp application of `probe control serve`."""
    app = web.Application(client_max_size=config.max_request_bytes, middlewares=[json_errors(log)])
    app.on_response_prepare.append(one_request_per_connection)
    control = _Control(config)
    app.router.add_get("/v1/health", control.health)
    app.router.add_post("/v1/measure", control.measure)
    app.on_startup.append(control.on_startup)
    app.on_cleanup.append(control.on_cleanup)
    return app


async def measure_all(
    targets: Sequence[Target],
    state: RunState,
    deadline: float,
    finish: Callable[[int, Target, Observations], str],
) -> list[str | None]:
    """Each target's result as `finish` makes it as soon as the target is measured (so that
    only targets in flight hold their full observations); None for a target still running at
    `deadline` (it is cancelled). Leaving early (the client went away) cancels them all."""
    results: list[str | None] = [None] * len(targets)

    async def one(index: int, target: Target) -> None:
        try:
            observations = await measure_target(target, state)
            results[index] = finish(index, target, observations)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("measuring target %d of a request failed", index)
            results[index] = dump(
                {"id": target.id, "failure": failures.UNKNOWN_PREFIX + "internal error"}
            )

    tasks = [asyncio.create_task(one(i, t)) for i, t in enumerate(targets)]
    try:
        await asyncio.wait(tasks, timeout=deadline)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return results


def make_runner(config: ControlServerConfig) -> web.AppRunner:
    """The runner of the control's application, as `serve` runs it."""
    return web.AppRunner(create_app(config), handle_signals=False, **runner_options(config))


async def start_server(
    config: ControlServerConfig, host: str, port: int
) -> tuple[web.AppRunner, ControlSite]:
    """The control listening on host:port (0: any free port), as `serve` runs it; stop it with
    `await runner.cleanup()`."""
    runner = make_runner(config)
    return runner, await start_site(runner, host, port, config)
