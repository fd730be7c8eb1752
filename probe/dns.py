"""DNS: the resolve steps (system resolver, UDP, TCP, DNS over HTTPS) and the run's `Resolver`.

Every step returns `observations.DNSQuery` records in OONI's df-002 shape. The UDP step is the
one that sees censorship best: an on-path injector answers before the real server does, so we
keep listening for a short window after the first reply and record every further valid reply
as a duplicate (`x_duplicate = True`), in arrival order.

We speak DNS ourselves at wire level (dnspython only builds and parses messages) so that the
destination is exactly the server we chose, the source address can be bound, and every byte is
counted. The system resolver (getaddrinfo) runs in a bounded thread pool of its own, because a
lookup cannot be cancelled and asyncio's default executor would let slow lookups starve
everything else; the time a lookup spent waiting for a worker is recorded.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from types import TracebackType
from typing import TYPE_CHECKING, Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from probe import failures, tcp, udp
from probe.addresses import parse_ip
from probe.observations import DNSAnswer, DNSQuery, Trace, format_address

if TYPE_CHECKING:  # httpx is imported only when DoH is used (start-up time)
    import httpx

#: Public DNS-over-HTTPS resolvers: the DNS-only control when no control server answers.
PUBLIC_DOH_URLS = ("https://dns.google/dns-query", "https://cloudflare-dns.com/dns-query")
DNS_PORT = 53
#: The largest DNS message: the TCP length prefix is two bytes, and no UDP datagram is larger.
MAX_DNS_MESSAGE = 65535
#: EDNS0 payload size we advertise (DNS flag day 2020: avoids IP fragmentation).
EDNS_PAYLOAD = 1232
#: Datagrams read for one UDP query before we stop listening (a flood must not keep us busy).
MAX_DATAGRAMS_PER_QUERY = 64
#: Answer records kept per reply (a 64 KB reply could carry thousands).
MAX_ANSWERS_PER_REPLY = 64
#: Default size of the getaddrinfo thread pool.
DEFAULT_GETADDRINFO_WORKERS = 8
DOH_CONTENT_TYPE = "application/dns-message"

QUERY_TYPES: dict[str, dns.rdatatype.RdataType] = {
    "A": dns.rdatatype.A,
    "AAAA": dns.rdatatype.AAAA,
}

_RCODE_FAILURES: dict[int, str] = {
    dns.rcode.NXDOMAIN: failures.DNS_NXDOMAIN,
    dns.rcode.SERVFAIL: failures.DNS_SERVFAIL,
    dns.rcode.REFUSED: failures.DNS_REFUSED,
}


# --- building and reading messages -----------------------------------------------------------


def _check_query_type(query_type: str) -> None:
    """A wrong query type is the caller's bug, not a network outcome: it raises."""
    if query_type not in QUERY_TYPES:
        raise ValueError(f"unsupported DNS query type {query_type!r} (expected A or AAAA)")


@lru_cache(maxsize=4096)
def _query_name(hostname: str) -> dns.name.Name:
    """`hostname` as a DNS name, converted once for its A and AAAA queries: make_query with a
    ready Name costs 26 instead of 40 us (timeit, one core). Names are immutable; a
    name that does not convert raises each time (exceptions are not cached)."""
    return dns.name.from_text(hostname)


#: The OPT record of every query (EDNS0, payload EDNS_PAYLOAD, no flags, no options), built
#: once: make_query(use_edns=0) builds a new one per query, 70 % of its cost (~2.5 % of an https
#: measurement's CPU in bench/success_overhead.py). dnspython only reads a message's OPT RRset
#: (to render it, or for `edns`/`payload`), so queries can share one. tests/test_dns_queries.py
#: checks that our queries are the same as make_query(use_edns=0, payload=EDNS_PAYLOAD).
_QUERY_OPT = dns.message.make_query("query.opt.", "A", use_edns=0, payload=EDNS_PAYLOAD).opt


def _make_query(hostname: str, query_type: str) -> dns.message.QueryMessage:
    """The query, or ProbeFailure(dns_invalid_hostname) for a name DNS cannot carry."""
    try:
        query = dns.message.make_query(_query_name(hostname), QUERY_TYPES[query_type])
    except (dns.exception.DNSException, UnicodeError, ValueError) as exc:
        raise failures.ProbeFailure(failures.DNS_INVALID_HOSTNAME, str(exc)) from exc
    query.opt = _QUERY_OPT  # what use_edns(0, payload=EDNS_PAYLOAD) sets, without rebuilding it
    query.request_payload = EDNS_PAYLOAD
    return query


def _answers(message: dns.message.Message) -> list[DNSAnswer]:
    """The A, AAAA and CNAME records of the answer section, in order, at most a cap."""
    answers: list[DNSAnswer] = []
    for rrset in message.answer:
        for rdata in rrset:
            if len(answers) >= MAX_ANSWERS_PER_REPLY:
                return answers
            if rrset.rdtype == dns.rdatatype.A:
                answers.append(DNSAnswer("A", ipv4=rdata.address, ttl=rrset.ttl))
            elif rrset.rdtype == dns.rdatatype.AAAA:
                answers.append(DNSAnswer("AAAA", ipv6=rdata.address, ttl=rrset.ttl))
            elif rrset.rdtype == dns.rdatatype.CNAME:
                hostname = rdata.target.to_text(omit_final_dot=True)
                answers.append(DNSAnswer("CNAME", hostname=hostname, ttl=rrset.ttl))
    return answers


def _reply_failure(
    message: dns.message.Message, query_type: str, answers: list[DNSAnswer]
) -> str | None:
    rcode = message.rcode()
    if rcode != dns.rcode.NOERROR:
        return _RCODE_FAILURES.get(rcode, failures.DNS_SERVER_MISBEHAVING)
    if any(a.answer_type == query_type for a in answers):
        return None
    if message.flags & dns.flags.TC:
        # A truncated reply is not an empty one: the TCP retry that follows carries the answer.
        return None
    return failures.DNS_NO_ANSWER


class _WrongQueryId(Exception):
    pass


def _parse_reply(query: dns.message.Message, wire: bytes) -> dns.message.Message:
    """The reply, if `wire` is a well-formed response to `query`; else ProbeFailure/_WrongQueryId.

    dnspython raises many exception types for malformed input; all of them mean the same to us."""
    try:
        message = dns.message.from_wire(wire)
    except Exception as exc:
        raise failures.ProbeFailure(failures.DNS_SERVER_MISBEHAVING, "unparsable reply") from exc
    if message.id != query.id:
        raise _WrongQueryId()
    try:
        is_response = query.is_response(message)
    except Exception:
        is_response = False
    if not is_response:  # not a response (QR clear), another opcode, or another question
        raise failures.ProbeFailure(failures.DNS_SERVER_MISBEHAVING, "not a response to our query")
    return message


def _b64(wire: bytes) -> str:
    return base64.b64encode(wire).decode("ascii")


# --- getaddrinfo -----------------------------------------------------------------------------


class GetaddrinfoPool:
    """A bounded thread pool for getaddrinfo, owned by one run.

    A lookup cannot be cancelled: when a step gives up, its thread keeps going until the system
    resolver returns. Bounding the pool bounds how many such threads can exist at once; lookups
    beyond that wait for a worker, and the wait is recorded as `x_queue_time`."""

    def __init__(self, max_workers: int = DEFAULT_GETADDRINFO_WORKERS) -> None:
        if max_workers < 1:
            raise ValueError("a getaddrinfo pool needs at least one worker")
        self.max_workers = max_workers
        self.executor = ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="probe-getaddrinfo"
        )

    def close(self, *, wait: bool = False) -> None:
        """Drop queued lookups; running ones end on their own (or are awaited with `wait`)."""
        self.executor.shutdown(wait=wait, cancel_futures=True)

    def __enter__(self) -> GetaddrinfoPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class _WorkerStart:
    """Written by the worker thread when the lookup actually begins (a float store is atomic)."""

    __slots__ = ("started",)

    def __init__(self) -> None:
        self.started: float | None = None


def _getaddrinfo_in_worker(hostname: str, start: _WorkerStart) -> list[Any]:
    start.started = time.monotonic()
    # Looked up at call time so that a wrapped socket.getaddrinfo (the test guard) applies.
    return socket.getaddrinfo(hostname, None, family=socket.AF_UNSPEC, type=socket.SOCK_STREAM)


def _getaddrinfo_answers(infos: Iterable[Any]) -> list[DNSAnswer]:
    answers: list[DNSAnswer] = []
    seen: set[str] = set()
    for family, _type, _proto, _canonname, sockaddr in infos:
        ip = str(sockaddr[0])
        if ip in seen or len(answers) >= MAX_ANSWERS_PER_REPLY:
            continue
        seen.add(ip)
        if family == socket.AF_INET:
            answers.append(DNSAnswer("A", ipv4=ip))
        elif family == socket.AF_INET6:
            answers.append(DNSAnswer("AAAA", ipv6=ip))
    return answers


async def resolve_getaddrinfo(
    hostname: str, *, trace: Trace, timeout: float, pool: GetaddrinfoPool
) -> DNSQuery:
    """Resolve with the system resolver, in `pool`, within `timeout` seconds.

    On timeout the observation says generic_timeout_error and the worker finishes on its own."""
    loop = asyncio.get_running_loop()
    t0 = trace.now()
    submitted = time.monotonic()
    start = _WorkerStart()
    answers: list[DNSAnswer] = []
    failure: str | None = None
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.run_in_executor(
                pool.executor, _getaddrinfo_in_worker, hostname, start
            )
        answers = _getaddrinfo_answers(infos)
        if not answers:
            failure = failures.DNS_NO_ANSWER
    except UnicodeError:  # Python's IDNA encoding refused the name before any lookup
        failure = failures.DNS_INVALID_HOSTNAME
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
        # Not our cancellation: the pool was closed while this lookup still waited in its queue.
        failure = failures.INTERRUPTED
    except Exception as exc:
        failure = failures.classify(exc)
    started = start.started
    queue_time = (started if started is not None else time.monotonic()) - submitted
    return DNSQuery(
        hostname=hostname,
        query_type="ANY",
        engine="getaddrinfo",
        resolver_address="",
        answers=answers,
        failure=failure,
        t0=t0,
        t=trace.now(),
        transaction_id=trace.transaction_id,
        x_queue_time=round(max(queue_time, 0.0), 6),
    )


# --- UDP -------------------------------------------------------------------------------------


async def resolve_udp(
    hostname: str,
    query_type: str,
    server: tuple[str, int],
    *,
    trace: Trace,
    timeout: float,
    duplicate_window: float = 0.3,
    source_address: str | None = None,
    counter: tcp.ByteCounter | None = None,
) -> list[DNSQuery]:
    """Ask `server` over UDP; return the first valid reply and every duplicate that follows.

    After the first valid reply we keep listening `duplicate_window` seconds (never past the
    deadline): an injected answer and the genuine one are then both recorded, in arrival order,
    the later ones with `x_duplicate = True`. Replies with another query id or that do not parse
    are skipped while we wait; when nothing valid came, the failure says which of them we saw.
    A truncated first reply is followed by the same query over TCP (appended, engine "tcp").
    The whole exchange, TCP retry included, ends within `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    resolver_address = format_address(server[0], server[1])
    _check_query_type(query_type)
    t0 = trace.now()
    replies: list[DNSQuery] = []
    failure: str | None = None
    first_rejected: bytes | None = None  # kept as evidence when no valid reply came
    saw_wrong_id = False
    saw_malformed = False
    truncated = False
    sock: socket.socket | None = None
    try:
        query = _make_query(hostname, query_type)
        sock = udp.udp_socket(server[0], source_address)
        # A connected socket: the kernel drops datagrams from any other source, and an ICMP
        # port-unreachable surfaces as connection_refused instead of a silent timeout. A UDP
        # connect only sets the peer address and never blocks, so it is a plain call (through
        # the event loop it cost a future and a loop iteration per query); an IPv6 zone
        # ("fe80::1%eth0") needs the loop's address resolution to become a scope id.
        async with asyncio.timeout_at(deadline):
            if "%" in server[0]:
                await loop.sock_connect(sock, server)
            else:
                sock.connect(server)
            wire = query.to_wire()
            await loop.sock_sendall(sock, wire)
        if counter is not None:
            counter.sent += len(wire)
        listen_until = deadline
        for _ in range(MAX_DATAGRAMS_PER_QUERY):
            try:
                data = await udp.receive_before(loop, sock, listen_until, MAX_DNS_MESSAGE)
            except OSError:
                if replies:
                    break  # an ICMP error after the answer ends the duplicate window, no more
                raise
            if data is None:
                break
            if counter is not None:
                counter.received += len(data)
            try:
                message = _parse_reply(query, data)
            except _WrongQueryId:
                saw_wrong_id = True
                first_rejected = first_rejected or data
                continue
            except failures.ProbeFailure:
                saw_malformed = True
                first_rejected = first_rejected or data
                continue
            answers = _answers(message)
            replies.append(
                DNSQuery(
                    hostname=hostname,
                    query_type=query_type,
                    engine="udp",
                    resolver_address=resolver_address,
                    answers=answers,
                    failure=_reply_failure(message, query_type, answers),
                    rcode=message.rcode(),
                    raw_response=_b64(data),
                    t0=t0,
                    t=trace.now(),
                    transaction_id=trace.transaction_id,
                    x_duplicate=len(replies) > 0,
                )
            )
            if len(replies) == 1:
                if message.flags & dns.flags.TC:
                    truncated = True
                    break
                listen_until = min(deadline, loop.time() + duplicate_window)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        failure = failures.classify(exc)
    finally:
        if sock is not None:
            sock.close()

    if not replies:
        if failure is None:
            if saw_wrong_id:
                failure = failures.DNS_WRONG_QUERY_ID
            elif saw_malformed:
                failure = failures.DNS_SERVER_MISBEHAVING
            else:
                failure = failures.GENERIC_TIMEOUT
        return [
            DNSQuery(
                hostname=hostname,
                query_type=query_type,
                engine="udp",
                resolver_address=resolver_address,
                failure=failure,
                raw_response=_b64(first_rejected) if first_rejected is not None else None,
                t0=t0,
                t=trace.now(),
                transaction_id=trace.transaction_id,
            )
        ]
    if truncated:
        replies.append(
            await resolve_tcp(
                hostname,
                query_type,
                server,
                trace=trace,
                timeout=max(deadline - loop.time(), 0.0),
                source_address=source_address,
                counter=counter,
            )
        )
    return replies


# --- TCP -------------------------------------------------------------------------------------


async def _receive_exactly(stream: tcp.SocketStream, size: int) -> bytes:
    buffer = bytearray()
    while len(buffer) < size:  # each round reads at least one byte or raises: bounded by size
        chunk = await stream.receive_some(size - len(buffer))
        if not chunk:
            raise EOFError("the DNS server closed the connection mid-message")
        buffer += chunk
    return bytes(buffer)


async def resolve_tcp(
    hostname: str,
    query_type: str,
    server: tuple[str, int],
    *,
    trace: Trace,
    timeout: float,
    source_address: str | None = None,
    counter: tcp.ByteCounter | None = None,
) -> DNSQuery:
    """Ask `server` over TCP (RFC 1035 two-byte length framing), within `timeout` seconds."""
    _check_query_type(query_type)
    t0 = trace.now()
    stream: tcp.SocketStream | None = None
    data: bytes | None = None
    message: dns.message.Message | None = None
    failure: str | None = None
    try:
        query = _make_query(hostname, query_type)
        async with asyncio.timeout(timeout):
            connected = await tcp.tcp_connect(
                server[0],
                server[1],
                trace=trace,
                timeout=timeout,
                source_address=source_address,
                counter=counter,
            )
            if connected.stream is None:
                raise failures.ProbeFailure(
                    connected.observation.failure or failures.UNKNOWN_PREFIX + "connect failed"
                )
            stream = connected.stream
            wire = query.to_wire()
            await stream.send_all(len(wire).to_bytes(2, "big") + wire)
            length = int.from_bytes(await _receive_exactly(stream, 2), "big")
            data = await _receive_exactly(stream, length)  # at most 65535 by construction
            message = _parse_reply(query, data)
    except asyncio.CancelledError:
        raise
    except _WrongQueryId:
        failure = failures.DNS_WRONG_QUERY_ID
    except Exception as exc:
        failure = failures.classify(exc)
    finally:
        if stream is not None:
            await stream.aclose()
    answers = _answers(message) if message is not None else []
    if message is not None:
        failure = _reply_failure(message, query_type, answers)
    return DNSQuery(
        hostname=hostname,
        query_type=query_type,
        engine="tcp",
        resolver_address=format_address(server[0], server[1]),
        answers=answers,
        failure=failure,
        rcode=message.rcode() if message is not None else None,
        raw_response=_b64(data) if data is not None else None,
        t0=t0,
        t=trace.now(),
        transaction_id=trace.transaction_id,
    )


# --- DNS over HTTPS --------------------------------------------------------------------------


async def resolve_doh(
    hostname: str,
    query_type: str,
    url: str,
    *,
    trace: Trace,
    timeout: float,
    client: httpx.AsyncClient,
) -> DNSQuery:
    """Ask the DoH server at `url` (RFC 8484 POST), within `timeout` seconds.

    A status other than 200, another content type, or a compressed or oversized body is
    dns_server_misbehaving (as OONI does)."""
    _check_query_type(query_type)
    t0 = trace.now()
    data: bytes | None = None
    message: dns.message.Message | None = None
    failure: str | None = None
    try:
        query = _make_query(hostname, query_type)
        query.id = 0  # RFC 8484 §4.1: id 0 keeps the request cacheable
        async with asyncio.timeout(timeout):
            headers = {
                "content-type": DOH_CONTENT_TYPE,
                "accept": DOH_CONTENT_TYPE,
                "accept-encoding": "identity",
            }
            async with client.stream(
                "POST", url, content=query.to_wire(), headers=headers
            ) as reply:
                content_type = reply.headers.get("content-type", "").split(";")[0].strip()
                encoding = reply.headers.get("content-encoding", "identity").strip().lower()
                if (
                    reply.status_code != 200
                    or content_type.lower() != DOH_CONTENT_TYPE
                    or encoding != "identity"
                ):
                    raise failures.ProbeFailure(
                        failures.DNS_SERVER_MISBEHAVING,
                        f"HTTP {reply.status_code} {content_type!r} {encoding!r}",
                    )
                body = bytearray()
                async for chunk in reply.aiter_raw():
                    body += chunk
                    if len(body) > MAX_DNS_MESSAGE:
                        raise failures.ProbeFailure(
                            failures.DNS_SERVER_MISBEHAVING, "DoH reply larger than a DNS message"
                        )
            data = bytes(body)
            message = _parse_reply(query, data)
    except asyncio.CancelledError:
        raise
    except _WrongQueryId:
        failure = failures.DNS_WRONG_QUERY_ID
    except Exception as exc:
        failure = failures.classify(exc)
    answers = _answers(message) if message is not None else []
    if message is not None:
        failure = _reply_failure(message, query_type, answers)
    return DNSQuery(
        hostname=hostname,
        query_type=query_type,
        engine="doh",
        resolver_address=url,
        answers=answers,
        failure=failure,
        rcode=message.rcode() if message is not None else None,
        raw_response=_b64(data) if data is not None else None,
        t0=t0,
        t=trace.now(),
        transaction_id=trace.transaction_id,
    )


# --- the run's resolver ----------------------------------------------------------------------


def parse_resolver(text: str) -> tuple[str, int]:
    """`IP`, `IP:PORT`, `IPv6` or `[IPv6]:PORT` → (ip, port); port 53 when absent.

    Raises ValueError with a one-line message for anything else (host names included: the
    resolver's own name would need resolving first)."""
    candidate = text.strip()
    expected = f"expected IP[:PORT] or [IPv6]:PORT, got {text!r}"
    if not candidate:
        raise ValueError(f"empty resolver address: {expected}")
    host, port_text = candidate, ""
    if candidate.startswith("["):
        end = candidate.find("]")
        if end < 0:
            raise ValueError(f"missing ']' in resolver address: {expected}")
        host, rest = candidate[1:end], candidate[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"unexpected text after ']': {expected}")
            port_text = rest[1:]
            if not port_text:
                raise ValueError(f"missing port after ':': {expected}")
        if not isinstance(parse_ip(host), ipaddress.IPv6Address):
            raise ValueError(f"not an IPv6 address inside brackets: {expected}")
    elif candidate.count(":") == 1:
        host, port_text = candidate.split(":")
        if not port_text:
            raise ValueError(f"missing port after ':': {expected}")
    # Two or more colons without brackets: a bare IPv6 address (a port would be ambiguous).
    address = parse_ip(host)
    if address is None or host.startswith("["):
        raise ValueError(f"not an IP address: {expected}")
    port = DNS_PORT
    if port_text:
        if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"port must be a number from 1 to 65535: {expected}")
        port = int(port_text)
    scope = host.partition("%")[2]  # parse_ip drops an IPv6 zone; a link-local server needs it
    return (str(address) + (f"%{scope}" if scope else ""), port)


def read_system_nameserver(path: str = "/etc/resolv.conf") -> tuple[str, int] | None:
    """The first valid `nameserver` of resolv.conf as (ip, 53), or None if there is none."""
    try:
        with open(path, encoding="utf-8", errors="replace") as conf:
            lines = conf.read(1 << 20).splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver" and parse_ip(fields[1]) is not None:
            return (fields[1], DNS_PORT)
    return None


@dataclass(slots=True)
class Resolution:
    """What one name resolved to: every query made, and the addresses to measure."""

    queries: list[DNSQuery] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)


class _FromResolvConf:
    """Default marker: read the system's first nameserver when the Resolver is made."""


_FROM_RESOLV_CONF = _FromResolvConf()


def _ordered_addresses(groups: Iterable[list[DNSQuery]]) -> list[str]:
    """Answer IPs of the non-duplicate successful queries: group by group, IPv4 first in each."""
    addresses: list[str] = []
    seen: set[str] = set()
    for group in groups:
        ips: list[str] = []
        for query in group:
            if query.failure is not None or query.x_duplicate:
                continue
            for answer in query.answers:
                wanted = query.query_type in ("ANY", answer.answer_type)
                if answer.ip and wanted and answer.answer_type in ("A", "AAAA"):
                    ips.append(answer.ip)
        ips.sort(key=lambda ip: ":" in ip)  # stable: IPv4 before IPv6, order kept otherwise
        for ip in ips:
            if ip not in seen:
                seen.add(ip)
                addresses.append(ip)
    return addresses


class Resolver:
    """Chooses the DNS engines for a run (DESIGN.md, "DNS engines").

    With `server` (the `--resolver` option) every name goes to that server only: A and AAAA over
    UDP, TCP when truncated, nothing else. Without it: getaddrinfo in `pool`, plus A and AAAA
    over UDP to the system's first nameserver for the raw answers and injected duplicates."""

    def __init__(
        self,
        server: tuple[str, int] | None,
        *,
        pool: GetaddrinfoPool | None,
        counter: tcp.ByteCounter | None = None,
        source_address: str | None = None,
        system_nameserver: tuple[str, int] | _FromResolvConf | None = _FROM_RESOLV_CONF,
        duplicate_window: float = 0.3,
    ) -> None:
        if server is None and pool is None:
            raise ValueError("a Resolver without a server needs a GetaddrinfoPool")
        self.server = server
        self.pool = pool
        self.counter = counter
        self.source_address = source_address
        self.duplicate_window = duplicate_window
        if isinstance(system_nameserver, _FromResolvConf):
            system_nameserver = read_system_nameserver()
        self.system_nameserver: tuple[str, int] | None = system_nameserver

    async def _udp(
        self, hostname: str, query_type: str, server: tuple[str, int], trace: Trace, timeout: float
    ) -> list[DNSQuery]:
        return await resolve_udp(
            hostname,
            query_type,
            server,
            trace=trace,
            timeout=timeout,
            duplicate_window=self.duplicate_window,
            source_address=self.source_address,
            counter=self.counter,
        )

    async def resolve(self, hostname: str, *, trace: Trace, timeout: float) -> Resolution:
        """Resolve `hostname` with every engine of this run, concurrently, within `timeout`
        (plus the duplicate window, which is itself bounded by the timeout)."""
        literal = parse_ip(hostname)
        if literal is not None:
            return Resolution(queries=[], addresses=[str(literal)])
        udp_server = self.server or self.system_nameserver
        system: asyncio.Task[DNSQuery] | None = None
        udp: list[asyncio.Task[list[DNSQuery]]] = []
        async with asyncio.TaskGroup() as group:
            if self.server is None and self.pool is not None:
                system = group.create_task(
                    resolve_getaddrinfo(hostname, trace=trace, timeout=timeout, pool=self.pool)
                )
            if udp_server is not None:
                for query_type in ("A", "AAAA"):
                    udp.append(
                        group.create_task(
                            self._udp(hostname, query_type, udp_server, trace, timeout)
                        )
                    )
        system_queries = [system.result()] if system is not None else []
        udp_queries = [query for task in udp for query in task.result()]
        return Resolution(
            queries=system_queries + udp_queries,
            addresses=_ordered_addresses([system_queries, udp_queries]),
        )
