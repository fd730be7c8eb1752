"""The control's limits, shared by the server and the probe's client: request and reply sizes,
caller roots, deadlines, and how long the probe waits (docs/control.md, "Limits")."""

from __future__ import annotations

MAX_REQUEST_BYTES = 256 * 1024
MAX_TARGETS_PER_REQUEST = 400
MAX_PORTS_PER_TARGET = 8
#: A target id is a time series' key: a list's ids are short; a client's may not be long.
MAX_TARGET_ID_CHARS = 200
#: A target's `x_ca_pem`: at most this many characters and certificates; one request may bring
#: at most MAX_CA_PEMS_PER_REQUEST different ones (each costs a TLS context of ~0.8 MB while
#: it is used, see `tls_context.CONTEXT_CACHE_SIZE`).
MAX_CA_PEM_BYTES = 64 * 1024
MAX_CA_CERTIFICATES = 16
MAX_CA_PEMS_PER_REQUEST = 4
#: A control's reply for one target (observations without bodies: DNS, a few handshakes with
#: their certificate chains, headers) stays far below this; the client accepts this much per
#: target plus the base, and the server cuts a result down to it (`x_truncated`).
MAX_REPLY_BYTES_PER_TARGET = 256 * 1024
MAX_REPLY_BYTES_BASE = 1024 * 1024
#: The whole reply, whatever the number of targets: results past it are dropped (`x_truncated`).
DEFAULT_MAX_REPLY_BYTES = 16 * 1024 * 1024
#: HTTP response heads one target's result keeps before later heads are cut to
#: `observations.TRIMMED_HEADERS` headers (a redirect chain of 64 KiB heads would be ~1.4 MB).
CONTROL_KEPT_HTTP_CHARS = 64 * 1024
#: When a result is still over its limit, every response keeps at most TRIMMED_HEADERS headers,
#: each cut to this many characters.
MAX_KEPT_HEADER_CHARS = 256
DEFAULT_MAX_CONCURRENT_REQUESTS = 4
#: Seconds a client has to send its request head, then its body (a probe behind a throttled
#: link needs ~10 s for 80 KB of targets at 64 kbit/s); a connection is aborted this long
#: after the head, body and measurement deadlines, whatever it does (a client that does not
#: read its reply must not hold a socket).
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 30.0
REPLY_WRITE_SECONDS = 30.0
#: Waiting connections the listening socket holds while the server has no file descriptor free.
LISTEN_BACKLOG = 1024
#: The open-file limit `serve` raises its soft limit towards.
WANTED_OPEN_FILES = 65536
#: Log lines of one kind (aiohttp's errors about clients, failed accepts) per minute, at most.
LOG_BURST = 10
LOG_WINDOW = 60.0


def client_timeout(step_timeout: float) -> float:
    """How long the probe waits for the control: it measures the same flows as we do, a few
    steps deep (DNS, connect, TLS, HTTP with redirects, or several MTProto transports)."""
    return 8 * step_timeout + 10.0
