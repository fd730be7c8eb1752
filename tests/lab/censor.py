"""The censor's configuration as data, and what it becomes: nftables rules plus middlebox config.

Where each technique lives (the censor namespace, traffic arriving from the client on `cc0`):

| technique              | where                                                               |
|------------------------|---------------------------------------------------------------------|
| IP blackhole           | nft prerouting filter: `ip daddr X drop`                            |
| TCP reset              | nft prerouting filter: `ip daddr X tcp dport P reject with tcp reset` |
| DNS injection          | nft TPROXY of UDP 53 to the DNS injector (middleboxes.py)           |
| SNI reset / drop       | nft REDIRECT of TCP 443 to the transparent proxy (middleboxes.py)   |
| HTTP blockpage         | nft REDIRECT of TCP 80 to the transparent proxy (middleboxes.py)    |
| MTProto signature      | nft forward filter on the first payload bytes (`@ih`): kernel DPI   |
| UDP drop (QUIC)        | nft prerouting filter: `ip daddr X udp dport P drop`                |
| TLS hello drop         | nft forward filter: a payload starting ``16 03 01`` (a ClientHello   |
|                        | record) to (ip, port) is dropped; other payloads pass (MTProxy      |
|                        | fake-TLS blocked, padded obfuscated2 to the same proxy not)         |

The prerouting filter runs before NAT/TPROXY, so a blackholed address is never proxied.
Service outage and client offline are not the censor's doing: see `World` in scenarios.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.lab.topology import DC_PORTS

CLIENT_IFACE = "cc0"
DNS_INJECTOR_PORT = 5353
PROXY_PORT = 10000
TPROXY_MARK = 1
TPROXY_TABLE = 100
#: first bytes of the plain MTProto transports (FACTS.md §2); obfuscated2 looks random
MTPROTO_SIGNATURES = ("@ih,0,8 0xef", "@ih,0,32 0xeeeeeeee", "@ih,0,32 0xdddddddd")


@dataclass(frozen=True)
class DNSInjection:
    names: tuple[str, ...]
    answer: str  # an IPv4 address, or "NXDOMAIN"
    race: bool = True  # True: the forged reply races the genuine one; False: replaces it


@dataclass(frozen=True)
class Censor:
    blackhole: tuple[str, ...] = ()
    tcp_reset: tuple[tuple[str, int], ...] = ()
    dns: DNSInjection | None = None
    sni_names: tuple[str, ...] = ()
    sni_action: str = "reset"  # "reset" | "drop"
    http_blockpage_names: tuple[str, ...] = ()
    mtproto: str | None = None  # "reset" | "drop" the plain MTProto transports
    mtproto_ports: tuple[int, ...] = field(default=DC_PORTS)
    #: (ip, port): drop TCP payloads that start like a TLS ClientHello record (16 03 01)
    tls_hello_drop: tuple[tuple[str, int], ...] = ()
    #: (ip, port): drop UDP to it (QUIC to one host blocked; TCP to it untouched)
    udp_drop: tuple[tuple[str, int], ...] = ()
    #: every ClientHello to these addresses is reset, whatever its name (TLS address filtering)
    tls_reset_ips: tuple[str, ...] = ()
    #: residual blocking: after an SNI trigger, the proxy resets every connection of that
    #: client to that address and port for this many seconds
    sni_residual: float = 0.0

    def describe(self) -> str:
        parts = []
        if self.blackhole:
            parts.append(f"blackhole {', '.join(self.blackhole)}")
        if self.tcp_reset:
            parts.append("tcp reset " + ", ".join(f"{ip}:{port}" for ip, port in self.tcp_reset))
        if self.dns:
            mode = "racing" if self.dns.race else "replacing"
            parts.append(f"dns {self.dns.answer} for {', '.join(self.dns.names)} ({mode})")
        if self.sni_names:
            parts.append(f"sni {self.sni_action} for {', '.join(self.sni_names)}")
        if self.tls_reset_ips:
            parts.append(f"tls reset to {', '.join(self.tls_reset_ips)}")
        if self.sni_residual:
            parts.append(f"residual blocking {self.sni_residual:g} s")
        if self.http_blockpage_names:
            parts.append(f"http blockpage for {', '.join(self.http_blockpage_names)}")
        if self.mtproto:
            parts.append(f"mtproto signature {self.mtproto}")
        if self.tls_hello_drop:
            where = ", ".join(f"{ip}:{port}" for ip, port in self.tls_hello_drop)
            parts.append(f"tls hello drop to {where}")
        if self.udp_drop:
            parts.append("udp drop to " + ", ".join(f"{ip}:{port}" for ip, port in self.udp_drop))
        return "; ".join(parts) or "no censorship"


def nft_ruleset(censor: Censor) -> str:
    """The censor namespace's whole ruleset (it replaces whatever was there)."""
    iif = f'iifname "{CLIENT_IFACE}"'
    prefilter = [f"{iif} ip daddr {ip} drop" for ip in censor.blackhole]
    prefilter += [
        f"{iif} ip daddr {ip} tcp dport {port} reject with tcp reset"
        for ip, port in censor.tcp_reset
    ]
    prefilter += [f"{iif} ip daddr {ip} udp dport {port} drop" for ip, port in censor.udp_drop]
    prenat = []
    if censor.sni_names or censor.tls_reset_ips:
        prenat.append(f"{iif} tcp dport 443 redirect to :{PROXY_PORT}")
    if censor.http_blockpage_names:
        prenat.append(f"{iif} tcp dport 80 redirect to :{PROXY_PORT}")
    forward = []
    if censor.mtproto:
        action = "reject with tcp reset" if censor.mtproto == "reset" else "drop"
        ports = ", ".join(str(p) for p in censor.mtproto_ports)
        forward += [
            f"{iif} tcp dport {{ {ports} }} {signature} {action}"
            for signature in MTPROTO_SIGNATURES
        ]
    forward += [
        f"{iif} ip daddr {ip} tcp dport {port} @ih,0,24 0x160301 drop"
        for ip, port in censor.tls_hello_drop
    ]
    tproxy = []
    if censor.dns is not None:
        tproxy.append(
            f"{iif} udp dport 53 tproxy to :{DNS_INJECTOR_PORT} meta mark set {TPROXY_MARK} accept"
        )

    def chain(name: str, hook: str, priority: str, rules: list[str], kind: str = "filter") -> str:
        body = "\n".join(f"    {rule}" for rule in rules)
        return (
            f"  chain {name} {{\n    type {kind} hook {hook} priority {priority}; policy accept;\n"
            f"{body}\n  }}\n"
        )

    return (
        "flush ruleset\n"
        "table inet plab_censor {\n"
        + chain("prefilter", "prerouting", "-150", prefilter)
        + chain("prenat", "prerouting", "dstnat", prenat, kind="nat")
        + chain("forward_filter", "forward", "filter", forward)
        + "}\n"
        + "table ip plab_tproxy {\n"
        + chain("divert", "prerouting", "mangle", tproxy)
        + "}\n"
    )


def middlebox_config(censor: Censor) -> dict[str, Any] | None:
    """What middleboxes.py must run for this censor, or None when nft alone does the job."""
    config: dict[str, Any] = {"dns_port": DNS_INJECTOR_PORT, "proxy_port": PROXY_PORT}
    if censor.dns is not None:
        config["dns"] = {
            "names": list(censor.dns.names),
            "answer": censor.dns.answer,
            "race": censor.dns.race,
        }
    if censor.sni_names or censor.http_blockpage_names or censor.tls_reset_ips:
        config["proxy"] = {
            "sni_names": list(censor.sni_names),
            "sni_action": censor.sni_action,
            "http_names": list(censor.http_blockpage_names),
            "tls_ips": list(censor.tls_reset_ips),
            "residual": censor.sni_residual,
        }
    return config if ("dns" in config or "proxy" in config) else None


def outage_ruleset(addresses: tuple[str, ...]) -> str:
    """For the `net` namespace: these hosts are down for everyone (a SYN gets a RST, as from a
    host with no listener), the control included."""
    rules = "\n".join(
        f"    ip daddr {ip} meta l4proto tcp reject with tcp reset" for ip in addresses
    )
    return (
        "flush ruleset\ntable inet plab_world {\n  chain input {\n"
        f"    type filter hook input priority filter; policy accept;\n{rules}\n  }}\n}}\n"
    )
