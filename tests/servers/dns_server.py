"""A real DNS server for tests and the lab: UDP and TCP on one port, able to misbehave.

The zone maps names to records::

    {"example.org": {"A": ["198.18.0.10"], "AAAA": ["2001:db8::10"], "ttl": 300},
     "www.example.org": {"CNAME": "example.org"}}

A name not in the zone is NXDOMAIN; a name without records of the asked type is an empty
NOERROR. `Rule`s change that per name, per query type, per transport and per peer address
(the probe queries from 127.0.0.2, the control from 127.0.0.3), first match wins:

    normal     answer from the zone
    nxdomain / servfail / refused    that rcode
    no_answer  NOERROR with an empty answer section
    lie        answer `ips` (of the asked family) instead of the zone
    inject     two datagrams: a lie first, the genuine answer `gap` seconds later (UDP only;
               over TCP the genuine answer)
    foreign    a lie sent from another port first (a client must ignore it), then the answer
    silence    no reply at all
    garbage    `payload` bytes (with the query id written over the first two when `patch_id`),
               followed by the genuine answer when `then_genuine`
    wrong_id   the genuine answer with another query id
    truncate   over UDP an empty reply with TC set; over TCP the genuine answer

In-process: ``async with DNSServer(zone, rules) as server: server.address``. Standalone (for
subprocess tests and the network-namespace lab)::

    python -m tests.servers.dns_server --host 127.0.0.1 --port 0 --zone zone.json

prints the port once ready and stops cleanly on SIGTERM or SIGINT. The zone file holds either
the zone itself or ``{"zone": {...}, "rules": [{"kind": "lie", "name": ..., "ips": [...]}]}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import signal
import socket
import ssl
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
from aiohttp import web

KINDS = frozenset(
    {
        "normal",
        "nxdomain",
        "servfail",
        "refused",
        "no_answer",
        "lie",
        "inject",
        "foreign",
        "silence",
        "garbage",
        "wrong_id",
        "truncate",
    }
)
RECORD_TYPES = ("A", "AAAA", "CNAME")
DEFAULT_TTL = 300
MAX_CNAME_CHAIN = 8
MAX_TCP_QUERIES_PER_CONNECTION = 32


@dataclass
class Rule:
    """How to answer the queries it matches (a None field matches anything)."""

    kind: str
    name: str | None = None
    peer: str | None = None
    query_type: str | None = None
    transport: str | None = None  # "udp" | "tcp"
    ips: tuple[str, ...] = ()  # lie / inject / foreign answers
    payload: bytes = b"\xde\xad\xbe\xef not dns"  # garbage
    patch_id: bool = False  # garbage: write the query id over the first two bytes
    then_genuine: bool = False  # garbage: send the genuine answer right after the payload
    gap: float = 0.02  # inject: seconds between the lie and the genuine answer
    ttl: int = 60

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown behaviour {self.kind!r} (one of {', '.join(sorted(KINDS))})")
        self.ips = tuple(self.ips)

    def matches(self, name: str, query_type: str, transport: str, peer: str) -> bool:
        return (
            (self.name is None or _norm(self.name) == name)
            and (self.query_type is None or self.query_type == query_type)
            and (self.transport is None or self.transport == transport)
            and (self.peer is None or self.peer == peer)
        )

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Rule:
        unknown = set(d) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise ValueError(f"unknown rule keys: {', '.join(sorted(unknown))}")
        values = dict(d)
        if "payload" in values:
            values["payload"] = bytes.fromhex(str(values["payload"]))
        if "ips" in values:
            values["ips"] = tuple(str(ip) for ip in values["ips"])
        return cls(**values)


@dataclass
class Received:
    """One query the server saw."""

    peer: str
    transport: str
    name: str
    query_type: str


def _wire(message: dns.message.Message) -> bytes:
    # dnspython shuffles the records of an RRset by default; tests want the zone's order.
    return message.to_wire(want_shuffle=False)


def _norm(name: str) -> str:
    return name.rstrip(".").lower()


def validate_zone(zone: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The zone with lower-case names, or ValueError naming the bad entry."""
    clean: dict[str, dict[str, Any]] = {}
    for name, records in zone.items():
        if not isinstance(records, Mapping):
            raise ValueError(f"zone entry {name!r} must be an object")
        for key, value in records.items():
            if key == "ttl":
                if not isinstance(value, int) or value < 0:
                    raise ValueError(f"zone entry {name!r}: ttl must be a non-negative integer")
            elif key in ("A", "AAAA"):
                version = 4 if key == "A" else 6
                if not isinstance(value, list) or not all(
                    isinstance(ip, str) and ipaddress.ip_address(ip).version == version
                    for ip in value
                ):
                    raise ValueError(f"zone entry {name!r}: {key} must be a list of IPv{version}")
            elif key == "CNAME":
                if not isinstance(value, str):
                    raise ValueError(f"zone entry {name!r}: CNAME must be a name")
            else:
                raise ValueError(f"zone entry {name!r}: unknown record type {key!r}")
        clean[_norm(name)] = dict(records)
    return clean


class _UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DNSServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.server._on_datagram(data, addr)


class DNSServer:
    """The server. `rules` and `zone` may be replaced between queries."""

    def __init__(
        self,
        zone: Mapping[str, Any] | None = None,
        rules: Sequence[Rule] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.zone = validate_zone(zone or {})
        self.rules = list(rules)
        self.host = host
        self.port = port
        self.received: list[Received] = []
        self._udp: asyncio.DatagramTransport | None = None
        self._foreign: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._pending: set[asyncio.TimerHandle] = set()
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # UDP and TCP must share a port; with an ephemeral port, take UDP's and retry on a clash.
        for _attempt in range(20):
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _UDPProtocol(self), local_addr=(self.host, self.port), family=family
            )
            port = udp.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(
                    self._serve_tcp, self.host, port, family=family, reuse_address=True
                )
            except OSError:
                udp.close()
                if self.port:
                    raise
                continue
            self._udp = udp
            self.port = port
            break
        else:
            raise OSError("no port free for both UDP and TCP")
        self._foreign, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=(self.host, 0), family=family
        )

    async def close(self) -> None:
        for handle in self._pending:
            handle.cancel()
        self._pending.clear()
        if self._tcp is not None:
            self._tcp.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._tcp is not None:
            await self._tcp.wait_closed()
            self._tcp = None
        for transport in (self._udp, self._foreign):
            if transport is not None:
                transport.close()
        self._udp = self._foreign = None

    async def __aenter__(self) -> DNSServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # --- answering ---------------------------------------------------------------------------

    def rule_for(self, name: str, query_type: str, transport: str, peer: str) -> Rule:
        for rule in self.rules:
            if rule.matches(name, query_type, transport, peer):
                return rule
        return Rule("normal")

    def genuine(self, query: dns.message.Message) -> dns.message.Message:
        """The honest answer from the zone (CNAME chains followed inside the zone)."""
        response = dns.message.make_response(query)
        question = query.question[0]
        name, rdtype = question.name, question.rdtype
        current = _norm(name.to_text())
        if current not in self.zone:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response
        owner = name
        for _hop in range(MAX_CNAME_CHAIN):
            records = self.zone.get(current)
            if records is None:
                break
            ttl = int(records.get("ttl", DEFAULT_TTL))
            type_text = dns.rdatatype.to_text(rdtype)
            if "CNAME" in records and rdtype != dns.rdatatype.CNAME:
                target = dns.name.from_text(records["CNAME"])
                response.answer.append(
                    dns.rrset.from_text(owner, ttl, "IN", "CNAME", target.to_text())
                )
                owner, current = target, _norm(target.to_text())
                continue
            values = records.get(type_text)
            if values:
                values = [values] if isinstance(values, str) else values
                response.answer.append(dns.rrset.from_text(owner, ttl, "IN", type_text, *values))
            break
        return response

    def replies(self, wire: bytes, peer: str, transport: str) -> list[tuple[float, bytes, bool]]:
        """What to send for one query: (delay, bytes, from the foreign port) in order."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return []  # not DNS: a real server would drop it too
        if not query.question:
            return []
        question = query.question[0]
        name = _norm(question.name.to_text())
        query_type = dns.rdatatype.to_text(question.rdtype)
        self.received.append(Received(peer, transport, name, query_type))
        rule = self.rule_for(name, query_type, transport, peer)
        kind = rule.kind
        if kind == "silence":
            return []
        if kind == "garbage":
            payload = rule.payload
            if rule.patch_id:
                payload = query.id.to_bytes(2, "big") + payload[2:]
            if rule.then_genuine:
                return [(0.0, payload, False), (0.0, _wire(self.genuine(query)), False)]
            return [(0.0, payload, False)]
        if kind == "truncate" and transport == "udp":
            response = dns.message.make_response(query)
            response.flags |= dns.flags.TC
            return [(0.0, _wire(response), False)]
        if kind in ("nxdomain", "servfail", "refused"):
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.from_text(kind.upper()))
            return [(0.0, _wire(response), False)]
        if kind == "no_answer":
            return [(0.0, _wire(dns.message.make_response(query)), False)]
        genuine = self.genuine(query)
        if kind == "wrong_id":
            genuine.id = (query.id + 1) & 0xFFFF
            return [(0.0, _wire(genuine), False)]
        if kind == "lie":
            return [(0.0, _wire(self._lie(query, rule)), False)]
        if kind == "inject" and transport == "udp":
            return [
                (0.0, _wire(self._lie(query, rule)), False),
                (rule.gap, _wire(genuine), False),
            ]
        if kind == "foreign" and transport == "udp":
            return [
                (0.0, _wire(self._lie(query, rule)), True),
                (rule.gap, _wire(genuine), False),
            ]
        return [(0.0, _wire(genuine), False)]

    @staticmethod
    def _lie(query: dns.message.Message, rule: Rule) -> dns.message.Message:
        response = dns.message.make_response(query)
        question = query.question[0]
        version = 6 if question.rdtype == dns.rdatatype.AAAA else 4
        ips = [ip for ip in rule.ips if ipaddress.ip_address(ip).version == version]
        if ips and question.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            rdtype = dns.rdatatype.to_text(question.rdtype)
            response.answer.append(dns.rrset.from_text(question.name, rule.ttl, "IN", rdtype, *ips))
        return response

    # --- transports --------------------------------------------------------------------------

    def _on_datagram(self, data: bytes, addr: tuple[Any, ...]) -> None:
        loop = asyncio.get_running_loop()
        for delay, payload, foreign in self.replies(data, str(addr[0]), "udp"):
            transport = self._foreign if foreign else self._udp
            if transport is None:
                continue
            if delay <= 0:
                transport.sendto(payload, addr)
                continue
            # Forget the handles that have run; close() cancels the rest.
            self._pending = {h for h in self._pending if h.when() > loop.time()}
            self._pending.add(loop.call_later(delay, _send_if_open, transport, payload, addr))

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peer = str(writer.get_extra_info("peername")[0])
        try:
            for _ in range(MAX_TCP_QUERIES_PER_CONNECTION):
                header = await reader.readexactly(2)
                wire = await reader.readexactly(int.from_bytes(header, "big"))
                for delay, payload, _foreign in self.replies(wire, peer, "tcp"):
                    if delay > 0:
                        await asyncio.sleep(delay)
                    writer.write(len(payload).to_bytes(2, "big") + payload)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away
        except asyncio.CancelledError:
            pass  # the server is closing
        finally:
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()
            self._connections.discard(task)


def _send_if_open(transport: asyncio.DatagramTransport, payload: bytes, addr: Any) -> None:
    if not transport.is_closing():
        transport.sendto(payload, addr)


class DoHServer:
    """DNS over HTTPS (RFC 8484 POST) in front of a DNSServer, on plain HTTP for tests unless
    `ssl_context` is given.

    `status` and `content_type` can be changed to make it misbehave at the HTTP layer; the DNS
    rules apply with transport "doh" (a "silence" rule makes it never answer)."""

    def __init__(
        self,
        dns_server: DNSServer,
        *,
        host: str = "127.0.0.1",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.dns_server = dns_server
        self.host = host
        self.ssl_context = ssl_context  # HTTPS when given
        self.port = 0
        self.status = 200
        self.content_type = "application/dns-message"
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{host}:{self.port}/dns-query"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.content.read(65536)
        replies = self.dns_server.replies(body, str(request.remote), "doh")
        if not replies:
            await asyncio.Event().wait()  # silence: until the server shuts down
        return web.Response(
            status=self.status, body=replies[0][1], headers={"Content-Type": self.content_type}
        )

    async def __aenter__(self) -> DoHServer:
        app = web.Application()
        app.router.add_post("/dns-query", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0, ssl_context=self.ssl_context)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def load_zone_file(path: str) -> tuple[dict[str, Any], list[Rule]]:
    """Read a zone file: the zone itself, or {"zone": {...}, "rules": [...]}."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise ValueError("the zone file must hold a JSON object")
    if isinstance(data.get("zone"), dict):
        unknown = set(data) - {"zone", "rules"}
        if unknown:
            raise ValueError(f"unknown top-level keys: {', '.join(sorted(unknown))}")
        rules = data.get("rules") or []
        if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
            raise ValueError("rules must be a list of objects")
        return data["zone"], [Rule.from_json(r) for r in rules]
    return data, []


async def _serve_forever(host: str, port: int, zone: dict[str, Any], rules: list[Rule]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with DNSServer(zone, rules, host=host, port=port) as server:
        print(server.port, flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A misbehaving DNS server for tests")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--zone", required=True, help="JSON zone file")
    args = parser.parse_args(argv)
    try:
        zone, rules = load_zone_file(args.zone)
        validate_zone(zone)
    except (OSError, ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
        print(f"{args.zone}: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve_forever(args.host, args.port, zone, rules))
    except OSError as exc:
        print(f"dns_server: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
