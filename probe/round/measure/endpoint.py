"""A flow's input and its observation sink, and the connection steps every flow starts with.

An `Endpoint` is a frozen value: the address and port, the target, and what to ask for there
(TLS and its server name, the URL). A `Flow` is what one flow's steps share: the round's state,
the flow's trace (one transaction id), and the sink its observations go to. A step takes
(endpoint, flow), adds each observation to the flow once it is final, and returns its result.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from probe.observations import (
    DNSQuery,
    HTTPTransaction,
    MTProtoHandshake,
    NetworkEvent,
    Observations,
    TCPConnect,
    TLSHandshake,
    Trace,
    format_address,
)
from probe.round.measure.config import MeasureConfig, RunState, http_receive_buffer
from probe.steps import tls, tls_context
from probe.steps.tcp import ByteStream, SocketStream, tcp_connect
from probe.targets import Target
from probe.urls import url_parts


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One flow's input: where to connect and what to ask for there. A redirect leads to a new
    `Endpoint` (`Endpoint.for_url`)."""

    ip: str
    port: int
    target: Target
    #: a TLS handshake on the connection, asking for `server_name` (SNI), trusting `ca_files`
    tls: bool = False
    server_name: str = ""
    ca_files: tuple[str, ...] = ()
    #: http(s): the URL fetched here (a redirect's after the first hop)
    url: str | None = None
    #: the socket's receive buffer (`http_receive_buffer`); None: the kernel's
    receive_buffer: int | None = None

    @classmethod
    def of(cls, target: Target, ip: str, port: int, config: MeasureConfig) -> Endpoint:
        """The first endpoint of `target`'s flow to ip:port."""
        if target.check in ("http", "https"):
            assert target.url is not None
            return cls.for_url(target, target.url, ip, port, config)
        return cls(
            ip,
            port,
            target,
            tls=target.check == "tls",
            server_name=target.sni or target.hostname,
            ca_files=ca_files(target, config),
        )

    @classmethod
    def for_url(
        cls, target: Target, url: str, ip: str, port: int, config: MeasureConfig
    ) -> Endpoint:
        """Fetching `url` from ip:port: TLS for https, with the URL's host as server name."""
        parts = url_parts(url)
        return cls(
            ip,
            port,
            target,
            tls=parts.split.scheme == "https",
            server_name=parts.hostname or "",
            ca_files=ca_files(target, config),
            url=url,
            receive_buffer=http_receive_buffer(config.body_cap),
        )

    @property
    def address(self) -> str:
        return format_address(self.ip, self.port)


def ca_files(target: Target, config: MeasureConfig) -> tuple[str, ...]:
    """The roots a handshake trusts besides the system's: --ca-file, then the target's `ca`."""
    return config.ca_files + ((target.ca,) if target.ca else ())


Observation = (
    DNSQuery | TCPConnect | TLSHandshake | HTTPTransaction | MTProtoHandshake | NetworkEvent
)

#: the list of `Observations` that holds each kind of observation
_LIST_OF: dict[type, str] = {
    DNSQuery: "queries",
    TCPConnect: "tcp_connect",
    TLSHandshake: "tls_handshakes",
    HTTPTransaction: "requests",
    MTProtoHandshake: "mtproto",
    NetworkEvent: "network_events",
}


class Flow:
    """What the steps of one flow share: the round's state, the flow's trace (one transaction
    id), and the sink its observations go to (`add`, read back as `observations`)."""

    __slots__ = ("observations", "state", "timeout", "tls_failure", "trace", "zero")

    def __init__(self, state: RunState, zero: float) -> None:
        self.state = state
        self.zero = zero
        #: each step's timeout (the round's), in seconds
        self.timeout = state.config.timeout
        self.trace = Trace(zero, state.next_transaction_id())
        self.observations = Observations()
        #: the flow's first failed TLS handshake and its endpoint, for the SNI swap after the
        #: flow (sni_swap.py); kept only when the round asks for the swap
        self.tls_failure: tuple[Endpoint, TLSHandshake] | None = None

    def add(self, observation: Observation) -> None:
        """Record a final observation (appended to its list in `observations`)."""
        getattr(self.observations, _LIST_OF[type(observation)]).append(observation)

    def add_all(self, observations: Iterable[Observation]) -> None:
        for observation in observations:
            self.add(observation)

    def observed(self) -> Observations:
        """What the flow observed, its trace's network events last."""
        self.observations.network_events.extend(self.trace.events)
        return self.observations


async def connect(endpoint: Endpoint, flow: Flow) -> SocketStream | None:
    """TCP connect to the endpoint; None when it failed."""
    config = flow.state.config
    result = await tcp_connect(
        endpoint.ip,
        endpoint.port,
        trace=flow.trace,
        timeout=config.timeout,
        source_address=config.source_address,
        counter=flow.state.counter,
        receive_buffer=endpoint.receive_buffer,
    )
    flow.observations.tcp_connect.append(result.observation)  # (flow.add, without its lookup)
    return result.stream


async def open_stream(endpoint: Endpoint, flow: Flow) -> ByteStream | None:
    """TCP connect, then a TLS handshake when the endpoint asks for one; None when either
    failed."""
    stream = await connect(endpoint, flow)
    if stream is None or not endpoint.tls:
        return stream
    result = await tls.tls_handshake(
        stream,
        endpoint.server_name,
        trace=flow.trace,
        timeout=flow.timeout,
        context=tls_context.client_context(endpoint.ca_files),
    )
    flow.observations.tls_handshakes.append(result.observation)
    if result.stream is None:
        if flow.tls_failure is None and flow.state.config.neutral_sni is not None:
            flow.tls_failure = (endpoint, result.observation)
        await stream.aclose()
        return None
    return result.stream
