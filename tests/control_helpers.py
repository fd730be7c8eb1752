"""Start the real control server (aiohttp) on loopback for tests."""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import AsyncIterator

from aiohttp import web

from probe.control import ControlServerConfig, create_app
from probe.measure import MeasureConfig


@contextlib.asynccontextmanager
async def running_control(
    *,
    allow_nets: tuple[str, ...] = ("127.0.0.0/8",),
    token: str | None = None,
    resolver: tuple[str, int] | None = None,
    source_address: str | None = "127.0.0.3",
    timeout: float = 2.0,
    max_concurrent: int = 4,
    ca_files: tuple[str, ...] = (),
    geoip_dbs: tuple[str, ...] = (),
    host: str = "127.0.0.1",
) -> AsyncIterator[str]:
    """Yields the control's base URL; the control measures from `source_address`."""
    config = ControlServerConfig(
        measure=MeasureConfig(
            timeout=timeout,
            resolver=resolver,
            source_address=source_address,
            ca_files=ca_files,
        ),
        allow_nets=tuple(ipaddress.ip_network(n) for n in allow_nets),
        token=token,
        geoip_dbs=geoip_dbs,
        max_concurrent_requests=max_concurrent,
    )
    runner = web.AppRunner(create_app(config))
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()
