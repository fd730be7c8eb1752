"""HTTP: one request/response round trip over a stream we opened, and the redirect policy.

We speak HTTP/1.1 with our own small codec (wire.py: h11's grammar and framing rules for the
one request and one response we need) over our own `ByteStream`, so the request goes to
exactly the address we connected to while Host (and, below us, SNI) carry the URL's host name.
Doing the I/O ourselves also gives the bounds a measurement needs against a hostile peer,
which a client library does not:

- one deadline for the whole exchange (write, head, body), so a server trickling a byte every
  few seconds ends as `generic_timeout_error` at the deadline instead of never;
- at most `body_cap` *decoded* bytes: gzip/deflate is inflated with a bounded
  `zlib.decompressobj().decompress(data, max_length)`, so a gzip bomb costs at most the cap,
  and we stop reading as soon as the cap is reached (an endless body is never downloaded);
- an incomplete response head is bounded by MAX_HEAD_SIZE.

Redirects are not followed here. `http_round_trip` reports the resolved `location`; the caller
asks `check_redirect` whether to follow it, resolves the next host, checks the address with
`refuse_private_hop`, connects and calls `http_round_trip` again, one `HTTPTransaction` per hop.

Modules: `exchange.py` (the round trip: request, events, the observation), `wire.py` (the
request's bytes, the response parser), `body.py` (the bounded decoder, charset, <title>),
`redirects.py` (the pure redirect policy).
"""

from __future__ import annotations

from probe.observations.http import MAX_TITLE_CHARS, REDIRECT_CODES, extract_title
from probe.steps.http.body import _BodyReader as _BodyReader  # tests drive the decoder directly
from probe.steps.http.exchange import (
    BROWSER_HEADERS,
    DEFAULT_BODY_CAP,
    MAX_HEAD_SIZE,
    MAX_INFORMATIONAL_RESPONSES,
    READ_SIZE,
    http_round_trip,
)
from probe.steps.http.redirects import (
    DEFAULT_MAX_REDIRECTS,
    FOLLOWABLE_SCHEMES,
    check_redirect,
    refuse_private_hop,
    resolve_location,
)

__all__ = [
    "BROWSER_HEADERS",
    "DEFAULT_BODY_CAP",
    "DEFAULT_MAX_REDIRECTS",
    "FOLLOWABLE_SCHEMES",
    "MAX_HEAD_SIZE",
    "MAX_INFORMATIONAL_RESPONSES",
    "MAX_TITLE_CHARS",
    "READ_SIZE",
    "REDIRECT_CODES",
    "check_redirect",
    "extract_title",
    "http_round_trip",
    "refuse_private_hop",
    "resolve_location",
]
