"""`probe control serve`: the control server in the foreground until SIGINT or SIGTERM, with the
open-file limit raised and the deadlines it runs with logged."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal

from probe.control.config import ControlServerConfig
from probe.control.limits import WANTED_OPEN_FILES
from probe.control.server import start_server

log = logging.getLogger("probe.control")


def serve(
    config: ControlServerConfig,
    host: str,
    port: int,
    *,
    log_addresses: bool = False,
    neutral_tls_port: int | None = None,
) -> None:
    """Run the control server (and, with `neutral_tls_port`, the neutral TLS server on the
    same host: probe/control/neutral_tls.py) until SIGINT or SIGTERM."""
    from probe.round.runner import raise_open_file_limit

    if log_addresses and not config.log_client_addresses:
        config = dataclasses.replace(config, log_client_addresses=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    open_files = raise_open_file_limit(WANTED_OPEN_FILES)
    asyncio.run(_serve(config, host, port, open_files, neutral_tls_port))


async def _serve(
    config: ControlServerConfig,
    host: str,
    port: int,
    open_files: int,
    neutral_tls_port: int | None = None,
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner, site = await start_server(config, host, port)
    neutral = None
    if config.neutral_quic_port is not None:
        from probe.control.neutral_quic import start_neutral_quic

        neutral = await start_neutral_quic(host, config.neutral_quic_port)
        log.info("neutral QUIC endpoint on UDP port %d", config.neutral_quic_port)
    neutral_tls = None
    if neutral_tls_port is not None:
        from probe.control.neutral_tls import start_neutral_tls

        try:
            neutral_tls = await start_neutral_tls(host, neutral_tls_port)
        except BaseException:
            if neutral is not None:
                neutral.close()
            await runner.cleanup()
            raise
        log.info("neutral TLS server on %s port %d", host, neutral_tls_port)
    log.info(
        "serving on %s (open files: %d; deadlines: head %g s, body %g s, measurement %g s)",
        site.name,
        open_files,
        config.header_timeout,
        config.body_timeout,
        config.measure_deadline,
    )
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        if neutral is not None:
            neutral.close()
        if neutral_tls is not None:
            neutral_tls.close()
        await runner.cleanup()
