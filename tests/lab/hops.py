"""A multi-hop lab for locating the censor and for throttling (issue 19 items 3 and 4), apart
from the main topology (tests/lab/topology.py) so that the two never collide::

    hcli .1 ── .2 hr1 .5 ── .6 hr2 .9 ── .10 hr3 .13 ── .14 hsrv
                         (censor)

All in 198.18.50.0/24 (/30 links), namespaces ``plab-<pid>-h*`` (cleaned up like the main
lab's), no default route anywhere. The routers forward and decrement the TTL, so hsrv is 4 hops
from hcli and the censor on hr2 is 2 hops away. hsrv runs DNS (any name -> its own address),
HTTP on port 80 and the project's bulk endpoint (`probe control bulk`'s server) on 443.

The censor on hr2 sniffs the client-side link (AF_PACKET: it sees packets as they arrive, also
those whose TTL ends there) and, for a listed name, injects from the server's address: a TCP
reset or a blockpage after a TLS ClientHello / HTTP request, or a forged DNS answer. For
throttling it puts the flow into an nftables set that a `limit rate over ... drop` rule
polices; `uniform` polices all of hsrv's traffic instead.

Run the pieces with ``python -m tests.lab.hops serve`` (in hsrv) and ``python -m tests.lab.hops
censor CONFIG_JSON`` (in hr2); each prints READY.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.lab.topology import PREFIX, REPO_ROOT, cleanup_leftovers, delete_namespace, run

CLIENT = "198.18.50.1"
SERVER = "198.18.50.14"
BLOCKPAGE_ADDRESS = "10.10.34.36"  # in forged answers only: no host or route has it here
CENSOR_HOP = 2
SERVER_HOP = 4
#: the censor's link towards the client (in hr2)
CENSOR_DEV = "h1b"
#: one bucket for all policed flows; nftables fills it to one second at the rate plus the
#: burst whenever it is idle, so the first download of a check gets that much at full speed
#: (the rate is kept low enough for it to matter little against a 128 KiB object)
POLICE_RATE = "64 kbytes/second burst 8 kbytes"
BLOCKPAGE = (
    b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n"
    b'<html><body><iframe src="http://10.10.34.36/?type=Invalid Keyword"></iframe></body></html>'
)
LINKS = [  # (ns_a, dev_a, addr_a, ns_b, dev_b, addr_b)
    ("hcli", "h0a", "198.18.50.1", "hr1", "h0b", "198.18.50.2"),
    ("hr1", "h1a", "198.18.50.5", "hr2", "h1b", "198.18.50.6"),
    ("hr2", "h2a", "198.18.50.9", "hr3", "h2b", "198.18.50.10"),
    ("hr3", "h3a", "198.18.50.13", "hsrv", "h3b", "198.18.50.14"),
]
ROUTES = {  # ns -> [(prefix, via)]
    "hcli": [("198.18.50.0/24", "198.18.50.2")],
    "hr1": [("198.18.50.0/24", "198.18.50.6")],
    "hr2": [("198.18.50.0/30", "198.18.50.5"), ("198.18.50.12/30", "198.18.50.10")],
    "hr3": [("198.18.50.0/24", "198.18.50.9")],
    "hsrv": [("198.18.50.0/24", "198.18.50.13")],
}


@dataclass
class HopsLab:
    workdir: Path
    names: dict[str, str] = field(default_factory=dict)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    censor: subprocess.Popen[bytes] | None = None
    #: what the last `probe run` said on stderr (its summary)
    last_stderr: str = ""

    def ns(self, short: str) -> str:
        return self.names[short]

    def ns_run(self, short: str, args: list[str], check: bool = True) -> str:
        return run(["ip", "netns", "exec", self.ns(short), *args], check=check)

    def start(self) -> None:
        cleanup_leftovers()
        self.names = {
            s: f"{PREFIX}{os.getpid()}-{s}" for s in ("hcli", "hr1", "hr2", "hr3", "hsrv")
        }
        for ns in self.names.values():
            delete_namespace(ns)
            run(["ip", "netns", "add", ns])
        for short in self.names:
            self.ns_run(short, ["ip", "link", "set", "lo", "up"])
            self.ns_run(short, ["sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6"])
            self.ns_run(short, ["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"])
        for a, dev_a, addr_a, b, dev_b, addr_b in LINKS:
            run(["ip", "link", "add", dev_a, "netns", self.ns(a), "type", "veth", "peer",
                 "name", dev_b, "netns", self.ns(b)])  # fmt: skip
            for short, dev, addr in ((a, dev_a, addr_a), (b, dev_b, addr_b)):
                self.ns_run(short, ["ip", "addr", "add", f"{addr}/30", "dev", dev])
                self.ns_run(short, ["ip", "link", "set", dev, "up"])
        for short, routes in ROUTES.items():
            for prefix, via in routes:
                self.ns_run(short, ["ip", "route", "replace", prefix, "via", via])
        self.processes.append(self._spawn("hsrv", "serve"))

    def _spawn(self, short: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"hops-{short}.log").open("ab")
        popen = subprocess.Popen(
            ["ip", "netns", "exec", self.ns(short), sys.executable, "-m", "tests.lab.hops", *args],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
        log.close()
        assert popen.stdout is not None
        ready, _, _ = select.select([popen.stdout], [], [], 20)
        line = popen.stdout.readline() if ready else b""
        if line.strip() != b"READY":
            popen.kill()
            raise RuntimeError(f"hops {args[0]} did not start: {self.logs()}")
        return popen

    def set_censor(self, config: dict[str, Any] | None) -> None:
        """Replace the censor (None: none at all) and its nftables table."""
        if self.censor is not None:
            self.censor.kill()
            self.censor.wait()
            self.censor = None
        self.ns_run("hr2", ["nft", "delete", "table", "inet", "hops"], check=False)
        if config is None:
            return
        run(["ip", "netns", "exec", self.ns("hr2"), "nft", "-f", "-"], input_text=nft_rules(config))
        self.censor = self._spawn("hr2", "censor", json.dumps(config))

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-2000:] for p in self.workdir.glob("hops-*.log")
        )

    def probe(self, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PROBE_ACCEPT_RISKS": "1", "HOME": str(cwd)}
        return subprocess.run(
            ["ip", "netns", "exec", self.ns("hcli"), sys.executable, "-m", "probe", *args],
            capture_output=True, text=True, timeout=600, cwd=cwd, env=env, check=False,
        )  # fmt: skip

    def stop(self) -> None:
        self.set_censor(None)
        for popen in self.processes:
            popen.kill()
            popen.wait()
        for ns in self.names.values():
            delete_namespace(ns)


def nft_rules(config: dict[str, Any]) -> str:
    rules = []
    if config.get("uniform"):
        rules.append(f"ip saddr {SERVER} tcp sport 443 limit rate over {POLICE_RATE} drop")
    rules.append(f"ip daddr . tcp dport @throttled limit rate over {POLICE_RATE} drop")
    if config.get("throttle"):
        # a DPI box holds a flow's first answer until it has classified the flow (else the
        # first downloads could finish before the classifier's verdict lands in the set)
        rules.append(
            f"ip saddr {SERVER} tcp sport 443 ip length > 200 "
            "ip daddr . tcp dport != @classified drop"
        )
    return (
        "table inet hops {\n"
        "  set throttled { type ipv4_addr . inet_service; flags timeout; timeout 10m; }\n"
        "  set classified { type ipv4_addr . inet_service; flags timeout; timeout 10m; }\n"
        "  chain forward { type filter hook forward priority 0; policy accept;\n    "
        + "\n    ".join(rules)
        + "\n  }\n}\n"
    )


# --- the servers in hsrv ------------------------------------------------------------------
class _DNS(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        import dns.message
        import dns.rrset

        with contextlib.suppress(Exception):
            query = dns.message.from_wire(data)
            reply = dns.message.make_response(query)
            name = query.question[0].name
            reply.answer.append(dns.rrset.from_text(name, 60, "IN", "A", SERVER))
            self.transport.sendto(reply.to_wire(), addr)  # type: ignore[attr-defined]


async def _web(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        body = b"<html><title>the real site</title></html>"
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (len(body), body)
        )
        await writer.drain()
    writer.close()


async def serve() -> None:
    from probe.control.bulk import BulkServer

    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(_DNS, local_addr=(SERVER, 53))
    await asyncio.start_server(_web, SERVER, 80)
    await BulkServer(SERVER, 443).start()
    print("READY", flush=True)
    await asyncio.Event().wait()


# --- the censor in hr2 --------------------------------------------------------------------
def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ip(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, proto, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))  # fmt: skip
    return header + payload


def forged_tcp(pkt: dict[str, Any], flags: int, data: bytes = b"") -> bytes:
    """A segment from the server's side of `pkt`'s flow, in sequence for the client."""
    ack = (pkt["seq"] + len(pkt["payload"])) & 0xFFFFFFFF
    tcp = struct.pack("!HHIIBBHHH", pkt["dport"], pkt["sport"], pkt["ack"], ack, 5 << 4, flags,
                      65535, 0, 0) + data  # fmt: skip
    pseudo = socket.inet_aton(pkt["dst"]) + socket.inet_aton(pkt["src"])
    pseudo += struct.pack("!BBH", 0, 6, len(tcp))
    csum = _checksum(pseudo + tcp)
    tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
    return _ip(pkt["dst"], pkt["src"], 6, tcp)


def forged_udp(pkt: dict[str, Any], data: bytes) -> bytes:
    udp = struct.pack("!HHHH", pkt["dport"], pkt["sport"], 8 + len(data), 0) + data
    return _ip(pkt["dst"], pkt["src"], 17, udp)  # UDP checksum 0: none (allowed in IPv4)


def parse(frame: bytes) -> dict[str, Any] | None:
    ip = frame
    if len(ip) < 20 or ip[0] >> 4 != 4:
        return None
    ihl = (ip[0] & 15) * 4
    total = struct.unpack("!H", ip[2:4])[0]
    proto = ip[9]
    pkt: dict[str, Any] = {
        "src": socket.inet_ntoa(ip[12:16]),
        "dst": socket.inet_ntoa(ip[16:20]),
        "proto": proto,
    }
    body = ip[ihl:total]
    if proto == 6 and len(body) >= 20:
        sport, dport, seq, ack, off = struct.unpack("!HHIIB", body[:13])
        pkt.update(sport=sport, dport=dport, seq=seq, ack=ack, payload=body[(off >> 4) * 4 :])
    elif proto == 17 and len(body) >= 8:
        sport, dport = struct.unpack("!HH", body[:4])
        pkt.update(sport=sport, dport=dport, payload=body[8:])
    else:
        return None
    return pkt


def sni_of(payload: bytes) -> str | None:
    """The server_name of a TLS ClientHello (None if it is not one)."""
    try:
        if payload[0] != 0x16 or payload[5] != 1:
            return None
        i = 9 + 2 + 32
        i += 1 + payload[i]
        i += 2 + struct.unpack("!H", payload[i : i + 2])[0]
        i += 1 + payload[i]
        end = i + 2 + struct.unpack("!H", payload[i : i + 2])[0]
        i += 2
        while i + 4 <= end:
            kind, size = struct.unpack("!HH", payload[i : i + 4])
            if kind == 0:
                length = struct.unpack("!H", payload[i + 7 : i + 9])[0]
                return payload[i + 9 : i + 9 + length].decode("ascii", "replace").lower()
            i += 4 + size
    except (IndexError, struct.error):
        return None
    return None


def host_of(payload: bytes) -> str | None:
    if payload[:4] not in (b"GET ", b"POST", b"HEAD"):
        return None
    for line in payload.split(b"\r\n")[1:]:
        if line.lower().startswith(b"host:"):
            return line[5:].strip().decode("ascii", "replace").lower().split(":")[0]
    return None


def censor_main(config: dict[str, Any]) -> None:
    names = {n.lower() for n in config.get("names", ())}
    throttle = {n.lower() for n in config.get("throttle", ())}
    action = config.get("action", "reset")
    sniff = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
    sniff.bind((CENSOR_DEV, 0))
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    print("READY", flush=True)
    while True:
        frame, meta = sniff.recvfrom(65535)
        if meta[2] == socket.PACKET_OUTGOING:
            continue
        pkt = parse(frame)
        if pkt is None or pkt["src"] != CLIENT or not pkt["payload"]:
            continue
        if pkt["proto"] == 17 and pkt["dport"] == 53:
            _dns(raw, pkt, names)
            continue
        if pkt["proto"] != 6:
            continue
        name = sni_of(pkt["payload"]) or host_of(pkt["payload"])
        if throttle and name is not None:
            element = f"{{ {CLIENT} . {pkt['sport']} }}"
            # a new flow on a port an earlier throttled flow used is classified afresh: the
            # element is added (idempotent), and removed again unless this name is throttled
            script = f"add element inet hops throttled {element}\n"
            if name not in throttle:
                script += f"delete element inet hops throttled {element}\n"
            script += f"add element inet hops classified {element}\n"
            subprocess.run(["nft", "-f", "-"], input=script.encode(), check=False)
        if name not in names:
            continue
        if action == "blockpage" and host_of(pkt["payload"]):
            raw.sendto(forged_tcp(pkt, 0x19, BLOCKPAGE), (pkt["src"], 0))  # FIN|PSH|ACK
        else:
            raw.sendto(forged_tcp(pkt, 0x14), (pkt["src"], 0))  # RST|ACK


def _dns(raw: socket.socket, pkt: dict[str, Any], names: set[str]) -> None:
    import dns.message
    import dns.rrset

    with contextlib.suppress(Exception):
        query = dns.message.from_wire(pkt["payload"])
        name = query.question[0].name
        if name.to_text().rstrip(".").lower() not in names:
            return
        reply = dns.message.make_response(query)
        reply.answer.append(dns.rrset.from_text(name, 60, "IN", "A", BLOCKPAGE_ADDRESS))
        raw.sendto(forged_udp(pkt, reply.to_wire()), (pkt["src"], 0))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        asyncio.run(serve())
    elif sys.argv[1] == "censor":
        censor_main(json.loads(sys.argv[2]))
    time.sleep(0)
