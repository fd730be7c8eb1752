"""Start the real control server (aiohttp) on loopback for tests."""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import AsyncIterator
from typing import Any

from probe.control import ControlServerConfig, start_server
from probe.round.measure import MeasureConfig


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
    log_client_addresses: bool = False,
    **limits: Any,
) -> AsyncIterator[str]:
    """Yields the control's base URL; the control measures from `source_address`. `limits` are
    further `ControlServerConfig` fields (header_timeout, body_timeout, request_timeout,
    max_reply_bytes, ...)."""
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
        log_client_addresses=log_client_addresses,
        **limits,
    )
    # the same runner, site and connection deadlines as `probe control serve`
    runner, site = await start_server(config, host, 0)
    shown = f"[{host}]" if ":" in host else host
    try:
        yield f"http://{shown}:{site.port}"
    finally:
        await runner.cleanup()
