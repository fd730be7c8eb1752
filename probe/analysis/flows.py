"""Observations grouped per endpoint flow (`Flow`), and the control's view of the same endpoint
(`ControlView`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from probe import failures
from probe.analysis.common import norm_ip, split_address, url_endpoint, was_measured
from probe.observations import (
    HTTPTransaction,
    MTProtoHandshake,
    Observations,
    TCPConnect,
    TLSHandshake,
    format_address,
)
from probe.observations.http import REDIRECT_CODES

# --- flows: one endpoint's observations -----------------------------------------------------


@dataclass(slots=True)
class Flow:
    """The steps of one endpoint flow, in order: grouped by transaction id (ours: one per
    address and port) or, when a record has none, by address."""

    origin: tuple[str, int] | None = None
    tcp: list[TCPConnect] = field(default_factory=list)
    tls: list[TLSHandshake] = field(default_factory=list)
    requests: list[HTTPTransaction] = field(default_factory=list)
    mtproto: list[MTProtoHandshake] = field(default_factory=list)

    def origin_address(self) -> str | None:
        return format_address(*self.origin) if self.origin else None

    def origin_tcp(self) -> TCPConnect | None:
        """The connect to the origin: a successful one if any (MTProto connects once per
        transport), else the first failure."""
        mine = [c for c in self.tcp if self.origin and (norm_ip(c.ip), c.port) == self.origin]
        for connect in mine:
            if connect.success:
                return connect
        return mine[0] if mine else None

    def origin_tls(self) -> TLSHandshake | None:
        """The handshake on the origin: a verified success if any (retries are judged
        together), else any success, else the first failure."""
        address = self.origin_address()
        mine = [
            h for h in self.tls if split_address(h.address) == self.origin or h.address == address
        ]
        if not mine:  # older OONI data records no address
            mine = [h for h in self.tls if split_address(h.address) is None]
        for handshake in mine:
            if handshake.failure is None and not handshake.no_tls_verify:
                return handshake
        for handshake in mine:
            if handshake.failure is None:
                return handshake
        return mine[0] if mine else None

    def hop_failure(self) -> tuple[str | None, str] | None:
        """The last later hop of a redirect chain that could not be opened (connect or
        handshake failed) and was not opened on another try either."""
        found: tuple[str | None, str] | None = None
        connected = {(norm_ip(c.ip), c.port) for c in self.tcp if c.success}
        for c in self.tcp:
            where = (norm_ip(c.ip), c.port)
            if where != self.origin and not c.success and was_measured(c.failure):
                if where not in connected:
                    found = (c.failure, failures.CONNECT)
        shaken = {split_address(h.address) for h in self.tls if h.failure is None}
        for h in self.tls:
            where_tls = split_address(h.address)
            if where_tls is not None and where_tls != self.origin and h.failure:
                if where_tls not in shaken:
                    found = (h.failure, failures.TLS_HANDSHAKE)
        return found

    def refused(self) -> bool:
        return any(c.failure == failures.CONTROL_REFUSED_DESTINATION for c in self.tcp)


def _attach_target(flows: dict[object, Flow], host: str, port: int, names: _Names) -> Flow | None:
    """For a request recorded without an address (older OONI data): the flow to the same
    port whose handshake named the host, or whose address the host resolved to."""
    best: Flow | None = None
    for flow in flows.values():
        if flow.origin is None or flow.origin[1] != port:
            continue
        named = any(h.server_name.lower() == host for h in flow.tls)
        resolved = flow.origin[0] in names.get(host, set()) or flow.origin[0] == host
        if not (named or resolved):
            continue
        connected = any(c.success for c in flow.tcp)
        if best is None or (connected and not any(c.success for c in best.tcp)):
            best = flow
    return best


class _Names:
    """Name -> the addresses it resolved to, built only when a record without transaction ids
    or addresses needs it (older OONI data)."""

    def __init__(self, obs: Observations) -> None:
        self._obs = obs
        self._found: dict[str, set[str]] | None = None

    def get(self, name: str, default: set[str]) -> set[str]:
        if self._found is None:
            self._found = {}
            for q in self._obs.queries:
                for a in q.answers:
                    if a.ip:
                        key = q.hostname.lower().rstrip(".")
                        self._found.setdefault(key, set()).add(norm_ip(a.ip))
        return self._found.get(name, default)


def flows_of(obs: Observations) -> list[Flow]:
    flows: dict[object, Flow] = {}
    names = _Names(obs)

    def flow_for(tid: int, address: str | None) -> Flow:
        key: object = tid if tid else ("address", address)
        if key not in flows:
            flows[key] = Flow()
        return flows[key]

    for c in obs.tcp_connect:
        flow = flow_for(c.transaction_id, format_address(norm_ip(c.ip), c.port))
        flow.tcp.append(c)
        if flow.origin is None:
            flow.origin = (norm_ip(c.ip), c.port)
    for h in obs.tls_handshakes:
        attached = None
        if not h.transaction_id and split_address(h.address) is None and h.server_name:
            attached = _attach_target(flows, h.server_name.lower(), 443, names)
        flow = attached or flow_for(h.transaction_id, h.address)
        flow.tls.append(h)
        flow.origin = flow.origin or split_address(h.address)
    for m in obs.mtproto:
        flow = flow_for(m.transaction_id, m.address)
        flow.mtproto.append(m)
        flow.origin = flow.origin or split_address(m.address)
    for r in obs.requests:
        key_address = r.address
        endpoint = url_endpoint(r.url)
        attached = None
        if not key_address and not r.transaction_id and endpoint:
            attached = _attach_target(flows, endpoint[0].lower(), endpoint[1], names)
        if not key_address:
            key_address = f"url:{endpoint[0]}:{endpoint[1]}" if endpoint else f"url:{r.url}"
        flow = attached or flow_for(r.transaction_id, key_address)
        flow.requests.append(r)
        if flow.origin is None:
            flow.origin = split_address(r.address) or url_endpoint(r.url)
    for flow in flows.values():
        flow.requests.sort(key=lambda r: r.t0)
    return list(flows.values())


# --- the control, as seen from one endpoint --------------------------------------------------


@dataclass(slots=True)
class ControlView:
    """The control's observations for the target, with the lookups the rules need.

    Each lookup prefers the control's flow to the same address and port; without one it falls
    back to the control's flows on the same port (the control resolved the name itself and may
    have measured other addresses), and says None when the control has nothing to say."""

    obs: Observations
    flows: list[Flow]  # without the flows the control refused to measure
    every_flow: list[Flow]

    @classmethod
    def build(cls, obs: Observations) -> ControlView:
        every_flow = flows_of(obs)
        return cls(obs, [f for f in every_flow if not f.refused()], every_flow)

    def _candidates(self, origin: tuple[str, int] | None) -> tuple[list[Flow], bool]:
        same = [f for f in self.flows if origin and f.origin == origin]
        if same:
            return same, True
        port = origin[1] if origin else None
        return [f for f in self.flows if f.origin and f.origin[1] == port], False

    def tcp_ok(self, origin: tuple[str, int] | None) -> tuple[bool | None, bool]:
        flows, exact = self._candidates(origin)
        connects = [f.origin_tcp() for f in flows]
        seen = [c for c in connects if c is not None and (c.success or was_measured(c.failure))]
        if not seen:
            return None, exact
        return any(c.success for c in seen), exact

    def tls_ok(self, origin: tuple[str, int] | None, server_name: str) -> tuple[bool | None, bool]:
        flows, exact = self._candidates(origin)
        handshakes = [
            h
            for f in flows
            if (h := f.origin_tls()) is not None
            and (not server_name or h.server_name.lower() == server_name.lower())
        ]
        if not handshakes:
            return None, exact
        return any(h.failure is None for h in handshakes), exact

    def tls_failure(self, origin: tuple[str, int] | None) -> str | None:
        flows, _ = self._candidates(origin)
        for f in flows:
            h = f.origin_tls()
            if h is not None and h.failure:
                return h.failure
        return None

    def mtproto_ok(self, origin: tuple[str, int] | None, transport: str) -> bool | None:
        flows, _ = self._candidates(origin)
        same = [m for f in flows for m in f.mtproto if m.transport == transport]
        same = [m for m in same if m.success or was_measured(m.failure)]
        if same:
            return any(m.success for m in same)
        others = [m for f in flows for m in f.mtproto if m.success or was_measured(m.failure)]
        if any(m.success for m in others):
            return True
        return None

    def final_http(
        self, origin: tuple[str, int] | None, url: str
    ) -> tuple[HTTPTransaction | None, str | None]:
        """The control's final response for the same URL (same address first), or the failure
        that ended its chain; (None, None) when the control fetched nothing comparable."""
        flows, _ = self._candidates(origin)
        chains = [c for f in flows for c in chains_of(f.requests)]
        if not chains:
            chains = [c for f in self.every_flow for c in chains_of(f.requests)]
        for_url = [c for c in chains if same_url(c[0].url, url)]
        chains = for_url or chains
        failure: str | None = None
        for chain in chains:
            final = chain[-1]
            if final.failure is None and final.response_code is not None:
                return final, None
            failure = failure or final.failure
        return None, failure


def same_url(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


def chains_of(requests: Sequence[HTTPTransaction]) -> list[list[HTTPTransaction]]:
    """A flow's requests (in order) as attempts: a redirect chain goes on while each request
    follows a redirect; a request for the URL the chain started with (a retry), or one after a
    failure or a final response, starts another attempt."""
    chains: list[list[HTTPTransaction]] = []
    for r in requests:
        if chains:
            chain = chains[-1]
            previous = chain[-1]
            follows = (
                previous.failure is None
                and previous.response_code in REDIRECT_CODES
                and not same_url(r.url, chain[0].url)
            )
            if follows:
                chain.append(r)
                continue
        chains.append([r])
    return chains
