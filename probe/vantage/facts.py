"""Where the probe stands: its network (ASN, country), its resolver, and the public address it
must never write down.

The public address is learned from the control server's echo or by address discovery
(probe/publicip) and kept only in memory, in a `Scrubber` (probe/scrub, re-exported here) that
replaces it (and the machine's own global IPv6 addresses, which identify a household as well as
an IPv4 address does) with ``[scrubbed]`` in every record before it is written.

`VantageState` is what one round learns about its vantage while it runs: the network, the
resolver (whoami), a VPN, and the facts every record carries (`x_vantage`: baselines, control,
IPv6). `Vantage` is the part the envelope of every record says.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from probe.addresses import is_ipv6, is_public, parse_ip
from probe.analysis import VantageFacts
from probe.i18n.message import Arg, M, Names, Said
from probe.observations import Observations, Trace
from probe.steps import dns
from probe.targets import Target
from probe.vantage import publicip
from probe.vantage.geoip import GeoIP
from probe.vantage.scrub import (
    Scrubber as Scrubber,  # re-exported: `from probe.vantage.facts import Scrubber`
)
from probe.vantage.scrub import safe_resolver_ip

if TYPE_CHECKING:
    from probe.round.measure import RunState

PROBE_IP = "127.0.0.1"
UNKNOWN_ASN = "AS0"
UNKNOWN_CC = "ZZ"


def local_global_ipv6_addresses(path: str = "/proc/net/if_inet6") -> list[str]:
    """The machine's own global IPv6 addresses (Linux); empty where unknown."""
    found: list[str] = []
    try:
        text = Path(path).read_text()
    except OSError:
        return found
    for line in text.splitlines():
        fields = line.split()
        if not fields or len(fields[0]) != 32:
            continue
        raw = fields[0]
        address = str(ipaddress.IPv6Address(int(raw, 16)))
        if is_public(address):
            found.append(address)
    return found


@dataclass(slots=True)
class Vantage:
    """What a record says about where it was measured (never the public address itself)."""

    probe_asn: str = UNKNOWN_ASN
    probe_cc: str = UNKNOWN_CC
    probe_network_name: str | None = None
    resolver_ip: str | None = None
    resolver_asn: str = UNKNOWN_ASN
    resolver_network_name: str | None = None
    network_type: str | None = None  # "vpn" when the measurement seems to go through a tunnel
    notes: list[str] = field(default_factory=list)


# --- VPN detection ------------------------------------------------------------------------

#: interface name prefixes of tunnels (OpenVPN/WireGuard/IPsec/PPP and commercial clients)
TUNNEL_PREFIXES = ("tun", "tap", "wg", "ppp", "utun", "ipsec", "nordlynx", "proton", "mullvad")


def default_route_interfaces(
    route_v4: str = "/proc/net/route", route_v6: str = "/proc/net/ipv6_route"
) -> list[str]:
    """Interfaces that carry a default route (Linux; empty elsewhere)."""
    found: list[str] = []
    try:
        for line in Path(route_v4).read_text().splitlines()[1:]:
            fields = line.split()
            # Iface Destination Gateway Flags ... Mask: a default route has destination and
            # mask zero; Flags bit 0x1 = up.
            if len(fields) >= 8 and fields[1] == "00000000" and fields[7] == "00000000":
                if int(fields[3], 16) & 0x1 and fields[0] not in found:
                    found.append(fields[0])
    except (OSError, ValueError):
        pass
    try:
        for line in Path(route_v6).read_text().splitlines():
            fields = line.split()
            # dest prefixlen src srclen nexthop metric refcnt use flags iface
            if len(fields) >= 10 and fields[0] == "0" * 32 and fields[1] == "00":
                if fields[9] != "lo" and fields[9] not in found:
                    found.append(fields[9])
    except (OSError, ValueError):
        pass
    return found


def is_tunnel_interface(name: str, sys_class_net: str = "/sys/class/net") -> bool:
    """A tun/tap device (the kernel marks it with `tun_flags`), a PPP link, or a known tunnel
    name."""
    if name.startswith(TUNNEL_PREFIXES):
        return True
    base = Path(sys_class_net) / name
    if (base / "tun_flags").exists():
        return True
    try:
        # ARPHRD_PPP = 512, ARPHRD_NONE = 65534 (tun, wireguard)
        return int((base / "type").read_text().strip()) in (512, 65534)
    except (OSError, ValueError):
        return False


def tunnel_default_routes() -> list[str]:
    """The default-route interfaces that are tunnels: the traffic goes through a VPN."""
    return [name for name in default_route_interfaces() if is_tunnel_interface(name)]


# --- resolver identity --------------------------------------------------------------------

#: answers the address of the resolver that asked it (its egress), as an A record
WHOAMI_NAME = "whoami.akamai.net"


# --- what a round learns ------------------------------------------------------------------


def reached(target: Target, observations: Observations) -> bool:
    """Did the full chain of `target`'s check succeed on at least one endpoint?"""
    if target.check == "dns":
        return any(q.answers and not q.failure for q in observations.queries)
    if target.check == "tcp":
        return any(c.success for c in observations.tcp_connect)
    if target.check == "tls":
        return any(h.failure is None and not h.x_purpose for h in observations.tls_handshakes)
    if target.check == "mtproto":
        return any(m.success for m in observations.mtproto)
    return any(r.response_code is not None and r.failure is None for r in observations.requests)


def ipv6_reachability(observations: Sequence[Observations]) -> bool | None:
    """True if any IPv6 connect succeeded, False if some were tried and none did, None if none
    were tried (the baselines resolved no IPv6 address)."""
    tried = [c for obs in observations for c in obs.tcp_connect if is_ipv6(c.ip)]
    if not tried:
        return None
    return any(c.success for c in tried)


def only_private_targets(targets: Sequence[Target]) -> bool:
    """Every target is a loopback/private/reserved address literal (or `localhost`): a test or
    lab list, whose round sends nothing to public servers of its own accord."""
    for target in targets:
        host = (target.hostname or "").strip("[]").lower()
        if host == "localhost":
            continue
        if parse_ip(host) is None or is_public(host):
            return False
    return True


class VantageState:
    """What one round learns about its vantage while it runs, and the scrubber that keeps the
    volunteer's own addresses out of its records."""

    def __init__(
        self,
        vantage: Vantage,
        scrubber: Scrubber,
        geoip: GeoIP,
        *,
        expected_cc: str | None = None,
        own_nets: Sequence[str] = (),
    ) -> None:
        self.vantage = vantage
        self.scrubber = scrubber
        self.scrubber.allow(*own_nets)
        self.geoip = geoip
        #: the configured country; a control echo that disagrees means VPN
        self.expected_cc = expected_cc
        #: ranges accepted as this machine's own address although not public (test beds)
        self.own_nets = tuple(ipaddress.ip_network(n, strict=False) for n in own_nets)
        #: the resolver's egress as whoami.akamai.net answered it (may be the volunteer's own
        #: address: a home router resolving recursively), and the nameserver asked
        self.whoami: str | None = None
        self.nameserver: str | None = None
        self.discovery: publicip.Discovery | None = None
        #: the public address was learned (discovery or the control's echo); never the address
        self.address_learned = False
        #: `x_vantage`, typed: the one place that says whether this vantage is offline
        self.facts = VantageFacts(control_reachable=False)
        for address in local_global_ipv6_addresses():
            self.scrubber.add(address)
            # privacy addresses rotate within the /64: any of them is the same household
            self.scrubber.add_prefix(address)

    def x_vantage(self) -> dict[str, Any]:
        """The facts as every record carries them (a fresh dict)."""
        f = self.facts
        return {
            "baseline_ok": f.baseline_ok,
            "baseline_total": f.baseline_total,
            "control_reachable": f.control_reachable,
            "ipv6_ok": f.ipv6_ok,
            "domestic_ok": f.domestic_ok,
            "domestic_total": f.domestic_total,
            **({"neutral_quic_ok": f.neutral_quic_ok} if f.neutral_quic_ok is not None else {}),
        }

    def baselines_measured(self, baselines: Sequence[tuple[Target, Observations | None]]) -> None:
        """The baselines' outcome: whether this vantage is online at all (the international
        ones), cut off from abroad (only the domestic ones work), and its IPv6."""
        measured = [(t, obs) for t, obs in baselines if obs is not None]
        abroad = [(t, obs) for t, obs in measured if not t.is_domestic]
        domestic = [(t, obs) for t, obs in measured if t.is_domestic]
        self.facts = replace(
            self.facts,
            baseline_ok=sum(reached(t, obs) for t, obs in abroad),
            baseline_total=sum(not t.is_domestic for t, _ in baselines),
            ipv6_ok=ipv6_reachability([obs for _, obs in abroad]),
            domestic_ok=sum(reached(t, obs) for t, obs in domestic),
            domestic_total=sum(t.is_domestic for t, _ in baselines),
        )

    def control_answered(self, reachable: bool) -> None:
        self.facts = replace(self.facts, control_reachable=reachable)

    def neutral_quic(self, ok: bool) -> None:
        """The round's QUIC handshake to the control's neutral endpoint (docs/verdicts.md)."""
        self.facts = replace(self.facts, neutral_quic_ok=ok)

    def learn_address(self, address: str) -> None:
        """Our public address: scrubbed from every record (for IPv6 the household's /64)."""
        self.scrubber.add(address)
        self.scrubber.add_prefix(address)  # IPv6 only

    def control_echo(
        self, ip: str | None, asn: int | None, cc: str | None, network_name: str | None
    ) -> None:
        """What the control saw of us. Behind a reverse proxy the control echoes the proxy's
        (private) address: never take that for ours."""
        if ip is not None and publicip.counts_as_public(ip, self.own_nets):
            self.learn_address(ip)
            self.address_learned = True
            self.apply_network(ip, asn, cc, network_name, M("the control"))

    def apply_network(
        self,
        ip: str | None,
        asn: int | None,
        cc: str | None,
        network_name: str | None,
        who: Arg,
        *,
        override: bool = True,
    ) -> None:
        """This probe's network from its public address (and what `who` said about it);
        `override=False` only fills in what is still unknown."""
        v = self.vantage
        if not override and v.probe_asn != UNKNOWN_ASN:
            return
        if ip and not (asn and cc and network_name) and self.geoip:
            info = self.geoip.lookup(ip)
            asn, cc = asn or info.asn, cc or info.cc
            network_name = network_name or info.as_org_name
        if asn:
            v.probe_asn = f"AS{asn}"
        if cc:
            v.probe_cc = cc.upper()
            expected = self.expected_cc
            if expected and cc.upper() != expected.upper() and v.network_type != "vpn":
                v.network_type = "vpn"
                v.notes.append(
                    Said(
                        M(
                            "{who} sees this probe in {country}, not {expected}: a VPN or proxy "
                            "seems to carry the traffic",
                            who=who,
                            country=cc.upper(),
                            expected=expected,
                        )
                    )
                )
        if network_name:
            v.probe_network_name = network_name

    def detect_vpn(self) -> None:
        tunnels = tunnel_default_routes()
        if tunnels:
            self.vantage.network_type = "vpn"
            self.vantage.notes.append(
                Said(
                    M(
                        "the default route goes through {interfaces}, which looks like a VPN: "
                        "these results describe the VPN's network, not yours",
                        interfaces=Names.of(tunnels),
                    )
                )
            )

    async def identify_resolver(self, state: RunState) -> None:
        """Ask the resolver in use who it is (its egress address shows whose resolver it is);
        fall back to the configured address."""
        server = state.config.resolver or state.resolver.system_nameserver
        if server is None:
            return
        self.vantage.resolver_ip = self.nameserver = server[0]
        queries = await dns.resolve_udp(
            WHOAMI_NAME,
            "A",
            server,
            trace=Trace(time.monotonic(), 0),
            timeout=min(state.config.timeout, 5.0),
            duplicate_window=0.0,
            source_address=state.config.source_address,
            counter=state.counter,
        )
        answers = [ip for q in queries[:1] if q.failure is None for ip in q.addresses()]
        if answers:
            self.vantage.resolver_ip = self.whoami = answers[0]
        # the ASN is looked up from the whoami answer in memory; what the record may say of
        # the address itself is decided when it is written (`scrub`)
        info = self.geoip.lookup(self.vantage.resolver_ip or "")
        if info.asn:
            self.vantage.resolver_asn = f"AS{info.asn}"
            self.vantage.resolver_network_name = info.as_org_name

    async def discover_address(
        self,
        state: RunState,
        targets: Sequence[Target],
        *,
        enabled: bool = True,
        stun_servers: tuple[tuple[str, int], ...] | None = None,
        echo_urls: tuple[str, ...] | None = None,
    ) -> None:
        """Learn our public address without a control (publicip), to scrub it from every
        record and to know our network. None for the servers: the public defaults, except for
        a round of private targets only (a loopback or lab list), which contacts no one."""
        if stun_servers is None and echo_urls is None and only_private_targets(targets):
            stun_servers, echo_urls = (), ()
        stun = publicip.DEFAULT_STUN_SERVERS if stun_servers is None else stun_servers
        echo = publicip.DEFAULT_ECHO_URLS if echo_urls is None else echo_urls
        if not enabled or not (stun or echo):
            return
        self.discovery = await publicip.discover(
            state.resolver,
            stun_servers=stun,
            echo_urls=echo,
            timeout=min(state.config.timeout, publicip.DEFAULT_TIMEOUT),
            allow_nets=self.own_nets,
            ca_files=state.config.ca_files,
            source_address=state.config.source_address,
            counter=state.counter,
        )
        # Every public answer is scrubbed, the majority's and any minority's: hiding an
        # address too many costs a little data, showing the volunteer's costs their safety.
        for address in self.discovery.answers:
            self.learn_address(address)
        own = self.discovery.ipv4 or self.discovery.ipv6
        self.address_learned = self.address_learned or bool(self.discovery.answers)
        if own:
            self.apply_network(own, None, None, None, M("address discovery"), override=False)

    def scrub(self, record: dict[str, Any]) -> dict[str, Any]:
        """Keep the volunteer's address out of the record (probe/scrub), on the data, once,
        before it is encoded: the learned address in every spelling; when it could not be
        learned, every identifying address in free text that this record did not measure.
        `annotations.x_scrubbed` says which. Sets the envelope's `resolver_ip`."""
        # Redact when no address was learned, or no IPv4 one (an IPv6-only answer leaves the
        # household's IPv4 address unknown).
        scrubber = self.scrubber
        scrubber.redact_unknown = not self.address_learned or not scrubber.knows(4)
        record["resolver_ip"] = safe_resolver_ip(self.whoami, self.nameserver, scrubber)
        scrubbed, _ = scrubber.scrub_record(record)
        return scrubbed
