"""The probe's own public address, found without a control server: STUN and HTTPS echo.

A volunteer's public address must never appear in a result record, so the probe has to know it
in order to scrub it (and to look up its network's ASN). The control server echoes it; this
module finds it when no control answers. Like OONI Probe's `iplookup` it asks several independent
services; unlike OONI, which takes the first method that answers (in random order), it asks
them all at once and takes, per address family, the strict majority of the answers:

- `stun_binding`: one RFC 5389 Binding request over UDP to one server address; the reply's
  XOR-MAPPED-ADDRESS (or, from old servers, MAPPED-ADDRESS) is where our datagram came from.
- `https_echo`: GET a "what is my IP" page pinned to one resolved address, TLS verified (system
  roots plus `ca_files`), at most `ECHO_BODY_CAP` bytes, holding a bare address or an ``ip=``
  line (Cloudflare's trace format).
- `discover`: resolves every server with the run's `dns.Resolver`, tries the first IPv4 and the
  first IPv6 address of each, all concurrently, within one short deadline, and decides.

Each attempt is recorded as a `PublicIPObservation`, which never holds the answered address,
in any form: only whether there was one, its family, whether it is public and whether it agreed
with the majority. The address itself travels beside the observation (`PublicIPResult.address`,
`Discovery.ipv4`/`ipv6`/`answers`), in memory only, and is left out of every `repr`.

An answer that is not a public address (private, loopback, reserved, a bogon, or an IPv6 address
that leads to one through NAT64, 6to4 or Teredo) is never taken as ours unless it lies inside
`allow_nets` (a lab option). STUN is unauthenticated UDP, so an on-path censor can rewrite its
answers; the HTTPS answers cannot be forged without a trusted certificate. A liar outvoted
loses; a tie or no answer at all gives None, and the caller then redacts more broadly.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import struct
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from probe import dns, failures, http, tcp, tls, udp
from probe.addresses import in_networks, is_public, parse_unmapped
from probe.observations import Trace, format_address

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The whole discovery ends within about this many seconds: it runs before the measurements,
#: and a volunteer on a blocked network should not wait for it.
DEFAULT_TIMEOUT = 3.0

#: Public STUN servers, one per operator (two servers of one operator would give it two votes):
#: - stun.l.google.com:19302: Google's, the most used public STUN server (many WebRTC apps),
#:   IPv4 and IPv6; OONI Probe's `stun_google` method.
#: - stun.cloudflare.com:3478: Cloudflare's anycast STUN service, IPv4 and IPv6; OONI Probe's
#:   `stun_cloudflare` method.
#: stun1..4.l.google.com are the same operator and infrastructure as stun.l.google.com, so
#: they are left out.
DEFAULT_STUN_SERVERS: tuple[tuple[str, int], ...] = (
    ("stun.l.google.com", 19302),
    ("stun.cloudflare.com", 3478),
)

#: "What is my IP" pages over HTTPS (answers a censor cannot forge without a trusted
#: certificate), chosen so that each family has at least three operators voting:
#: - https://www.cloudflare.com/cdn-cgi/trace: Cloudflare, IPv4 and IPv6, an ``ip=`` line
#:   among others; OONI Probe's `cloudflare` method.
#: - https://api.ipify.org/: ipify, IPv4 only (no AAAA), the bare address.
#: - https://api6.ipify.org/: ipify, IPv6 only, the bare address.
#: - https://checkip.amazonaws.com/: Amazon Web Services, IPv4 only, the bare address and a
#:   newline: a third operator for IPv4.
#: With the STUN servers above, IPv4 has five voters from four operators and IPv6 four voters
#: from three, so no single operator reaches a strict majority of all answers alone.
DEFAULT_ECHO_URLS: tuple[str, ...] = (
    "https://www.cloudflare.com/cdn-cgi/trace",
    "https://api.ipify.org/",
    "https://api6.ipify.org/",
    "https://checkip.amazonaws.com/",
)

# --- STUN (RFC 5389) -------------------------------------------------------------------------

STUN_MAGIC_COOKIE = 0x2112A442
STUN_BINDING_REQUEST = 0x0001
STUN_BINDING_SUCCESS = 0x0101
STUN_BINDING_ERROR = 0x0111
STUN_ATTR_MAPPED_ADDRESS = 0x0001
STUN_ATTR_ERROR_CODE = 0x0009
STUN_ATTR_XOR_MAPPED_ADDRESS = 0x0020
STUN_HEADER_SIZE = 20
#: Bytes read per datagram: a Binding response is well under 100 bytes; anything that does not
#: fit is cut by the kernel, fails the length check and is skipped.
MAX_STUN_DATAGRAM = 2048
#: Datagrams read for one Binding request before we stop listening (a flood must not keep us
#: busy until the deadline).
MAX_STUN_DATAGRAMS = 32
#: Attributes looked at in one message (each takes at least 4 bytes, so a datagram bounds this
#: too).
MAX_STUN_ATTRIBUTES = 64
#: RFC 5389 7.2.1: retransmit after 500 ms, doubling each time; the deadline bounds the rest.
STUN_INITIAL_RTO = 0.5
#: Requests sent for one Binding transaction, retransmissions included (3 fit in 3 s).
MAX_STUN_REQUESTS = 3

_FAMILY_IPV4 = 0x01
_FAMILY_IPV6 = 0x02
_COOKIE_BYTES = STUN_MAGIC_COOKIE.to_bytes(4, "big")

# --- HTTPS echo ------------------------------------------------------------------------------

#: Bytes of the echo page kept: an address needs 45 at most, and Cloudflare's trace has its
#: ``ip=`` line in the first hundred bytes.
ECHO_BODY_CAP = 256
#: The echo socket's receive buffer (as small as page fetches use): the page is tiny.
ECHO_RECEIVE_BUFFER = 16 * 1024
#: How long after its deadline the echo step's backstop fires: the layers' own deadlines
#: (connect, handshake, round trip) expire first and name the layer that ran out of time.
ECHO_BACKSTOP = 0.1
#: Share of the discovery deadline that resolving a server's name may use.
RESOLVE_SHARE = 0.5

#: Observation `method` values.
STUN = "stun"
HTTPS_ECHO = "https_echo"

StunOutcome = Literal["success", "error", "wrong_id", "invalid"]


@dataclass(slots=True)
class PublicIPObservation:
    """One attempt to learn our address from one server address. Never holds the answer.

    `public` is true when the answer counts as a public address (globally routable, or inside
    the lab's `allow_nets`); `agreed` when it equals the majority of its family's answers.
    `response_code` is the HTTP status of an echo page, or the error code of a STUN error
    response."""

    method: str
    server: str  # "host:port" of a STUN server as configured, or the echo URL
    server_address: str | None = None  # "ip:port" contacted; None when the name did not resolve
    server_family: int | None = None  # 4 | 6
    answer_family: int | None = None  # 4 | 6 when an address came back
    public: bool = False
    agreed: bool = False
    response_code: int | None = None
    failure: str | None = None
    failed_operation: str | None = None
    t0: float = 0.0
    t: float = 0.0

    @property
    def answered(self) -> bool:
        return self.answer_family is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "server": self.server,
            "server_address": self.server_address,
            "server_family": self.server_family,
            "answer_family": self.answer_family,
            "public": self.public,
            "agreed": self.agreed,
            "response_code": self.response_code,
            "failure": self.failure,
            "failed_operation": self.failed_operation,
            "t0": self.t0,
            "t": self.t,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PublicIPObservation:
        def text(key: str) -> str | None:
            value = d.get(key)
            return value if isinstance(value, str) else None

        def integer(key: str) -> int | None:
            value = d.get(key)
            return value if type(value) is int else None

        def number(key: str) -> float:
            value = d.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                return 0.0
            return float(value) if abs(value) < float("inf") else 0.0

        return cls(
            method=text("method") or "",
            server=text("server") or "",
            server_address=text("server_address"),
            server_family=integer("server_family"),
            answer_family=integer("answer_family"),
            public=d.get("public") is True,
            agreed=d.get("agreed") is True,
            response_code=integer("response_code"),
            failure=text("failure"),
            failed_operation=text("failed_operation"),
            t0=number("t0"),
            t=number("t"),
        )


@dataclass(slots=True)
class PublicIPResult:
    """What a step returns: the observation, and the answered address kept only in memory."""

    observation: PublicIPObservation
    address: str | None = field(default=None, repr=False)


@dataclass(slots=True)
class Discovery:
    """The outcome of `discover`. The addresses stay in memory (not in `repr`, not in
    `to_dict`).

    `ipv4`/`ipv6`: the strict majority of the answers of that family when it is a public (or
    allowed) address, else None. `answers`: every distinct public (or allowed) address any server
    answered, the majority's first. Scrubbing all of `answers` protects the volunteer when the
    majority is wrong, at a price: a lying server can then make an address of its choice vanish
    from the records."""

    ipv4: str | None = field(default=None, repr=False)
    ipv6: str | None = field(default=None, repr=False)
    answers: tuple[str, ...] = field(default=(), repr=False)
    observations: list[PublicIPObservation] = field(default_factory=list)

    def _family(self, family: int, found: str | None) -> dict[str, Any]:
        answered = [o for o in self.observations if o.answer_family == family]
        return {
            "found": found is not None,
            "answers": len(answered),
            "agreed": sum(o.agreed for o in answered),
        }

    def to_dict(self) -> dict[str, Any]:
        """``{"ipv4": {found, answers, agreed}, "ipv6": {...}, "observations": [...]}``."""
        return {
            "ipv4": self._family(4, self.ipv4),
            "ipv6": self._family(6, self.ipv6),
            "observations": [o.to_dict() for o in self.observations],
        }


# --- addresses -------------------------------------------------------------------------------


def _networks(allow_nets: Iterable[str | Network]) -> tuple[Network, ...]:
    """The allowed networks; ValueError for a malformed one (the caller's bug)."""
    return tuple(ipaddress.ip_network(n) if isinstance(n, str) else n for n in allow_nets)


def _normalize(text: str) -> str | None:
    """One spelling per address: IPv4-mapped IPv6 becomes its IPv4, IPv6 compressed."""
    address = parse_unmapped(text)
    return str(address) if address is not None else None


def _family(address: str) -> int:
    return 6 if ":" in address else 4


def counts_as_public(address: str, allow_nets: Sequence[Network] = ()) -> bool:
    """True when `address` may be taken as the probe's own: public (`addresses.is_public`,
    which also refuses IPv4-mapped, NAT64, 6to4 and Teredo forms of private addresses), or
    inside `allow_nets`."""
    parsed = parse_unmapped(address)
    if parsed is None:
        return False
    return in_networks(parsed, allow_nets) or is_public(str(parsed))


# --- STUN wire format ------------------------------------------------------------------------


def binding_request(transaction_id: bytes) -> bytes:
    """A Binding request without attributes (RFC 5389 6): nothing but the 20-byte header."""
    if len(transaction_id) != 12:
        raise ValueError("a STUN transaction id is 96 bits")
    return struct.pack("!HHI", STUN_BINDING_REQUEST, 0, STUN_MAGIC_COOKIE) + transaction_id


@dataclass(frozen=True, slots=True)
class StunReply:
    """What one datagram was: our success response (with the address), our error response
    (with its code, when readable), a STUN message of another transaction, or not valid."""

    outcome: StunOutcome
    address: str | None = field(default=None, repr=False)
    error_code: int | None = None


_INVALID = StunReply("invalid")


def _decode_address(value: bytes, xor: bool, transaction_id: bytes) -> str | None:
    """MAPPED-ADDRESS / XOR-MAPPED-ADDRESS value → address text, or None when malformed."""
    if len(value) < 4:
        return None
    family = value[1]
    raw = value[4:]
    if family == _FAMILY_IPV4 and len(raw) == 4:
        mask = _COOKIE_BYTES
    elif family == _FAMILY_IPV6 and len(raw) == 16:
        mask = _COOKIE_BYTES + transaction_id
    else:
        return None
    if xor:
        raw = bytes(a ^ b for a, b in zip(raw, mask, strict=True))
    return _normalize(str(ipaddress.ip_address(raw)))


def _error_code(value: bytes) -> int | None:
    """ERROR-CODE (RFC 5389 15.6): class (3..6) x 100 + number (0..99); None when malformed.
    The reason phrase is never read: it is the server's free text."""
    if len(value) < 4:
        return None
    error_class, number = value[2] & 0x07, value[3]
    if not 3 <= error_class <= 6 or number > 99:
        return None
    return error_class * 100 + number


def parse_stun_reply(data: bytes, transaction_id: bytes) -> StunReply:
    """Classify one datagram as a reply to our Binding request. Never raises.

    The header must have the two top bits clear, the magic cookie, and a length that is a
    multiple of 4 and equals the bytes that follow; every attribute must fit inside the message.
    Only the first occurrence of an attribute counts (RFC 5389 15); XOR-MAPPED-ADDRESS wins over
    MAPPED-ADDRESS; a malformed address attribute makes the whole reply invalid."""
    if len(data) < STUN_HEADER_SIZE:
        return _INVALID
    message_type, length, cookie = struct.unpack_from("!HHI", data)
    if message_type & 0xC000 or cookie != STUN_MAGIC_COOKIE:
        return _INVALID
    if length % 4 or STUN_HEADER_SIZE + length != len(data):
        return _INVALID
    if data[8:20] != transaction_id:
        return StunReply("wrong_id")
    if message_type not in (STUN_BINDING_SUCCESS, STUN_BINDING_ERROR):
        return _INVALID
    attributes: dict[int, bytes] = {}
    offset = STUN_HEADER_SIZE
    for _ in range(MAX_STUN_ATTRIBUTES):
        if offset >= len(data):
            break
        if offset + 4 > len(data):
            return _INVALID
        attribute_type, attribute_length = struct.unpack_from("!HH", data, offset)
        start = offset + 4
        end = start + attribute_length
        if end > len(data):
            return _INVALID  # a truncated attribute
        attributes.setdefault(attribute_type, data[start:end])
        offset = end + (-attribute_length % 4)
    if offset != len(data):  # padding missing, or more attributes than we read
        return _INVALID
    if message_type == STUN_BINDING_ERROR:
        value = attributes.get(STUN_ATTR_ERROR_CODE)
        return StunReply("error", error_code=_error_code(value) if value is not None else None)
    for attribute_type, xor in (
        (STUN_ATTR_XOR_MAPPED_ADDRESS, True),
        (STUN_ATTR_MAPPED_ADDRESS, False),
    ):
        value = attributes.get(attribute_type)
        if value is not None:
            address = _decode_address(value, xor, transaction_id)
            return StunReply("success", address=address) if address is not None else _INVALID
    return _INVALID


# --- the STUN step ---------------------------------------------------------------------------


def _check_source(server_ip: str, source_address: str | None) -> None:
    """A source address of the other family cannot be bound (the C library would say so as a
    lookup failure, which reads like DNS): name it address_not_available instead."""
    if source_address and _family(source_address) != _family(server_ip):
        raise failures.ProbeFailure(failures.ADDRESS_NOT_AVAILABLE, "source of another family")


def _new_trace(trace: Trace | None) -> Trace:
    return trace if trace is not None else Trace(zero=time.monotonic(), transaction_id=0)


def _finish(
    observation: PublicIPObservation,
    address: str | None,
    trace: Trace,
    allow_nets: Sequence[Network],
) -> PublicIPResult:
    if address is not None:
        observation.answer_family = _family(address)
        observation.public = counts_as_public(address, allow_nets)
    observation.t = trace.now()
    return PublicIPResult(observation, address)


async def stun_binding(
    server_ip: str,
    port: int,
    *,
    timeout: float,
    trace: Trace | None = None,
    source_address: str | None = None,
    counter: tcp.ByteCounter | None = None,
    allow_nets: Iterable[str | Network] = (),
    server: str | None = None,
) -> PublicIPResult:
    """One STUN Binding transaction with `server_ip`:`port` over UDP, within `timeout` seconds.

    The socket is connected, so the kernel drops datagrams from any other source (and an ICMP
    port unreachable becomes connection_refused). The request is sent again after 0.5 s and 1 s
    more (RFC 5389's retransmission, at most `MAX_STUN_REQUESTS` in all), with the same random
    96-bit transaction id. Datagrams that are not a valid reply to it are skipped while we wait;
    when nothing valid came, the failure says what we saw: `stun_wrong_transaction_id`, else
    `stun_invalid_reply`, else generic_timeout_error. An error response ends the transaction
    (`stun_error_response`). `server` names the server in the observation (default ip:port).
    Only cancellation escapes."""
    nets = _networks(allow_nets)
    trace = _new_trace(trace)
    loop = asyncio.get_running_loop()
    contacted = format_address(server_ip, port)
    observation = PublicIPObservation(
        method=STUN,
        server=server or contacted,
        server_address=contacted,
        server_family=_family(server_ip),
        t0=trace.now(),
    )
    address: str | None = None
    operation = failures.CONNECT
    saw_wrong_id = saw_invalid = False
    sock: socket.socket | None = None
    try:
        async with asyncio.timeout(timeout):
            transaction_id = os.urandom(12)
            request = binding_request(transaction_id)
            _check_source(server_ip, source_address)
            sock = udp.udp_socket(server_ip, source_address)
            if "%" in server_ip:  # a zone needs the loop's address resolution (a scope id)
                await loop.sock_connect(sock, (server_ip, port))
            else:
                sock.connect((server_ip, port))  # UDP: sets the peer, never blocks
            requests = datagrams = 0
            rto = STUN_INITIAL_RTO
            next_send = loop.time()
            while True:
                if requests < MAX_STUN_REQUESTS and loop.time() >= next_send:
                    operation = failures.WRITE
                    await loop.sock_sendall(sock, request)
                    requests += 1
                    if counter is not None:
                        counter.sent += len(request)
                    next_send = loop.time() + rto
                    rto *= 2
                operation = failures.STUN_BINDING
                data = await udp.receive_before(
                    loop,
                    sock,
                    next_send if requests < MAX_STUN_REQUESTS else None,
                    MAX_STUN_DATAGRAM,
                )
                if data is None:
                    continue  # time to retransmit
                datagrams += 1
                if counter is not None:
                    counter.received += len(data)
                reply = parse_stun_reply(data, transaction_id)
                if reply.outcome == "success":
                    address = reply.address
                    break
                if reply.outcome == "error":
                    observation.response_code = reply.error_code
                    raise failures.ProbeFailure(failures.STUN_ERROR_RESPONSE)
                if reply.outcome == "wrong_id":
                    saw_wrong_id = True
                else:
                    saw_invalid = True
                if datagrams >= MAX_STUN_DATAGRAMS:
                    raise TimeoutError  # enough noise: as if the deadline had come
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        failure = failures.classify(exc)
        if failure == failures.GENERIC_TIMEOUT and saw_wrong_id:
            failure = failures.STUN_WRONG_TRANSACTION_ID
        elif failure == failures.GENERIC_TIMEOUT and saw_invalid:
            failure = failures.STUN_INVALID_REPLY
        observation.failure = failure
        observation.failed_operation = operation
    finally:
        if sock is not None:
            sock.close()
    return _finish(observation, address, trace, nets)


# --- the HTTPS echo step ---------------------------------------------------------------------


def _strict_ip(text: str) -> str | None:
    """`text` if it is exactly one IP literal (no brackets, zone or port), normalised."""
    if not text or len(text) > 45 or "%" in text:
        return None
    try:
        return _normalize(str(ipaddress.ip_address(text)))
    except ValueError:
        return None


def parse_echo_body(body: str, *, truncated: bool = False) -> str | None:
    """The address in an echo page, or None.

    Either ``ip=<address>`` lines (Cloudflare's trace: ``key=value`` lines), which must all
    name the same address, or a body that is one address and surrounding whitespace (ipify,
    checkip.amazonaws.com). When the body was cut at the cap, its last line may be incomplete
    and is ignored, and a bare body is refused."""
    lines = body.splitlines()
    if truncated and lines and not body.endswith(("\n", "\r")):
        lines = lines[:-1]
    found = {line.strip()[3:].strip() for line in lines if line.strip().startswith("ip=")}
    if found:
        addresses = {_strict_ip(candidate) for candidate in found}
        if len(addresses) != 1:
            return None
        return addresses.pop()
    if truncated:
        return None
    return _strict_ip(body.strip())


def _check_echo_url(url: str) -> str:
    """The URL's host name; ValueError for anything but an https URL (the caller's bug)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise ValueError(f"not an https URL: {url[:200]!r}")
    _ = parts.port  # raises ValueError for a bad port
    return parts.hostname


async def https_echo(
    url: str,
    ip: str,
    *,
    timeout: float,
    trace: Trace | None = None,
    ca_files: tuple[str, ...] = (),
    source_address: str | None = None,
    counter: tcp.ByteCounter | None = None,
    allow_nets: Iterable[str | Network] = (),
    body_cap: int = ECHO_BODY_CAP,
) -> PublicIPResult:
    """GET `url` from `ip` (TCP, TLS verified for the URL's host with the system roots plus
    `ca_files`, HTTP/1.1), all within `timeout` seconds, and read our address from the page.

    A status other than 200, or a body that is not an address (see `parse_echo_body`), is
    `ip_echo_invalid_reply`; redirects are not followed. `failed_operation` names the layer that
    failed: connect, tls_handshake, http_round_trip or read. A URL that is not https, or an
    unreadable CA file, raises ValueError (the caller's bug); otherwise only cancellation
    escapes."""
    hostname = _check_echo_url(url)
    context = tls.client_context(ca_files)
    nets = _networks(allow_nets)
    trace = _new_trace(trace)
    loop = asyncio.get_running_loop()
    port = urlsplit(url).port or 443
    contacted = format_address(ip, port)
    observation = PublicIPObservation(
        method=HTTPS_ECHO,
        server=url,
        server_address=contacted,
        server_family=_family(ip),
        t0=trace.now(),
    )
    address: str | None = None
    operation = failures.CONNECT
    stream: tcp.ByteStream | None = None
    deadline = loop.time() + timeout

    def remaining() -> float:
        return max(deadline - loop.time(), 0.0)

    try:
        # Each layer owns the deadline and records which one ran out; this is the backstop.
        async with asyncio.timeout_at(deadline + ECHO_BACKSTOP):
            _check_source(ip, source_address)
            connected = await tcp.tcp_connect(
                ip,
                port,
                trace=trace,
                timeout=remaining(),
                source_address=source_address,
                counter=counter,
                receive_buffer=ECHO_RECEIVE_BUFFER,
            )
            if connected.stream is None:
                raise failures.ProbeFailure(
                    connected.observation.failure or failures.GENERIC_TIMEOUT
                )
            operation = failures.TLS_HANDSHAKE
            handshake = await tls.tls_handshake(
                connected.stream, hostname, trace=trace, timeout=remaining(), context=context
            )
            if handshake.stream is None:  # the TCP stream is closed by then
                raise failures.ProbeFailure(
                    handshake.observation.failure or failures.GENERIC_TIMEOUT
                )
            stream = handshake.stream
            operation = failures.HTTP_ROUND_TRIP
            transaction = await http.http_round_trip(
                stream, url, trace=trace, timeout=remaining(), address=contacted, body_cap=body_cap
            )
            observation.response_code = transaction.response_code
            if transaction.failure is not None:
                operation = transaction.failed_operation or failures.HTTP_ROUND_TRIP
                raise failures.ProbeFailure(transaction.failure)
            if transaction.response_code != 200:
                raise failures.ProbeFailure(failures.IP_ECHO_INVALID_REPLY)
            address = parse_echo_body(
                transaction.body or "", truncated=bool(transaction.body_is_truncated)
            )
            if address is None:
                raise failures.ProbeFailure(failures.IP_ECHO_INVALID_REPLY)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        observation.failure = failures.classify(exc)
        observation.failed_operation = operation
    finally:
        if stream is not None:
            await stream.aclose()  # bounded: close_notify gets tls.CLOSE_NOTIFY_TIMEOUT
    return _finish(observation, address, trace, nets)


# --- discovery -------------------------------------------------------------------------------


async def _resolve(
    resolver: dns.Resolver, hostname: str, trace: Trace, timeout: float
) -> tuple[list[str], str | None]:
    """The first IPv4 and the first IPv6 address of `hostname` (those that exist), or the
    failure."""
    try:
        resolution = await resolver.resolve(hostname, trace=trace, timeout=timeout)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return [], failures.classify(exc)
    picked: list[str] = []
    for family in (4, 6):
        first = next((a for a in resolution.addresses if _family(a) == family), None)
        if first is not None:
            picked.append(first)
    if picked:
        return picked, None
    failure = next((q.failure for q in resolution.queries if q.failure), None)
    return [], failure or failures.DNS_NO_ANSWER


@dataclass(frozen=True, slots=True)
class _Settings:
    resolver: dns.Resolver
    deadline: float
    timeout: float
    allow_nets: tuple[Network, ...]
    ca_files: tuple[str, ...]
    source_address: str | None
    counter: tcp.ByteCounter | None
    zero: float


async def _attempts(
    method: str, name: str, hostname: str, port: int, settings: _Settings, transaction_id: int
) -> list[PublicIPResult]:
    """Resolve `hostname`, then one attempt per family (concurrently) with what is left of the
    deadline. A name that does not resolve is one observation with failed_operation resolve."""
    loop = asyncio.get_running_loop()
    trace = Trace(zero=settings.zero, transaction_id=transaction_id)
    t0 = trace.now()
    budget = max(min(settings.timeout * RESOLVE_SHARE, settings.deadline - loop.time()), 0.0)
    addresses, failure = await _resolve(settings.resolver, hostname, trace, budget)
    if not addresses:
        observation = PublicIPObservation(
            method=method,
            server=name,
            failure=failure,
            failed_operation=failures.RESOLVE,
            t0=t0,
            t=trace.now(),
        )
        return [PublicIPResult(observation)]

    async def attempt(ip: str) -> PublicIPResult:
        remaining = max(settings.deadline - loop.time(), 0.0)
        if method == STUN:
            return await stun_binding(
                ip,
                port,
                timeout=remaining,
                trace=trace,
                source_address=settings.source_address,
                counter=settings.counter,
                allow_nets=settings.allow_nets,
                server=name,
            )
        return await https_echo(
            name,
            ip,
            timeout=remaining,
            trace=trace,
            ca_files=settings.ca_files,
            source_address=settings.source_address,
            counter=settings.counter,
            allow_nets=settings.allow_nets,
        )

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(attempt(ip)) for ip in addresses]
    return [task.result() for task in tasks]


def decide(
    results: Sequence[PublicIPResult], allow_nets: Iterable[str | Network] = ()
) -> Discovery:
    """Per family, the strict majority of the answers of that family (every answer counts,
    public or not), if it is a public (or allowed) address; sets each observation's `agreed`.
    Pure: no I/O, no clock."""
    nets = _networks(allow_nets)
    normalized = [_normalize(r.address) if r.address is not None else None for r in results]
    winners: dict[int, str | None] = {}
    for family in (4, 6):
        votes = Counter(a for a in normalized if a is not None and _family(a) == family)
        winner: str | None = None
        if votes:
            best, count = votes.most_common(1)[0]
            if 2 * count > sum(votes.values()) and counts_as_public(best, nets):
                winner = best
        winners[family] = winner
    answers: list[str] = [w for w in (winners[4], winners[6]) if w is not None]
    for result, address in zip(results, normalized, strict=True):
        if address is None:
            continue
        result.observation.agreed = address == winners[_family(address)]
        if address not in answers and counts_as_public(address, nets):
            answers.append(address)
    return Discovery(
        ipv4=winners[4],
        ipv6=winners[6],
        answers=tuple(answers),
        observations=[r.observation for r in results],
    )


async def discover(
    resolver: dns.Resolver,
    *,
    stun_servers: Sequence[tuple[str, int]] = DEFAULT_STUN_SERVERS,
    echo_urls: Sequence[str] = DEFAULT_ECHO_URLS,
    timeout: float = DEFAULT_TIMEOUT,
    allow_nets: Iterable[str | Network] = (),
    ca_files: tuple[str, ...] = (),
    source_address: str | None = None,
    counter: tcp.ByteCounter | None = None,
) -> Discovery:
    """Ask every STUN server and echo page, concurrently, for our address; decide per family.

    Each name is resolved with `resolver` (so `--resolver` applies), using at most half of
    `timeout`; then its first IPv4 and first IPv6 address are tried, each attempt with what is
    left of the one deadline, so the whole discovery ends within about `timeout` seconds.
    Observations come in the order of `stun_servers`, then `echo_urls`, IPv4 before IPv6. A
    malformed URL, network or CA file raises ValueError; nothing else but cancellation does."""
    nets = _networks(allow_nets)
    for url in echo_urls:
        _check_echo_url(url)
    if echo_urls:
        tls.client_context(ca_files)  # an unreadable CA file is the caller's bug: raise now
    loop = asyncio.get_running_loop()
    settings = _Settings(
        resolver=resolver,
        deadline=loop.time() + timeout,
        timeout=timeout,
        allow_nets=nets,
        ca_files=tuple(ca_files),
        source_address=source_address,
        counter=counter,
        zero=time.monotonic(),
    )
    jobs: list[tuple[str, str, str, int]] = [
        (STUN, format_address(host, port), host, port) for host, port in stun_servers
    ]
    for url in echo_urls:
        jobs.append((HTTPS_ECHO, url, _check_echo_url(url), 0))
    async with asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(_attempts(method, name, host, port, settings, number))
            for number, (method, name, host, port) in enumerate(jobs, start=1)
        ]
    return decide([result for task in tasks for result in task.result()], nets)
