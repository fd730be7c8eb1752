"""Scenarios about the vantage itself (issue 19 items 5 and 8), as data: shutdowns and
allowlists (only domestic sites answer), and one address family blocked while the other works.

Kept apart from scenarios.py: they measure their own list (`VANTAGE_TARGETS`, with a dual-stack
baseline and a dual-stack service) plus a domestic baseline list given with
`--domestic-baselines`, and their censor is a few nft rules of their own (an allowlist is
"drop everything but", which `Censor` has no field for). Every rule sits on `iifname "cc0"`
(traffic from the client), so the control is never affected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.lab.ipv6 import DOMESTIC_IP, DUAL6_IP, DUAL_BASELINE6_IP, DUAL_IP
from tests.lab.scenarios import Expect, SelfCheck, dns_udp, tcp, tls
from tests.lab.topology import CONTROL_IP, CONTROL_PORT, RESOLVER_IP, WEB_IP

VANTAGE_TARGETS: tuple[dict[str, Any], ...] = (
    {"id": "baseline/example", "service": "baseline", "check": "https",
     "url": "https://www.example.org/"},
    {"id": "baseline/dual", "service": "baseline", "check": "https",
     "url": "https://dual.example.org/"},
    {"id": "telegram/web", "service": "telegram", "check": "https",
     "url": "https://web.telegram.org/"},
    {"id": "dualstack/web", "service": "dualstack", "check": "https",
     "url": "https://dual.plab.test/"},
)  # fmt: skip
#: the domestic baselines, given with --domestic-baselines (without the tag: the probe adds it)
DOMESTIC_TARGETS: tuple[dict[str, Any], ...] = (
    {"id": "baseline/lab-domestic", "service": "baseline", "check": "https",
     "url": "https://domestic.plab.test/"},
)  # fmt: skip
ALL_IDS = tuple(t["id"] for t in (*VANTAGE_TARGETS, *DOMESTIC_TARGETS))

CLIENT = 'iifname "cc0"'


@dataclass(frozen=True)
class VantageScenario:
    name: str
    description: str
    #: nft rules of the censor (prerouting, before anything else), each on traffic from cc0
    rules: tuple[str, ...] = ()
    #: targets not named here must be ok
    expected: Mapping[str, Expect] = field(default_factory=dict)
    #: words each named target's reason must contain
    reasons: Mapping[str, str] = field(default_factory=dict)
    #: the round's vantage: online | shutdown | offline
    connectivity: str = "online"
    self_checks: tuple[SelfCheck, ...] = ()

    def expect(self, target_id: str) -> Expect:
        return self.expected.get(target_id, Expect("ok"))

    def nft(self) -> str:
        body = "\n".join(f"    {CLIENT} {rule}" for rule in self.rules)
        return (
            "table inet plab_vantage {\n  chain prefilter {\n"
            "    type filter hook prerouting priority -200; policy accept;\n"
            f"{body}\n  }}\n}}\n"
        )


def aaaa(where: str, name: str, expect: str) -> SelfCheck:
    """The lab resolver's AAAA record for `name` (over UDP)."""
    check = {"kind": "dns_udp", "name": name, "server": RESOLVER_IP, "window": 0.2, "type": "AAAA"}
    return SelfCheck(where, check, expect)


INCONCLUSIVE = Expect("inconclusive")
#: the reason, capitalised or not (it may follow another clause)
SHUTDOWN_WORDS = "nternational connectivity looks down here (a shutdown or an allowlisted network)"

SCENARIOS: tuple[VantageScenario, ...] = (
    VantageScenario(
        "vantage-clean",
        "No censorship, domestic and international sites both work: no shutdown, no family "
        "blocked (the quiet case of both techniques).",
        self_checks=(
            tcp("client", DOMESTIC_IP, 443, "ok"),
            tcp("client", DUAL6_IP, 443, "ok"),
            tcp("client", DUAL_IP, 443, "ok"),
            dns_udp("client", "dual.plab.test", f"ip:{DUAL_IP}"),
            aaaa("client", "dual.plab.test", f"ip:{DUAL6_IP}"),
            tcp("control", DUAL6_IP, 443, "ok"),
        ),
    ),
    VantageScenario(
        "allowlist-shutdown",
        "An allowlist (Iran's shutdowns): every packet from the client is dropped except to "
        "the national resolver and one domestic site; the control abroad is cut off too.",
        rules=(
            f"ip daddr != {{ {RESOLVER_IP}, {DOMESTIC_IP} }} drop",
            "meta nfproto ipv6 drop",
        ),
        expected={
            "baseline/example": INCONCLUSIVE,
            "baseline/dual": INCONCLUSIVE,
            "telegram/web": INCONCLUSIVE,
            "dualstack/web": INCONCLUSIVE,
        },
        reasons={
            "telegram/web": SHUTDOWN_WORDS,
            "dualstack/web": SHUTDOWN_WORDS,
            "baseline/lab-domestic": SHUTDOWN_WORDS,
        },
        connectivity="shutdown",
        self_checks=(
            tls("client", DOMESTIC_IP, "domestic.plab.test", "ok"),
            tcp("client", WEB_IP, 443, "timeout"),
            tcp("client", CONTROL_IP, CONTROL_PORT, "timeout"),
            tcp("client", DUAL_BASELINE6_IP, 443, "timeout"),
            tcp("control", WEB_IP, 443, "ok"),
        ),
    ),
    VantageScenario(
        "everything-dropped",
        "Nothing gets through at all, domestic sites and DNS included: offline, not a shutdown.",
        rules=("drop",),
        expected={target_id: INCONCLUSIVE for target_id in ALL_IDS},
        reasons={"telegram/web": "offline"},
        connectivity="offline",
        self_checks=(
            tcp("client", DOMESTIC_IP, 443, "timeout"),
            tcp("client", WEB_IP, 443, "timeout"),
            tcp("control", DOMESTIC_IP, 443, "ok"),
        ),
    ),
    VantageScenario(
        "ipv6-blocked",
        "IPv6 to the dual-stack service is dropped; its IPv4 address works.",
        rules=(f"ip6 daddr {DUAL6_IP} drop",),
        expected={"dualstack/web": Expect("blocked", "tcp")},
        reasons={"dualstack/web": "only IPv6 is blocked: IPv4 still works"},
        self_checks=(
            tcp("client", DUAL6_IP, 443, "timeout"),
            tcp("client", DUAL_IP, 443, "ok"),
            tcp("client", DUAL_BASELINE6_IP, 443, "ok"),
            tcp("control", DUAL6_IP, 443, "ok"),
        ),
    ),
    VantageScenario(
        "ipv4-blocked",
        "IPv4 to the dual-stack service is dropped; its IPv6 address works.",
        rules=(f"ip daddr {DUAL_IP} drop",),
        expected={"dualstack/web": Expect("blocked", "tcp")},
        reasons={"dualstack/web": "only IPv4 is blocked: IPv6 still works"},
        self_checks=(
            tcp("client", DUAL_IP, 443, "timeout"),
            tcp("client", DUAL6_IP, 443, "ok"),
            tcp("control", DUAL_IP, 443, "ok"),
        ),
    ),
)
