"""`MTProxyCheck`: one check of a user-supplied MTProxy (`probe proxy check`), our own format.

No field holds the proxy's secret, in any encoding: the record names the proxy by
``server:port`` and its kind only (docs/mtproxy.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from probe.observations.connections import TCPConnect
from probe.observations.dns import DNSQuery
from probe.observations.events import NetworkEvent
from probe.observations.mtproto import MTProtoHandshake


@dataclass(slots=True)
class MTProxyAttempt:
    """One address of the proxy: connect, (fake-TLS hello,) req_pq_multi through the proxy."""

    address: str  # "ip:port"
    success: bool = False
    failure: str | None = None
    failed_operation: str | None = None
    #: fake-TLS only: the server's hello carried the secret's HMAC (None: not that far / not TLS)
    fake_tls_verified: bool | None = None
    #: hex of the first bytes received when they were not the proxy's protocol
    first_bytes: str | None = None
    mtproto: MTProtoHandshake | None = None
    t0: float = 0.0
    t: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "success": self.success,
            "failure": self.failure,
            "failed_operation": self.failed_operation,
            "fake_tls_verified": self.fake_tls_verified,
            "first_bytes": self.first_bytes,
            "mtproto": self.mtproto.to_dict() if self.mtproto is not None else None,
            "t0": self.t0,
            "t": self.t,
        }


@dataclass(slots=True)
class MTProxyCheck:
    """Everything one proxy link's check saw. `kind` is plain | padded | fake_tls."""

    proxy: str  # "server:port" from the link
    kind: str
    sni: str | None = None  # fake-TLS: the domain our ClientHello named (visible on the wire)
    dc: int = 2
    queries: list[DNSQuery] = field(default_factory=list)
    tcp_connect: list[TCPConnect] = field(default_factory=list)
    attempts: list[MTProxyAttempt] = field(default_factory=list)
    network_events: list[NetworkEvent] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return any(attempt.success for attempt in self.attempts)

    @property
    def failure(self) -> str | None:
        """The first address's failure (a name that did not resolve: the DNS failure)."""
        if self.success:
            return None
        if self.attempts:
            return self.attempts[0].failure
        return next((q.failure for q in self.queries if q.failure), "dns_no_answer")

    def to_dict(self) -> dict[str, Any]:
        return {
            "proxy": self.proxy,
            "kind": self.kind,
            "sni": self.sni,
            "dc": self.dc,
            "success": self.success,
            "failure": self.failure,
            "queries": [q.to_dict() for q in self.queries],
            "tcp_connect": [c.to_dict() for c in self.tcp_connect],
            "attempts": [a.to_dict() for a in self.attempts],
            "network_events": NetworkEvent.to_dicts(self.network_events),
        }
