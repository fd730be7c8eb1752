"""The round's companions: the control (or its DNS-over-HTTPS fallback) and the discovery of
the public address, which run alongside the measurements of a round.

Neither measures a target: the control's observations (or DoH answers) land in the round's
`ControlOutcome`, the address in its `VantageState` (to scrub from the records and to say where
the probe stands). Each sets its event when done, however it ended; the round writes no record
before `ready()` returns. The orchestration itself lives in `probe.round.runner`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from probe import failures
from probe.round.measure import RunState
from probe.round.records import ControlOutcome
from probe.targets import Target
from probe.vantage.facts import VantageState

if TYPE_CHECKING:
    from probe.round.runner import RoundOptions


class Companions:
    """The control and the address discovery of one round (see the module's docstring)."""

    def __init__(
        self,
        options: RoundOptions,
        targets: Sequence[Target],
        control: ControlOutcome,
        vantage_state: VantageState,
    ) -> None:
        self.options = options
        self.targets = targets
        self.control = control
        self.vantage_state = vantage_state
        self._control_ready = asyncio.Event()
        self._address_ready = asyncio.Event()

    async def ready(self) -> None:
        """Wait until the control has answered (or failed) and the address is known (or not)."""
        await self._control_ready.wait()
        await self._address_ready.wait()

    async def run_control(self, state: RunState) -> None:
        """Ask the control servers; when none answers, DoH is the DNS-only control."""
        try:
            if self.options.control_urls:
                await self._ask_control(state)
            if (
                not self.control.reachable
                and state.config.resolver is None
                and self.options.doh_urls
            ):
                await self._doh_fallback(state)
        except asyncio.CancelledError:
            if not self.control.reachable and self.options.control_urls:
                self.control.failure = failures.INTERRUPTED
            raise
        finally:
            self.vantage_state.control_answered(self.control.reachable)
            self._control_ready.set()

    async def _ask_control(self, state: RunState) -> None:
        from probe import control  # aiohttp: imported only when a control is used

        client = control.ControlClient(
            self.options.control_urls,
            token=self.options.control_token,
            timeout=control.client_timeout(state.config.timeout),
            resolver=state.resolver,
            source_address=state.config.source_address,
            counter=state.counter,
        )
        reply = await client.measure(self.targets)
        self.control.observations = reply.observations
        self.control.failure = reply.failure
        self.control.reachable = reply.failure is None
        echo = reply.client
        if echo is not None:
            self.vantage_state.control_echo(echo.ip, echo.asn, echo.cc, echo.network_name)
        if reply.neutral_quic_port and reply.url and any(t.quic for t in self.targets):
            await self._neutral_quic(state, reply.url, reply.neutral_quic_port)

    async def _neutral_quic(self, state: RunState, url: str, port: int) -> None:
        """One QUIC handshake to the control's neutral endpoint (same host as the control
        that answered, certificate not checked): did UDP/QUIC get through at all?"""
        from urllib.parse import urlsplit

        from probe.observations import Trace
        from probe.steps.quic import quic_handshake

        host = urlsplit(url).hostname or ""
        trace = Trace(0.0, 0)
        resolution = await state.resolver.resolve(host, trace=trace, timeout=state.config.timeout)
        if not resolution.addresses:
            return  # no address, no evidence either way
        observation = await quic_handshake(
            resolution.addresses[0], port, host, trace=trace, timeout=state.config.timeout,
            source_address=state.config.source_address, verify=False,
        )  # fmt: skip
        self.vantage_state.neutral_quic(observation.failure is None)

    async def _doh_fallback(self, state: RunState) -> None:
        """No control answered: DNS over HTTPS to public resolvers is the DNS-only control."""
        from probe import control

        names = sorted({t.hostname for t in self.targets if t.hostname})
        self.control.doh = await control.doh_control(names, state, self.options.doh_urls)

    async def discover_address(self, state: RunState) -> None:
        """Learn our public address without a control (vantage, publicip). Records wait for
        this (a few seconds at most)."""
        try:
            await self.vantage_state.discover_address(
                state,
                self.targets,
                enabled=self.options.ip_discovery,
                stun_servers=self.options.stun_servers,
                echo_urls=self.options.echo_urls,
            )
        finally:
            self._address_ready.set()
