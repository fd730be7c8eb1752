"""The lab's IPv6: only 2001:2::/48 (the benchmarking range's first /48), never more.

One /64 per link: client 2001:2:0:1::/64, `net` 2001:2::/64 (its hosts ::130-::149 mirror
198.19.0.130-149), ctrl 2001:2:0:2::/64. Addresses are added with `nodad` (usable at once),
router advertisements are ignored, and the only routes lead to 2001:2::/48. Also the hosts of
the vantage scenarios (tests/lab/scenarios_vantage.py), IPv4 ones only in 198.19.0.130-149.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.lab.topology import Topology

LAB6_PREFIX = "2001:2::/48"
CLIENT6_IP = "2001:2:0:1::2"
CENSOR6_CLIENT_SIDE_IP = "2001:2:0:1::1"
CENSOR6_NET_SIDE_IP = "2001:2::1"
NET6_IP = "2001:2::2"
NET6_CTRL_SIDE_IP = "2001:2:0:2::1"
CONTROL6_IP = "2001:2:0:2::2"
# Hosts of the vantage scenarios (tests/lab/scenarios_vantage.py): 198.19.0.130-149 only
DOMESTIC_IP = "198.19.0.130"  # a site inside the country (a domestic baseline)
DUAL_BASELINE_IP, DUAL_BASELINE6_IP = "198.19.0.131", "2001:2::131"  # dual.example.org
DUAL_IP, DUAL6_IP = "198.19.0.132", "2001:2::132"  # dual.plab.test: a dual-stack service
VANTAGE_HOSTS = (DOMESTIC_IP, DUAL_BASELINE_IP, DUAL_IP)
VANTAGE_HOSTS6 = (DUAL_BASELINE6_IP, DUAL6_IP)


def create_ipv6(topology: Topology) -> None:
    """IPv6 on every link, only inside 2001:2::/48, with routes to that prefix alone (no
    default route, no router advertisements: forwarding namespaces ignore them)."""
    for ns in topology.namespaces:
        topology._sysctl(ns, "net/ipv6/conf/all/accept_ra", "0")
        topology._sysctl(ns, "net/ipv6/conf/default/accept_ra", "0")
    for ns in (topology.censor, topology.net):
        topology._sysctl(ns, "net/ipv6/conf/all/forwarding", "1")
    for ns, dev, address in (
        (topology.client, "c0", CLIENT6_IP),
        (topology.censor, "cc0", CENSOR6_CLIENT_SIDE_IP),
        (topology.censor, "cn0", CENSOR6_NET_SIDE_IP),
        (topology.net, "nc0", NET6_IP),
        (topology.net, "nk0", NET6_CTRL_SIDE_IP),
        (topology.ctrl, "k0", CONTROL6_IP),
    ):
        topology.ns_run(ns, ["ip", "-6", "addr", "add", f"{address}/64", "dev", dev, "nodad"])
    for host in VANTAGE_HOSTS6:
        topology.ns_run(
            topology.net, ["ip", "-6", "addr", "add", f"{host}/128", "dev", "nc0", "nodad"]
        )
    for ns, prefix, via in (
        (topology.censor, "2001:2:0:2::/64", NET6_IP),
        (topology.net, "2001:2:0:1::/64", CENSOR6_NET_SIDE_IP),
        (topology.ctrl, LAB6_PREFIX, NET6_CTRL_SIDE_IP),
    ):
        topology.ns_run(ns, ["ip", "-6", "route", "replace", prefix, "via", via])
