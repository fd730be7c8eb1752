"""`Observations`: everything measured for one target, list by list as a record holds them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from probe.observations.connections import TCPConnect, TLSHandshake
from probe.observations.dns import DNSQuery
from probe.observations.events import NetworkEvent
from probe.observations.http import HTTPTransaction
from probe.observations.mtproto import MTProtoHandshake
from probe.observations.stun import StunCheck


def _items(d: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = d.get(key)
    return [x for x in value if isinstance(x, dict)] if isinstance(value, list) else []


@dataclass(slots=True)
class Observations:
    """Everything measured for one target (by the probe, or by the control for it)."""

    queries: list[DNSQuery] = field(default_factory=list)
    tcp_connect: list[TCPConnect] = field(default_factory=list)
    tls_handshakes: list[TLSHandshake] = field(default_factory=list)
    requests: list[HTTPTransaction] = field(default_factory=list)
    network_events: list[NetworkEvent] = field(default_factory=list)
    mtproto: list[MTProtoHandshake] = field(default_factory=list)
    #: QUIC handshakes (OONI's `quic_handshakes`: TLS handshakes whose network is "quic")
    quic_handshakes: list[TLSHandshake] = field(default_factory=list)
    #: STUN Binding transactions (our own `x_stun`: targets with `stun_port`)
    stun: list[StunCheck] = field(default_factory=list)

    def extend(self, other: Observations) -> None:
        self.queries.extend(other.queries)
        self.tcp_connect.extend(other.tcp_connect)
        self.tls_handshakes.extend(other.tls_handshakes)
        self.requests.extend(other.requests)
        self.network_events.extend(other.network_events)
        self.mtproto.extend(other.mtproto)
        self.quic_handshakes.extend(other.quic_handshakes)
        self.stun.extend(other.stun)

    def without_extras(self) -> Observations:
        """The target's own observations: without the extra connections a failed handshake
        led to (`x_purpose`: SNI swap, neutral server, residual samples) and their events.
        The analysis judges the target on these; probe.analysis.sni_swap reads the rest."""
        extra = {c.transaction_id for c in self.tcp_connect if c.x_purpose is not None}
        extra |= {h.transaction_id for h in self.tls_handshakes if h.x_purpose is not None}
        if not extra:
            return self
        return Observations(
            queries=self.queries,
            tcp_connect=[c for c in self.tcp_connect if c.x_purpose is None],
            tls_handshakes=[h for h in self.tls_handshakes if h.x_purpose is None],
            requests=self.requests,
            network_events=[e for e in self.network_events if e.transaction_id not in extra],
            mtproto=self.mtproto,
            quic_handshakes=self.quic_handshakes,
            stun=self.stun,
        )

    def to_dict(self) -> dict[str, Any]:
        """OONI's lists; `quic_handshakes` and `x_stun` only when a QUIC handshake or a STUN
        transaction was made (most targets make none, and records of earlier versions have no
        such list)."""
        out = {
            "queries": [q.to_dict() for q in self.queries],
            "tcp_connect": [c.to_dict() for c in self.tcp_connect],
            "tls_handshakes": [h.to_dict() for h in self.tls_handshakes],
            "requests": [r.to_dict() for r in self.requests],
            "network_events": NetworkEvent.to_dicts(self.network_events),
            "mtproto": [m.to_dict() for m in self.mtproto],
        }
        if self.quic_handshakes:
            out["quic_handshakes"] = [h.to_dict() for h in self.quic_handshakes]
        if self.stun:
            out["x_stun"] = [c.to_dict() for c in self.stun]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Observations:
        return cls(
            queries=[DNSQuery.from_dict(x) for x in _items(d, "queries")],
            tcp_connect=[TCPConnect.from_dict(x) for x in _items(d, "tcp_connect")],
            tls_handshakes=[TLSHandshake.from_dict(x) for x in _items(d, "tls_handshakes")],
            requests=[HTTPTransaction.from_dict(x) for x in _items(d, "requests")],
            network_events=[NetworkEvent.from_dict(x) for x in _items(d, "network_events")],
            mtproto=[MTProtoHandshake.from_dict(x) for x in _items(d, "mtproto")],
            quic_handshakes=[TLSHandshake.from_dict(x) for x in _items(d, "quic_handshakes")],
            stun=[StunCheck.from_dict(x) for x in _items(d, "x_stun")],
        )
