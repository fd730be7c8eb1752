"""Wire bytes per part of a round where nftables is missing: a packet socket on this
namespace's loopback (AF_PACKET, root) sees every packet; each is counted once (as it leaves),
by its IP length, into the part its addresses and ports say (bench/data_usage.py's PARTS, in
Python instead of nftables rules). The kernel reports how many packets the socket dropped,
so an undercount shows."""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_STATISTICS = 6
ETH_HEADER = 14
#: what a part matches: (source ip, destination ip, protocol, source port, destination port)
Match = Callable[[str, str, int, int, int], bool]


def in_net(net: str) -> Callable[[str], bool]:
    network = ipaddress.ip_network(net)
    return lambda ip: ipaddress.ip_address(ip) in network


class WireParts:
    """Counts, in a thread, while the block runs: `parts[name]` bytes, `syns[name]` connections
    opened (SYN without ACK), `drops` packets the socket missed."""

    def __init__(
        self, parts: dict[str, Match], endpoints: set[tuple[str, int]] = frozenset()
    ) -> None:
        self.matchers = parts
        #: bytes per server (ip, port) in `endpoints` (e.g. each web page), either direction
        self.endpoints = dict.fromkeys(endpoints, 0)
        self.parts = dict.fromkeys(parts, 0)
        self.syns = dict.fromkeys(parts, 0)
        self.drops = 0
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self._sock.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE
        self._sock.bind(("lo", 0))
        self._sock.settimeout(0.1)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> WireParts:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        self._thread.join(10)
        stats = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        self.drops = struct.unpack("II", stats)[1]
        self._sock.close()

    def _run(self) -> None:
        while True:
            try:
                frame, address = self._sock.recvfrom(65600)
            except TimeoutError:
                if self._stop.is_set():
                    return
                continue
            if address[2] == PACKET_OUTGOING:
                self._count(memoryview(frame)[ETH_HEADER:])

    def _count(self, packet: memoryview) -> None:
        if len(packet) < 20 or packet[0] >> 4 != 4:
            return
        header = (packet[0] & 0x0F) * 4
        length = int.from_bytes(packet[2:4], "big")
        protocol = packet[9]
        source = socket.inet_ntoa(packet[12:16])
        destination = socket.inet_ntoa(packet[16:20])
        sport = dport = 0
        syn = False
        if protocol in (6, 17) and len(packet) >= header + 4:
            sport = int.from_bytes(packet[header : header + 2], "big")
            dport = int.from_bytes(packet[header + 2 : header + 4], "big")
            if protocol == 6 and len(packet) >= header + 14:
                flags = packet[header + 13]
                syn = flags & 0x12 == 0x02
        for key in ((source, sport), (destination, dport)):
            if key in self.endpoints:
                self.endpoints[key] += length
        for name, match in self.matchers.items():
            if match(source, destination, protocol, sport, dport):
                self.parts[name] += length
                self.syns[name] += syn
                return
