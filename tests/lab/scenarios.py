"""The lab's scenarios, as data: a censor, the state of the world, the verdict expected for every
target, and the self-checks that prove the censor really interfered (see docs/lab.md).

To add a scenario: append a `Scenario` to SCENARIOS. Targets not named in `expected` must be
`ok`. Give it at least one client self-check showing the interference and one control self-check
showing the same thing works from the uncensored vantage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.lab.censor import Censor, DNSInjection
from tests.lab.topology import (
    BASELINE_IP,
    BLOCKPAGE_IP,
    DC_IPS,
    RESOLVER_IP,
    SELFCHECK_NAME,
    SPARE_IP,
    WEB2_IP,
    WEB_IP,
    ZONE,
)

# --- the targets every scenario measures (a list written as TOML for `probe run`) -----------
LAB_TARGETS: tuple[dict[str, Any], ...] = (
    {"id": "baseline/example", "service": "baseline", "check": "https",
     "url": "https://www.example.org/"},
    {"id": "telegram/web", "service": "telegram", "check": "https",
     "url": "https://web.telegram.org/"},
    {"id": "telegram/web-http", "service": "telegram", "check": "http",
     "url": "http://web.telegram.org/"},
    {"id": "telegram/org", "service": "telegram", "check": "https",
     "url": "https://telegram.org/"},
    {"id": "telegram/dc1", "service": "telegram", "check": "mtproto", "host": DC_IPS[0],
     "ports": [443, 80, 5222], "transports": ["obfuscated2"]},
    {"id": "telegram/dc2", "service": "telegram", "check": "mtproto", "host": DC_IPS[1],
     "ports": [443], "transports": ["intermediate"]},
    {"id": "telegram/dc3", "service": "telegram", "check": "mtproto", "host": DC_IPS[2],
     "ports": [443, 5222], "transports": ["obfuscated2", "intermediate"]},
)  # fmt: skip
TARGET_IDS = tuple(t["id"] for t in LAB_TARGETS)
DC_TARGETS = ("telegram/dc1", "telegram/dc2", "telegram/dc3")


@dataclass(frozen=True)
class Expect:
    status: str  # ok | blocked | down | inconclusive
    blocking: str | None = None
    confirmed: bool | None = None  # None: not asserted
    #: the verdict's x_evidence (the SNI swap: "sni-filter" | "ip-filter"); None: none
    evidence: str | None = None
    #: x_residual ended, its `seconds` within (low, high); None: no x_residual
    residual: tuple[float, float] | None = None

    def mismatch(self, verdict: Mapping[str, Any]) -> str | None:
        got = (verdict.get("status"), verdict.get("blocking"))
        if got != (self.status, self.blocking):
            return f"expected {self.status}/{self.blocking}, got {got[0]}/{got[1]}"
        if self.confirmed is not None and verdict.get("confirmed") is not self.confirmed:
            return f"expected confirmed={self.confirmed}, got {verdict.get('confirmed')}"
        if verdict.get("x_evidence") != self.evidence:
            return f"expected evidence {self.evidence}, got {verdict.get('x_evidence')}"
        return self._residual_mismatch(verdict.get("x_residual"))

    def _residual_mismatch(self, residual: Any) -> str | None:
        if self.residual is None:
            return None if residual is None else f"expected no x_residual, got {residual}"
        low, high = self.residual
        if not isinstance(residual, dict) or residual.get("ended") is not True:
            return f"expected residual blocking that ended, got {residual}"
        if not low <= residual.get("seconds", -1) <= high:
            return f"expected residual blocking of {low}-{high} s, got {residual}"
        return None


OK = Expect("ok")


@dataclass(frozen=True)
class SelfCheck:
    """One check run by tests/lab/checks.py in the client or the control namespace."""

    where: str  # "client" | "control"
    check: Mapping[str, Any]
    expect: str | tuple[str, ...]
    replies_include: tuple[str, ...] = ()  # dns_udp: replies that must also have arrived

    def matches(self, result: Mapping[str, Any]) -> bool:
        wanted = (self.expect,) if isinstance(self.expect, str) else self.expect
        if result.get("outcome") not in wanted:
            return False
        return all(reply in result.get("replies", ()) for reply in self.replies_include)

    def describe(self) -> str:
        details = ", ".join(f"{k}={v}" for k, v in self.check.items() if k != "kind")
        return f"{self.check['kind']}({details})"


def tls(where: str, ip: str, sni: str, expect: str | tuple[str, ...]) -> SelfCheck:
    return SelfCheck(where, {"kind": "tls", "ip": ip, "port": 443, "sni": sni}, expect)


def tcp(where: str, ip: str, port: int, expect: str | tuple[str, ...]) -> SelfCheck:
    return SelfCheck(where, {"kind": "tcp", "ip": ip, "port": port}, expect)


def http(where: str, ip: str, host: str, expect: str) -> SelfCheck:
    return SelfCheck(where, {"kind": "http", "ip": ip, "port": 80, "host": host}, expect)


def mtproto(where: str, ip: str, port: int, transport: str, expect: str) -> SelfCheck:
    check = {"kind": "mtproto", "ip": ip, "port": port, "transport": transport}
    return SelfCheck(where, check, expect)


def dns_udp(
    where: str, name: str, expect: str, server: str = RESOLVER_IP, also: tuple[str, ...] = ()
) -> SelfCheck:
    check = {"kind": "dns_udp", "name": name, "server": server, "window": 0.5}
    return SelfCheck(where, check, expect, also)


def dns_tcp(where: str, name: str, expect: str) -> SelfCheck:
    return SelfCheck(where, {"kind": "dns_tcp", "name": name, "server": RESOLVER_IP}, expect)


def system(where: str, name: str, expect: str | tuple[str, ...]) -> SelfCheck:
    return SelfCheck(where, {"kind": "resolve_system", "name": name}, expect)


@dataclass(frozen=True)
class World:
    """What is not the censor's doing."""

    outage: tuple[str, ...] = ()  # hosts down for everyone (the control too)
    client_offline: bool = False  # the client has no route beyond its own link


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    censor: Censor = field(default_factory=Censor)
    world: World = field(default_factory=World)
    expected: Mapping[str, Expect] = field(default_factory=dict)
    self_checks: tuple[SelfCheck, ...] = ()
    #: more options for `probe run` (e.g. --residual-window)
    probe_args: tuple[str, ...] = ()

    def expect(self, target_id: str) -> Expect:
        return self.expected.get(target_id, OK)

    def all_self_checks(self) -> tuple[SelfCheck, ...]:
        """The scenario's own checks plus the ones every scenario needs: the client's system
        resolver is the lab's (a lab-only name resolves), and so is the control's."""
        selfcheck_ip = f"ip:{ZONE[SELFCHECK_NAME]}"
        common = [
            SelfCheck("client", {"kind": "resolv_conf"}, f"nameserver:{RESOLVER_IP}"),
            system("control", SELFCHECK_NAME, selfcheck_ip),
        ]
        if not self.world.client_offline:
            common.append(system("client", SELFCHECK_NAME, selfcheck_ip))
        return (*common, *self.self_checks)


def _both(check: SelfCheck, client: str | tuple[str, ...], control: str) -> tuple[SelfCheck, ...]:
    """The same check from the censored client and from the uncensored control."""
    return (
        SelfCheck("client", check.check, client, check.replies_include),
        SelfCheck("control", check.check, control),
    )


#: what getaddrinfo says when the resolver cannot be reached at all
NO_RESOLUTION = (
    "fail:[Errno -3] Temporary failure in name resolution",
    "fail:[Errno -2] Name or service not known",
    "timeout",
)
BLOCKED_DNS_CONFIRMED = Expect("blocked", "dns", confirmed=True)
IRAN_DNS = DNSInjection(("web.telegram.org",), BLOCKPAGE_IP, race=True)

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "clean",
        "No censorship: everything is reachable.",
        self_checks=(
            *_both(tls("", WEB_IP, "web.telegram.org", ""), "ok", "ok"),
            *_both(http("", WEB_IP, "web.telegram.org", ""), "200", "200"),
            http("client", BLOCKPAGE_IP, "10.10.34.36", "200"),
            mtproto("client", DC_IPS[1], 443, "intermediate", "ok"),
            mtproto("client", DC_IPS[0], 5222, "obfuscated2", "ok"),
            mtproto("client", DC_IPS[2], 80, "abridged", "ok"),
            dns_udp("client", "web.telegram.org", f"ip:{WEB_IP}"),
            dns_udp("client", "web.telegram.org", "timeout", server=SPARE_IP),
        ),
    ),
    Scenario(
        "dns-inject-blockpage",
        "DNS injection racing the genuine answer: web.telegram.org -> 10.10.34.36 (Iran).",
        censor=Censor(dns=IRAN_DNS),
        expected={
            "telegram/web": BLOCKED_DNS_CONFIRMED,
            "telegram/web-http": BLOCKED_DNS_CONFIRMED,
        },
        self_checks=(
            dns_udp("client", "web.telegram.org", f"ip:{BLOCKPAGE_IP}", also=(f"ip:{WEB_IP}",)),
            # a query to an address that runs no DNS server still gets an answer: injected
            dns_udp("client", "web.telegram.org", f"ip:{BLOCKPAGE_IP}", server=SPARE_IP),
            dns_udp("client", "telegram.org", f"ip:{WEB2_IP}"),
            system("client", "web.telegram.org", f"ip:{BLOCKPAGE_IP}"),
            dns_udp("control", "web.telegram.org", f"ip:{WEB_IP}"),
        ),
    ),
    Scenario(
        "dns-inject-nxdomain",
        "DNS injection replacing the answer with NXDOMAIN for telegram.org.",
        censor=Censor(dns=DNSInjection(("telegram.org",), "NXDOMAIN", race=False)),
        expected={"telegram/org": Expect("blocked", "dns")},
        self_checks=(
            *_both(dns_udp("", "telegram.org", ""), "nxdomain", f"ip:{WEB2_IP}"),
            system("client", "telegram.org", "nxdomain"),
            dns_udp("client", "web.telegram.org", f"ip:{WEB_IP}"),
        ),
    ),
    Scenario(
        "dns-udp-only-address",
        "Only plain DNS over UDP is censored: telegram.org -> an arbitrary address with no "
        "host (198.19.0.77); DNS over TCP is clean.",
        censor=Censor(dns=DNSInjection(("telegram.org",), SPARE_IP, race=False)),
        expected={"telegram/org": Expect("blocked", "dns")},
        self_checks=(
            *_both(dns_udp("", "telegram.org", ""), f"ip:{SPARE_IP}", f"ip:{WEB2_IP}"),
            dns_tcp("client", "telegram.org", f"ip:{WEB2_IP}"),
        ),
    ),
    Scenario(
        "ip-blackhole-dcs",
        "Telegram's data centres are blackholed (every packet dropped).",
        censor=Censor(blackhole=DC_IPS),
        expected={t: Expect("blocked", "tcp") for t in DC_TARGETS},
        self_checks=(
            *_both(tcp("", DC_IPS[0], 443, ""), "timeout", "ok"),
            *_both(tcp("", DC_IPS[2], 5222, ""), "timeout", "ok"),
            tls("client", WEB_IP, "web.telegram.org", "ok"),
        ),
    ),
    Scenario(
        "tcp-reset",
        "Connections to web.telegram.org's address on port 443 are reset (RST to the SYN).",
        censor=Censor(tcp_reset=((WEB_IP, 443),)),
        expected={"telegram/web": Expect("blocked", "tcp")},
        self_checks=(
            *_both(tcp("", WEB_IP, 443, ""), "refused", "ok"),
            http("client", WEB_IP, "web.telegram.org", "200"),
        ),
    ),
    Scenario(
        "sni-reset",
        "A ClientHello naming web.telegram.org is answered with a reset.",
        censor=Censor(sni_names=("web.telegram.org",), sni_action="reset"),
        expected={"telegram/web": Expect("blocked", "tls", evidence="sni-filter")},
        self_checks=(
            *_both(tls("", WEB_IP, "web.telegram.org", ""), "reset", "ok"),
            # the same address with a benign name passes: it is the SNI, not the IP
            tls("client", WEB_IP, "www.example.org", ("tls_error", "ok")),
            tls("client", WEB2_IP, "telegram.org", "ok"),
        ),
    ),
    Scenario(
        "sni-drop",
        "A ClientHello naming web.telegram.org is silently dropped (the handshake times out).",
        censor=Censor(sni_names=("web.telegram.org",), sni_action="drop"),
        expected={"telegram/web": Expect("blocked", "tls", evidence="sni-filter")},
        self_checks=(
            *_both(tls("", WEB_IP, "web.telegram.org", ""), "timeout", "ok"),
            tcp("client", WEB_IP, 443, "ok"),
            tls("client", WEB2_IP, "telegram.org", "ok"),
        ),
    ),
    Scenario(
        "http-blockpage",
        "An HTTP request with Host web.telegram.org gets Iran's 403 iframe blockpage.",
        censor=Censor(http_blockpage_names=("web.telegram.org",)),
        expected={"telegram/web-http": Expect("blocked", "http-diff", confirmed=True)},
        self_checks=(
            *_both(http("", WEB_IP, "web.telegram.org", ""), "403-blockpage", "200"),
            http("client", WEB2_IP, "telegram.org", "200"),
            tls("client", WEB_IP, "web.telegram.org", "ok"),
        ),
    ),
    Scenario(
        "mtproto-signature-reset",
        "Plain MTProto transports (first bytes ef / eeeeeeee / dddddddd) are reset by DPI; "
        "obfuscated2 passes.",
        censor=Censor(mtproto="reset"),
        expected={
            "telegram/dc2": Expect("blocked", "protocol"),
            "telegram/dc3": Expect("blocked", "protocol"),
        },
        self_checks=(
            *_both(mtproto("", DC_IPS[1], 443, "intermediate", ""), "reset", "ok"),
            *_both(mtproto("", DC_IPS[1], 80, "abridged", ""), "reset", "ok"),
            *_both(mtproto("", DC_IPS[1], 5222, "padded_intermediate", ""), "reset", "ok"),
            mtproto("client", DC_IPS[0], 443, "obfuscated2", "ok"),
            tcp("client", DC_IPS[1], 443, "ok"),
        ),
    ),
    Scenario(
        "mtproto-signature-drop",
        "Plain MTProto transports are dropped by DPI (silence); obfuscated2 passes.",
        censor=Censor(mtproto="drop"),
        expected={
            "telegram/dc2": Expect("blocked", "protocol"),
            "telegram/dc3": Expect("blocked", "protocol"),
        },
        self_checks=(
            *_both(mtproto("", DC_IPS[1], 443, "intermediate", ""), "timeout", "ok"),
            mtproto("client", DC_IPS[2], 5222, "obfuscated2", "ok"),
        ),
    ),
    Scenario(
        "service-outage",
        "The data centres are down for everyone (the control too): down, not blocked.",
        world=World(outage=DC_IPS),
        expected={t: Expect("down") for t in DC_TARGETS},
        self_checks=(*_both(tcp("", DC_IPS[0], 443, ""), "refused", "refused"),),
    ),
    Scenario(
        "client-offline",
        "The client has no route at all: nothing can be called blocked.",
        world=World(client_offline=True),
        expected={t: Expect("inconclusive") for t in TARGET_IDS},
        self_checks=(
            tcp("client", WEB_IP, 443, "unreachable"),
            system("client", SELFCHECK_NAME, NO_RESOLUTION),
            tcp("control", WEB_IP, 443, "ok"),
        ),
    ),
    Scenario(
        "iran-combined",
        "Iran-like: DNS injection of web.telegram.org to 10.10.34.36, DC blackholing, and an "
        "SNI drop for telegram.org, all at once.",
        censor=Censor(
            dns=IRAN_DNS, blackhole=DC_IPS, sni_names=("telegram.org",), sni_action="drop"
        ),
        expected={
            "telegram/web": BLOCKED_DNS_CONFIRMED,
            "telegram/web-http": BLOCKED_DNS_CONFIRMED,
            "telegram/org": Expect("blocked", "tls", evidence="sni-filter"),
            **{t: Expect("blocked", "tcp") for t in DC_TARGETS},
        },
        self_checks=(
            dns_udp("client", "web.telegram.org", f"ip:{BLOCKPAGE_IP}"),
            tcp("client", DC_IPS[1], 443, "timeout"),
            *_both(tls("", WEB2_IP, "telegram.org", ""), "timeout", "ok"),
            tls("client", BASELINE_IP, "www.example.org", "ok"),
        ),
    ),
)


# The SNI swap and residual blocking (issue 19 items 1-2) have their own module; it uses the
# helpers above, so it is imported once they exist.
from tests.lab.scenarios_sni import SNI_SCENARIOS  # noqa: E402

SCENARIOS += SNI_SCENARIOS


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def targets_toml(scenario: Scenario, targets: tuple[dict[str, Any], ...] = LAB_TARGETS) -> str:
    lines = [
        "[list]",
        f'name = "lab-{scenario.name}"',
        f"description = {_toml_value(scenario.description)}",
        "updated = 2026-01-01",
        "",
    ]
    for target in targets:
        lines.append("[[targets]]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in target.items()]
        lines.append("")
    return "\n".join(lines)
