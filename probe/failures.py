"""The failure vocabulary: one closed set of strings, OONI's where OONI has a name.

Every step records `failure` (one of the strings below, or ``unknown_failure: <message>``)
and `failed_operation`. Exceptions are classified here and nowhere else: by our own
`ProbeFailure`, by errno, by ssl verify code and by type, walking ``__cause__`` and
``__context__`` because httpx wraps httpcore which wraps ssl/OSError.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import re
import socket
import ssl

# --- OONI's strings (reference/FACTS.md §3) -------------------------------------------------
CONNECTION_REFUSED = "connection_refused"
CONNECTION_RESET = "connection_reset"
CONNECTION_ABORTED = "connection_aborted"
HOST_UNREACHABLE = "host_unreachable"
NETWORK_UNREACHABLE = "network_unreachable"
NETWORK_DOWN = "network_down"
TIMED_OUT = "timed_out"  # the kernel's own ETIMEDOUT
GENERIC_TIMEOUT = "generic_timeout_error"  # our deadline expired
EOF_ERROR = "eof_error"
INTERRUPTED = "interrupted"
ADDRESS_NOT_AVAILABLE = "address_not_available"
ADDRESS_IN_USE = "address_in_use"
PERMISSION_DENIED = "permission_denied"
PROTOCOL_NOT_SUPPORTED = "protocol_not_supported"
NOT_CONNECTED = "not_connected"
DNS_NXDOMAIN = "dns_nxdomain_error"
DNS_NO_ANSWER = "dns_no_answer"
DNS_REFUSED = "dns_refused_error"
DNS_SERVFAIL = "dns_servfail_error"
DNS_SERVER_MISBEHAVING = "dns_server_misbehaving"
DNS_WRONG_QUERY_ID = "dns_reply_with_wrong_query_id"
DNS_TEMPORARY_FAILURE = "dns_temporary_failure"
DNS_NON_RECOVERABLE = "dns_non_recoverable_failure"
SSL_INVALID_HOSTNAME = "ssl_invalid_hostname"
SSL_UNKNOWN_AUTHORITY = "ssl_unknown_authority"
SSL_INVALID_CERTIFICATE = "ssl_invalid_certificate"
SSL_FAILED_HANDSHAKE = "ssl_failed_handshake"

# --- our own, where OONI has no name (documented in docs/failures.md) ---------------------
#: the MTProto peer answered, but not with MTProto (HTML, TLS, random bytes: a middlebox)
MTPROTO_FOREIGN_REPLY = "mtproto_foreign_reply"
#: a resPQ arrived whose nonce is not ours: never trust it
MTPROTO_NONCE_MISMATCH = "mtproto_nonce_mismatch"
#: the reply announced a length we refuse to allocate
MTPROTO_ABSURD_LENGTH = "mtproto_absurd_length"
#: an MTProxy fake-TLS check: the answer to our ClientHello was TLS, but not signed with the
#: proxy's secret (a real TLS server for the domain, a censor's middlebox, or a wrong secret)
MTPROXY_FAKE_TLS_MISMATCH = "mtproxy_fake_tls_mismatch"
#: a QUIC connection closed with an error that is not a TLS alert (a QUIC transport error)
QUIC_CONNECTION_CLOSED = "quic_connection_closed"
HTTP_TOO_MANY_REDIRECTS = "http_too_many_redirects"
#: a redirect we refuse to follow (non-HTTP scheme, public→private hop); recorded, not followed
HTTP_REDIRECT_REFUSED = "http_redirect_refused"
#: the peer sent bytes that are not HTTP/1.x
HTTP_INVALID_RESPONSE = "http_invalid_response"
#: the control server refuses to measure a private/reserved destination
CONTROL_REFUSED_DESTINATION = "control_refused_destination"
#: no control server answered (each URL's own failure is logged)
CONTROL_UNREACHABLE = "control_unreachable"
#: the control server answered, but not with a usable reply (HTTP error status, bad JSON)
CONTROL_HTTP_ERROR = "control_http_error"
#: the step was skipped because an earlier step of the same flow failed
SKIPPED = "skipped"
#: the name cannot be put in a DNS query (empty label, label over 63 bytes, bad IDNA): no
#: packet was sent, so this says nothing about the network
DNS_INVALID_HOSTNAME = "dns_invalid_hostname"
#: public-address discovery (publicip.py, docs/publicip.md): only datagrams that are not a
#: valid STUN Binding success response came (not STUN, another message type, a truncated
#: attribute, no mapped address)
STUN_INVALID_REPLY = "stun_invalid_reply"
#: only STUN replies carrying another transaction id came: never trusted (spoofed or stale)
STUN_WRONG_TRANSACTION_ID = "stun_wrong_transaction_id"
#: the STUN server answered our Binding request with an error response
STUN_ERROR_RESPONSE = "stun_error_response"
#: the "what is my IP" page answered, but not 200 with one IP address in its body
IP_ECHO_INVALID_REPLY = "ip_echo_invalid_reply"

# failed_operation values
RESOLVE = "resolve"
CONNECT = "connect"
TLS_HANDSHAKE = "tls_handshake"
HTTP_ROUND_TRIP = "http_round_trip"
READ = "read"
WRITE = "write"
MTPROTO_HANDSHAKE = "mtproto_handshake"
MTPROXY_FAKE_TLS = "mtproxy_fake_tls"
QUIC_HANDSHAKE = "quic_handshake"  # the fake-TLS hello exchange with an MTProxy
STUN_BINDING = "stun_binding"

UNKNOWN_PREFIX = "unknown_failure: "


class ProbeFailure(Exception):
    """Raised inside a step to name a failure directly (it is caught and recorded there)."""

    def __init__(self, failure: str, message: str = "") -> None:
        super().__init__(message or failure)
        self.failure = failure


_ERRNO_FAILURES: dict[int, str] = {
    errno.ECONNREFUSED: CONNECTION_REFUSED,
    errno.ECONNRESET: CONNECTION_RESET,
    errno.EPIPE: CONNECTION_RESET,  # writing after an RST is the same event seen later
    errno.ECONNABORTED: CONNECTION_ABORTED,
    errno.EHOSTUNREACH: HOST_UNREACHABLE,
    errno.ENETUNREACH: NETWORK_UNREACHABLE,
    errno.ENETDOWN: NETWORK_DOWN,
    errno.ETIMEDOUT: TIMED_OUT,
    errno.EADDRNOTAVAIL: ADDRESS_NOT_AVAILABLE,
    errno.EADDRINUSE: ADDRESS_IN_USE,
    errno.EACCES: PERMISSION_DENIED,
    errno.EPERM: PERMISSION_DENIED,  # nftables "reject with admin-prohibited" on local output
    errno.EPROTONOSUPPORT: PROTOCOL_NOT_SUPPORTED,
    errno.EAFNOSUPPORT: NETWORK_UNREACHABLE,  # no IPv6 stack at all
    errno.ENOTCONN: NOT_CONNECTED,
    errno.EINTR: INTERRUPTED,
}

_GAI_FAILURES: dict[int, str] = {
    socket.EAI_NONAME: DNS_NXDOMAIN,
    socket.EAI_AGAIN: DNS_TEMPORARY_FAILURE,
    socket.EAI_FAIL: DNS_NON_RECOVERABLE,
}
for _name, _failure in (("EAI_NODATA", DNS_NO_ANSWER), ("EAI_ADDRFAMILY", DNS_NO_ANSWER)):
    if hasattr(socket, _name):
        _GAI_FAILURES[getattr(socket, _name)] = _failure

# OpenSSL X509_V_ERR_* codes (x509_vfy.h)
_VERIFY_FAILURES: dict[int, str] = {
    2: SSL_UNKNOWN_AUTHORITY,  # unable to get issuer certificate
    18: SSL_UNKNOWN_AUTHORITY,  # self-signed leaf
    19: SSL_UNKNOWN_AUTHORITY,  # self-signed certificate in chain
    20: SSL_UNKNOWN_AUTHORITY,  # unable to get local issuer certificate
    21: SSL_UNKNOWN_AUTHORITY,  # unable to verify the first certificate
    9: SSL_INVALID_CERTIFICATE,  # not yet valid
    10: SSL_INVALID_CERTIFICATE,  # expired
    62: SSL_INVALID_HOSTNAME,  # hostname mismatch
    64: SSL_INVALID_HOSTNAME,  # IP address mismatch
}

_IPV4_RE = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
# Candidate IPv6 literals; each candidate is checked with ipaddress before it is replaced,
# so times like 12:30:45 are left alone.
_IPV6_RE = re.compile(r"(?<![\w:])[0-9A-Fa-f:]*:[0-9A-Fa-f:.]+(?:%\w+)?(?![\w:])")
SCRUBBED = "[scrubbed]"


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True


def scrub_ip_addresses(text: str) -> str:
    """Replace every IPv4 and IPv6 literal in `text` with ``[scrubbed]``."""
    text = _IPV4_RE.sub(SCRUBBED, text)
    return _IPV6_RE.sub(lambda m: SCRUBBED if _is_ipv6(m.group(0)) else m.group(0), text)


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, then its causes and contexts, without loops."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not e for e in seen):
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _classify_one(exc: BaseException) -> str | None:
    if isinstance(exc, ProbeFailure):
        return exc.failure
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _VERIFY_FAILURES.get(exc.verify_code, SSL_INVALID_CERTIFICATE)
    if isinstance(exc, ssl.SSLZeroReturnError | ssl.SSLEOFError):
        return EOF_ERROR
    if isinstance(exc, ssl.SSLError):
        # An SSLError may carry an errno from the socket underneath (reset during handshake).
        if exc.errno in _ERRNO_FAILURES and not exc.reason:
            return _ERRNO_FAILURES[exc.errno]
        if "EOF" in str(exc) or exc.reason == "UNEXPECTED_EOF_WHILE_READING":
            return EOF_ERROR
        return SSL_FAILED_HANDSHAKE
    if isinstance(exc, socket.gaierror):
        return _GAI_FAILURES.get(exc.errno or 0)
    if isinstance(exc, OSError) and exc.errno in _ERRNO_FAILURES:
        return _ERRNO_FAILURES[exc.errno]
    if isinstance(exc, TimeoutError):  # asyncio.timeout's expiry (no errno)
        return GENERIC_TIMEOUT
    if isinstance(exc, asyncio.IncompleteReadError | EOFError):
        return EOF_ERROR
    if isinstance(exc, ConnectionResetError):
        return CONNECTION_RESET
    if isinstance(exc, ConnectionRefusedError):
        return CONNECTION_REFUSED
    return _classify_library(exc)


def _classify_library(exc: BaseException) -> str | None:
    """dnspython and httpx exceptions, imported lazily so this module stays light."""
    module = type(exc).__module__
    if module.startswith("dns."):
        import dns.exception
        import dns.resolver

        if isinstance(exc, dns.resolver.NXDOMAIN):
            return DNS_NXDOMAIN
        if isinstance(exc, dns.resolver.NoAnswer):
            return DNS_NO_ANSWER
        if isinstance(exc, dns.exception.Timeout):
            return GENERIC_TIMEOUT
        if isinstance(exc, dns.exception.FormError | dns.exception.SyntaxError):
            return DNS_SERVER_MISBEHAVING
    if module.startswith(("httpx", "httpcore")):
        name = type(exc).__name__
        if "Timeout" in name:
            return GENERIC_TIMEOUT
        if name == "RemoteProtocolError":
            # "Server disconnected" is httpcore's word for EOF on an HTTP/2 connection
            text = str(exc).lower()
            closed = "closed" in text or "disconnected" in text
            return EOF_ERROR if closed else HTTP_INVALID_RESPONSE
        if name == "TooManyRedirects":
            return HTTP_TOO_MANY_REDIRECTS
    if module.startswith(("h11", "h2.", "hpack", "hyperframe")):
        return HTTP_INVALID_RESPONSE
    return None


def classify(exc: BaseException) -> str:
    """The failure string for `exc`. Never raises; cancellation must not be passed here."""
    for link in _chain(exc):
        failure = _classify_one(link)
        if failure is not None:
            return failure
    message = str(exc) or type(exc).__name__
    return UNKNOWN_PREFIX + scrub_ip_addresses(f"{type(exc).__name__}: {message}")[:300]


def is_timeout(failure: str | None) -> bool:
    return failure in (GENERIC_TIMEOUT, TIMED_OUT)
