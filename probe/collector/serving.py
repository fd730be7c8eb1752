"""`probe collector serve`: the collector in the foreground until SIGINT or SIGTERM (then every
pending record is compacted into Parquet before it exits); SIGHUP reads the tokens file
again. The site is the control's (`ControlSite`): every connection has a deadline for its
request head and a lifetime, whatever it does."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from probe.collector.app import COLLECTOR, Collector, create_app, runner_options
from probe.collector.config import CollectorConfig
from probe.control.connections import ControlSite, start_site
from probe.control.limits import WANTED_OPEN_FILES

log = logging.getLogger("probe.collector")


def make_runner(config: CollectorConfig) -> web.AppRunner:
    """The runner of the collector's application, as `serve` runs it."""
    return web.AppRunner(create_app(config), handle_signals=False, **runner_options(config))


async def start_server(
    config: CollectorConfig, host: str, port: int
) -> tuple[web.AppRunner, ControlSite]:
    """The collector listening on host:port (0: any free port), its storage open; stop it
    with `await runner.cleanup()` (which compacts every pending record)."""
    runner = make_runner(config)
    return runner, await start_site(runner, host, port, config)


def serve(config: CollectorConfig, host: str, port: int) -> None:
    """Run the collector until SIGINT or SIGTERM."""
    from probe.round.runner import raise_open_file_limit

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    open_files = raise_open_file_limit(WANTED_OPEN_FILES)
    asyncio.run(_serve(config, host, port, open_files))


async def _serve(config: CollectorConfig, host: str, port: int, open_files: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner, site = await start_server(config, host, port)
    collector = runner.app[COLLECTOR]
    assert isinstance(collector, Collector)
    loop.add_signal_handler(signal.SIGHUP, collector.reload_tokens)
    log.info(
        "serving %s on %s (tokens: %s; open files: %d)",
        config.directory,
        site.name,
        "none, anyone may upload" if collector.tokens is None else len(collector.tokens.entries),
        open_files,
    )
    try:
        await stop.wait()
    finally:
        log.info("stopping: compacting pending records")
        loop.remove_signal_handler(signal.SIGHUP)
        await runner.cleanup()
        log.info("stopped")
