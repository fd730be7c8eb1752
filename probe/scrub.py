"""Keeping the volunteer's address out of result records.

A record is scrubbed as data, before it is encoded: every string in it (dict keys too) is
looked at once, and each IP literal found is parsed and compared by value, so no spelling of an
own address escapes. A candidate is any run that can spell an address, in plain text or
HTML/XML numeric or named entities (``203&#46;0&#46;113&#46;7``, ``&#50;&#48;&#51;``,
``&period;``) or percent-encoding (``203%2E0%2E113%2E7``): dotted IPv4 with any zero padding,
any IPv6 form (upper case, zero-padded groups, compressed differently, a zone id, IPv4-mapped,
IPv4-compatible, a NAT64/6to4/Teredo address carrying the IPv4), ``addr:port`` and
``[v6]:port``, reverse DNS (``7.113.0.203.in-addr.arpa``, ``…ip6.arpa`` nibbles) and dashed
host labels (``203-0-113-7.dyn.isp.example``, ``ip-203-0-113-7``), whatever punctuation or
control character stands around it. A match is replaced with ``[scrubbed]``
(`failures.SCRUBBED`). What stays: a run that only contains the address's digits
(``1203.0.113.7``, ``203.0.113.70``) and a dotted run with more than four numbers
(``203.0.113.7.5``, an OID or a version number, not an address).

Two modes:

* address known — ``Scrubber()`` plus `Scrubber.add` (the control's echo, the machine's global
  IPv6 addresses) and optionally `Scrubber.add_prefix` (the /64 of an IPv6 address: privacy
  addresses rotate inside it, so any address in it is the same household). Own addresses are
  replaced in every string of the record, structured fields included.
* address unknown — ``Scrubber(redact_unknown=True, keep=...)``: on top of the above, every
  *identifying* literal (see `Scrubber.identifying`) in the free text of the record (everything
  not in `STRUCTURED_PATHS`, see `FREE_TEXT_PATHS`) is redacted unless it is in ``keep`` or was
  measured by this record (`measured_addresses`: DNS answers, connected addresses, the target
  definition). Structured fields — the addresses of what was measured — are never redacted, so
  no measurement data is lost; they are scrubbed only when they equal an own address.

Binary fields (`BINARY_PATHS`: raw DNS replies, peer certificates, MTProto's first bytes) are
decoded; an own address in them, packed (4 or 16 bytes, or the 8 bytes of an own /64) or as
ASCII text, is overwritten in place with bytes of the same length (zeros, ``x``) so the field
still decodes and its structure (DNS message, DER) keeps its lengths.

When a response body changes, its ``x_body_sha256`` is set to null: the hash of the original
body would let anyone confirm a guessed address by hashing the scrubbed body with it put back.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from probe.addresses import IPAddress, embedded_ipv4, in_networks, is_public, parse_unmapped
from probe.failures import SCRUBBED

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: `ScrubReport.mode` and the value of the record's ``annotations["x_scrubbed"]``
MODE_KNOWN = "address-known"
MODE_UNKNOWN_REDACTED = "address-unknown-redacted"
#: nothing was learned and nothing redacted (only the machine's own IPv6 addresses, if any,
#: were scrubbed): a runner should not write records in this mode, see `redact_unknown`
MODE_UNKNOWN = "address-unknown"
ANNOTATION = "x_scrubbed"
COUNT_ANNOTATION = "x_scrubbed_count"

#: Never routed on the internet (RFC 5737, RFC 3849): no real volunteer has one, and the test
#: fixtures use them as "the public address", so `Scrubber.add` accepts them by default.
DOCUMENTATION_NETS: tuple[Network, ...] = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)
#: The network-namespace lab's addresses (benchmarking range, RFC 2544): pass as `allow_nets`.
LAB_NETS: tuple[Network, ...] = (ipaddress.ip_network("198.18.0.0/15"),)

#: Anycast addresses of big public resolvers: they name a service, never a household.
PUBLIC_RESOLVERS: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "8.8.8.8",
        "8.8.4.4",
        "1.1.1.1",
        "1.0.0.1",
        "9.9.9.9",
        "149.112.112.112",
        "208.67.222.222",
        "208.67.220.220",
        "94.140.14.14",
        "94.140.15.15",
        "2001:4860:4860::8888",
        "2001:4860:4860::8844",
        "2606:4700:4700::1111",
        "2606:4700:4700::1001",
        "2620:fe::fe",
        "2620:fe::9",
        "2620:119:35::35",
        "2620:119:53::53",
    )
)

# --- record paths -----------------------------------------------------------------------------
# A path is dotted keys; "*" is any list item or any dict value. Observation paths (one DNS
# query, one TCP connect, ...) are written once and placed under every place observations
# appear: test_keys, test_keys.control, and test_keys.x_doh.<name>[] (queries only).

_QUERY_STRUCTURED = (
    "engine",
    "failed_operation",
    "hostname",
    "query_type",
    "resolver_address",
    "answers.*.answer_type",
    "answers.*.ipv4",
    "answers.*.ipv6",
    "answers.*.hostname",
    "answers.*.as_org_name",
)
_OBSERVATIONS_STRUCTURED = (
    "tcp_connect.*.ip",
    "tcp_connect.*.failed_operation",
    "tls_handshakes.*.network",
    "tls_handshakes.*.address",
    "tls_handshakes.*.server_name",
    "tls_handshakes.*.tls_version",
    "tls_handshakes.*.cipher_suite",
    "tls_handshakes.*.negotiated_protocol",
    "tls_handshakes.*.failed_operation",
    "tls_handshakes.*.peer_certificates.*.format",
    "requests.*.request.method",
    "requests.*.response.x_body_sha256",
    "requests.*.request.x_address",
    "requests.*.failed_operation",
    "network_events.*.operation",
    "network_events.*.address",
    "network_events.*.proto",
    "mtproto.*.address",
    "mtproto.*.transport",
    "mtproto.*.reply",
    "mtproto.*.failed_operation",
    "mtproto.*.server_public_key_fingerprints",
)

#: Free text: strings a peer, a middlebox or an exception message put there (observation paths
#: relative to test_keys, test_keys.control, test_keys.x_doh.<name>[] for the query ones). In
#: redaction mode every identifying literal in them that is not a measured address is redacted.
#: Every string *not* in `STRUCTURED_PATHS` is treated the same way, so a field added later is
#: redacted until someone decides otherwise; this list names the ones we know of.
FREE_TEXT_PATHS: tuple[str, ...] = (
    "resolver_ip",  # the whoami answer can be the household's own resolver (see safe_resolver_ip)
    "test_keys.failure",
    "test_keys.control_failure",
    "test_keys.verdict.reason",
    "test_keys.x_endpoints.*.failure",
    "queries.*.failure",
    "queries.*.raw_response",  # binary (base64)
    "tcp_connect.*.status.failure",
    "tls_handshakes.*.failure",
    "tls_handshakes.*.peer_certificates.*.data",  # binary (base64)
    "requests.*.request.url",  # after the first hop: where a redirect pointed
    "requests.*.request.headers_list",  # Host of a redirect hop
    "requests.*.request.headers",
    "requests.*.response.headers_list",
    "requests.*.response.headers",
    "requests.*.response.body",
    "requests.*.response.x_title",
    "requests.*.failure",
    "requests.*.x_location",
    "network_events.*.failure",
    "mtproto.*.failure",
    "mtproto.*.first_bytes",  # binary (hex)
)

#: Never redacted (only an own address is scrubbed from them): what was measured (DNS answers,
#: the addresses connected to, the target definition), the round's own facts and vocabulary.
STRUCTURED_PATHS: tuple[str, ...] = (
    "annotations",
    "data_format_version",
    "input",
    "measurement_start_time",
    "probe_asn",
    "probe_cc",
    "probe_ip",
    "probe_network_name",
    "report_id",
    "resolver_asn",
    "resolver_network_name",
    "software_name",
    "software_version",
    "test_name",
    "test_start_time",
    "test_version",
    "test_keys.target",
    "test_keys.list",
    "test_keys.x_vantage",
    "test_keys.verdict.status",
    "test_keys.verdict.blocking",
    "test_keys.verdict.fingerprints",
    "test_keys.x_endpoints.*.address",
    "test_keys.x_endpoints.*.transport",
    "test_keys.x_endpoints.*.outcome",
    "test_keys.x_endpoints.*.blocking",
    "test_keys.x_endpoints.*.failed_operation",
    # how the public address was learned (publicip): the servers asked, never the answer
    "test_keys.x_ip_discovery.observations.*.method",
    "test_keys.x_ip_discovery.observations.*.server",
    "test_keys.x_ip_discovery.observations.*.server_address",
    "test_keys.x_ip_discovery.observations.*.failed_operation",
)

#: Fields holding bytes: (path, encoding).
BINARY_PATHS: tuple[tuple[str, str], ...] = (
    ("queries.*.raw_response", "base64"),
    ("tls_handshakes.*.peer_certificates.*.data", "base64"),
    ("mtproto.*.first_bytes", "hex"),
)

#: Where the addresses of what was measured are; in redaction mode they (and every IP literal in
#: the target definition, the x_endpoints and x_ip_discovery servers, and `PUBLIC_RESOLVERS`)
#: are kept in free text too, e.g. the answers named in verdict.reason.
MEASURED_ADDRESS_PATHS: tuple[str, ...] = (
    "queries.*.answers.*.ipv4",
    "queries.*.answers.*.ipv6",
    "queries.*.resolver_address",
    "tcp_connect.*.ip",
    "tls_handshakes.*.address",
    "requests.*.request.x_address",
    "network_events.*.address",
    "mtproto.*.address",
)

_OBSERVATION_ROOTS = ("test_keys", "test_keys.control")
_QUERY_ROOTS = ("test_keys.queries.*", "test_keys.control.queries.*", "test_keys.x_doh.*.*")
_OBSERVATION_KEYS = (
    "queries",
    "tcp_connect",
    "tls_handshakes",
    "requests",
    "network_events",
    "mtproto",
)


def _expand(path: str) -> list[str]:
    """An observation-relative path under every root; other paths as they are."""
    first = path.split(".", 1)[0]
    if first == "queries":
        rest = path.split(".", 2)[2] if path.count(".") >= 2 else ""
        return [f"{root}.{rest}" if rest else root for root in _QUERY_ROOTS]
    if first in _OBSERVATION_KEYS:
        return [f"{root}.{path}" for root in _OBSERVATION_ROOTS]
    return [path]


_INTERIOR, _STRUCT, _FREE, _B64, _HEX = range(5)


class _Node:
    """One step of the path trie: what the strings below it are (`kind`), and its children."""

    __slots__ = ("children", "kind", "star")

    def __init__(self, kind: int = _INTERIOR) -> None:
        self.kind = kind
        self.children: dict[str, _Node] = {}
        self.star: _Node | None = None

    def child(self, key: object) -> _Node:
        found = self.children.get(key) if type(key) is str else None
        if found is not None:
            return found
        if self.star is not None:
            return self.star
        # Below a leaf everything is the leaf's kind; an unknown field is free text.
        return _STRUCT_LEAF if self.kind == _STRUCT else _FREE_LEAF


_STRUCT_LEAF = _Node(_STRUCT)
_FREE_LEAF = _Node(_FREE)


def _build_trie(entries: Iterable[tuple[str, int]]) -> _Node:
    root = _Node()
    for path, kind in entries:
        node = root
        for key in path.split("."):
            if key == "*":
                if node.star is None:
                    node.star = _Node()
                node = node.star
            else:
                node = node.children.setdefault(key, _Node())
        node.kind = kind
    return root


def _paths(paths: Iterable[str]) -> list[str]:
    return [p for path in paths for p in _expand(path)]


_TRIE = _build_trie(
    [(p, _STRUCT) for p in _paths(STRUCTURED_PATHS)]
    + [(p, _STRUCT) for p in _paths("queries.*." + q for q in _QUERY_STRUCTURED)]
    + [(p, _STRUCT) for p in _paths(_OBSERVATIONS_STRUCTURED)]
    + [(p, _FREE) for p in _paths(FREE_TEXT_PATHS)]
    + [(p, _B64 if enc == "base64" else _HEX) for path, enc in BINARY_PATHS for p in _expand(path)]
)
_MEASURED = [
    *_paths(MEASURED_ADDRESS_PATHS),
    "test_keys.x_endpoints.*.address",
    "test_keys.x_ip_discovery.observations.*.server_address",
]

# --- candidates -------------------------------------------------------------------------------
# Speed: Python's regex engine skips fast to a pattern's *literal* first character (memchr) but
# tries a character-class start at every position, ~6 ns a character (a 64 KiB body: 0.4 ms per
# pattern). So candidates are found from literal anchors — a separator after a digit for IPv4
# runs, ":hex*:" for IPv6, "6.arpa" for nibbles — and grown to the whole run from there. Entity
# and percent escapes are decoded first into a view (with an offset map back), and only in
# strings that hold one that can spell part of an address.


def _hex_code(code: int) -> str:
    return "".join(f"[{c}{c.upper()}]" if c.isalpha() else c for c in f"{code:x}")


_DIGITS = "0123456789"
_HEXDIGITS = "0123456789abcdefABCDEF"
_SEPS = ".-_"
#: What an escape may stand for inside an address: hex digits and separators.
_ENCODED_CODES = sorted({ord(c) for c in _HEXDIGITS + _SEPS + ":"})
_DEC_ALTS = "|".join(str(c) for c in _ENCODED_CODES)
_HEX_ALTS = "|".join(_hex_code(c) for c in _ENCODED_CODES)
_NAMED = {"period": ".", "colon": ":", "lowbar": "_"}
#: HTML/XML numeric entities (with or without the ";"), the named ones, and percent escapes of
#: those characters only; everything else stays as it is (and is no part of an address).
_ENTITY = re.compile(
    # A numeric reference takes all its digits (&#46113 is one character, U+B421).
    rf"&(?:\#0*({_DEC_ALTS})(?![0-9]);?|\#[xX]0*({_HEX_ALTS})(?![0-9A-Fa-f]);?"
    r"|(period|colon|lowbar);)"
)
_PERCENT = re.compile(rf"%({_HEX_ALTS})")

_V4_ANCHORS = {
    sep: re.compile(rf"{re.escape(sep)}(?<=[0-9]{re.escape(sep)})[0-9]++(?:[.\-_][0-9]++){{2,}}+")
    for sep in _SEPS
}
_V4_RUN = re.compile(r"[0-9]++(?:[.\-_][0-9]++)*+")
#: An IPv6 address has "::" or at least five colons (six groups and a dotted tail, or eight
#: groups): a time of day (08:12:31) is never one.
_V6_ANCHOR = re.compile(r"::|:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:")
#: with a zone id: "%eth0", or "%25eth0" in a URL; not a percent escape ("%5D" is "]")
_V6_RUN = re.compile(
    r"[0-9A-Fa-f:]++(?:\.[0-9]++)*+"
    r"(?:%25[0-9A-Za-z_.\-]++|%(?![0-9A-Fa-f]{2})[0-9A-Za-z][0-9A-Za-z_.\-]*+)?"
)
_ARPA6 = re.compile(r"6\.(?i:arpa)")
_NIBBLES = re.compile(r"(?:[0-9A-Fa-f]\.){32}(?=(?i:ip6\.arpa))")
#: Short strings are tested with this first (one search, where the anchors are six): what an
#: IPv4 run needs (four numbers), what the IPv6 anchor needs, an escape, or "6.arpa".
_TRIGGER = re.compile(
    r"[0-9][.\-_][0-9]++[.\-_][0-9]++[.\-_][0-9]"
    r"|::|:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:"
    r"|&(?:\#|period;|colon;|lowbar;)|%[2-6][0-9A-Fa-f]|6\.(?i:arpa)"
)
_SHORT = 256
#: a replacement can expose another reading; each pass removes address characters, so a few do
_MAX_PASSES = 8
_TRIGGER_SEARCH = _TRIGGER.search
_SEPARATORS = re.compile(r"[.\-_]")
_PORT_SUFFIX = re.compile(r":[0-9]{1,5}$")
_V4_TAIL = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}$")
_HEX_SET = frozenset(_HEXDIGITS)
_HEXCOLON_SET = frozenset(_HEXDIGITS + ":")
_DIGIT_SET = frozenset(_DIGITS)
_ARPA4 = ".in-addr.arpa"


def _decode_one(match: re.Match[str]) -> str:
    groups = match.groups()
    if len(groups) == 1:  # percent
        return chr(int(groups[0], 16))
    dec, hexa, name = groups
    if dec is not None:
        return chr(int(dec))
    if name is not None:
        return _NAMED[name]
    return chr(int(hexa, 16))


class _View:
    """`text` with the escapes that can spell an address decoded, and the way back."""

    __slots__ = ("at", "ends", "starts", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.at: list[int] = []  # where each decoded escape is in the view
        self.starts: list[int] = []  # ... and in the original
        self.ends: list[int] = []

    @classmethod
    def of(cls, text: str) -> _View:
        escapes: list[re.Match[str]] = []
        if "&" in text:
            escapes.extend(_ENTITY.finditer(text))
        if "%" in text:
            escapes.extend(_PERCENT.finditer(text))
        if not escapes:
            return cls(text)
        escapes.sort(key=lambda m: m.start())
        pieces: list[str] = []
        view = cls("")
        last = 0
        length = 0
        for match in escapes:
            start, end = match.span()
            pieces.append(text[last:start])
            length += start - last
            view.at.append(length)
            view.starts.append(start)
            view.ends.append(end)
            pieces.append(_decode_one(match))
            length += 1
            last = end
        pieces.append(text[last:])
        view.text = "".join(pieces)
        return view

    @property
    def decoded(self) -> frozenset[int]:
        """The view positions that were escapes."""
        return frozenset(self.at)

    def back(self, position: int) -> int:
        """The original offset of a view offset (a start or an exclusive end)."""
        if not self.at:
            return position
        index = bisect.bisect_right(self.at, position) - 1
        if index < 0:
            return position
        if self.at[index] == position:
            return self.starts[index]
        return self.ends[index] + position - self.at[index] - 1


#: One reading of an IPv6 candidate: the address, and how many characters to drop at its start
#: and at its end for it.
_Reading = tuple[IPAddress, int, int]


def _counts(run: int) -> list[int]:
    """How many of `run` stray colons to try dropping (all of a very long run would be slow)."""
    return sorted({n for n in (0, 1, 2, run - 2, run - 1, run) if 0 <= n <= run})


@lru_cache(maxsize=4096)
def _parse6(text: str) -> tuple[_Reading, ...]:
    """Every reading of an IPv6 candidate (decoded) as an address, the most natural first: as it
    is, without stray colons (``ip:2001:db8::5``, ``2001:db8::5::``), without a ``:port``
    written without brackets. Ambiguous text has several (``::0:0:0:0:0:ffff:cb00:7107`` is
    ::ffff:203.0.113.7 without the stray colons, and ::ffff:cb00 with a port)."""
    core = text.split("%", 1)[0]
    zone = len(text) - len(core)
    leading = len(core) - len(core.lstrip(":"))
    trailing = len(core) - len(core.rstrip(":"))
    trails = [(colons, colons) for colons in _counts(trailing)]
    for colons in _counts(trailing):
        port = _PORT_SUFFIX.search(core, 0, len(core) - colons)
        if port is not None:
            trails.append((colons + len(port.group(0)), colons))
    readings: list[_Reading] = []
    for trail, _ in sorted(trails, key=lambda t: (t[0] != t[1], t[0])):
        for lead in _counts(leading):
            if lead + trail >= len(core):
                continue
            address = _parse_v6_text(core[lead : len(core) - trail])
            if address is not None:
                # The zone id goes with the address, unless something was cut off before it.
                readings.append((address, lead, trail + zone if trail else 0))
    return tuple(readings)


def _parse_v6_text(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    return _normalize(address)


def _normalize(address: IPAddress) -> IPAddress:
    """IPv4-mapped and IPv4-compatible IPv6 addresses are their IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        value = int(address)
        if 0xFFFF < value < 1 << 32:  # ::a.b.c.d (deprecated compatible form), not :: or ::1
            return ipaddress.IPv4Address(value)
    return address


@lru_cache(maxsize=4096)
def _v4_tail(text: str) -> ipaddress.IPv4Address | None:
    """The dotted IPv4 address an IPv6 candidate ends with (``::ffff:203.0.113.7``)."""
    match = _V4_TAIL.search(text.split("%", 1)[0])
    octets = _octets(match.group(0)) if match else None
    return ipaddress.IPv4Address(bytes(octets)) if octets else None


@lru_cache(maxsize=4096)
def _octets(text: str) -> tuple[int, int, int, int] | None:
    """The four numbers of a decoded IPv4 run (dots, dashes or underscores, any zero padding);
    None for any other count or a number over 255."""
    groups = _SEPARATORS.split(text)
    if len(groups) != 4 or not all(g.isdigit() for g in groups):
        return None
    values = tuple(int(g) for g in groups)
    if max(values) > 255:
        return None
    return values  # type: ignore[return-value]


def _nibbles(text: str) -> IPAddress:
    return _normalize(ipaddress.IPv6Address(int(text.replace(".", "")[::-1], 16)))


def _eui64(address: IPAddress) -> bool:
    """An IPv6 interface identifier made from a MAC address (it carries the MAC)."""
    return (
        isinstance(address, ipaddress.IPv6Address)
        and not address.is_multicast
        and (int(address) >> 24) & 0xFFFF == 0xFFFE
    )


#: Where every public IPv6 address is (RFC 4291): anything else that parses, like CSS's
#: ``a::before`` (a::bef), identifies nobody.
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")


def _escape_skip(text: str, start: int, decoded: frozenset[int]) -> int:
    """How far `start` must move to leave a raw percent escape it is inside (0: it is not in
    one): ``%20203.0.113.7`` is a space, then the address. `decoded` holds the positions that
    were escapes decoded into the view (``%%32`` is a percent sign and a 2, not an escape)."""
    pair = text[start : start + 2]
    if (
        start >= 1
        and text[start - 1] == "%"
        and len(pair) == 2
        and set(pair) <= _HEX_SET
        and start not in decoded
        and start + 1 not in decoded
    ):
        return 2
    if (
        start >= 2
        and text[start - 2] == "%"
        and text[start - 1] in _HEX_SET
        and start - 1 not in decoded
        and start not in decoded
    ):
        return 1
    return 0


_NUMBER_OR_SEP = re.compile(r"[0-9]++|[.\-_]")


def _segments(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """A run, or for one that mixes dots with dashes/underscores, its parts of one kind:
    ``203.0.113.7-1`` is an address and a suffix, ``1.2.3.4-5.6.7.8`` a range of two."""
    run = text[start:end]
    if "." not in run or not ("-" in run or "_" in run):
        return [(start, end)]
    numbers: list[tuple[int, int]] = []
    kinds: list[bool] = []  # separator before each number after the first: a dot?
    for token in _NUMBER_OR_SEP.finditer(text, start, end):
        if token.group(0) in _SEPS:
            kinds.append(token.group(0) == ".")
        else:
            numbers.append(token.span())
    out: list[tuple[int, int]] = []
    first = 0
    for index in range(1, len(numbers) + 1):
        if index == len(numbers) or (index > 1 and kinds[index - 1] != kinds[index - 2]):
            out.append((numbers[first][0], numbers[index - 1][1]))
            first = index - 1
    return out


#: (kind, start, end, what) — kind "v6" (what: its readings), "v4" (what: None, the run is
#: judged by its context), "v4in" (the same, inside an IPv6 address), "n" (ip6.arpa nibbles,
#: what: the address)
_Candidate = tuple[str, int, int, Any]


def _candidates(text: str, decoded: frozenset[int] = frozenset()) -> list[_Candidate]:
    """Every candidate in `text` (a view: escapes already decoded, at `decoded`), IPv6 first."""
    found: list[_Candidate] = []
    taken: list[tuple[int, int]] = []
    if ":" in text:
        last = -1
        for anchor in _V6_ANCHOR.finditer(text):
            if anchor.start() < last:
                continue
            start = anchor.start()
            while start > 0 and text[start - 1] in _HEXCOLON_SET:
                start -= 1
            start += _escape_skip(text, start, decoded)
            run = _V6_RUN.match(text, start)
            if run is None:
                continue
            last = end = run.end()
            readings = _parse6(text[start:end])
            if readings:
                found.append(("v6", start, end, readings))
                _, lead, trail = readings[0]
                taken.append((start + lead, end - trail))
    runs: set[tuple[int, int]] = set()
    for sep, pattern in _V4_ANCHORS.items():
        if sep not in text:
            continue
        seen = -1
        for anchor in pattern.finditer(text):
            if anchor.start() < seen:
                continue
            # Back to the run's first number: over digits, and over a separator only when a
            # digit stands before it ("0..203.0.113.7" starts at 203).
            start = anchor.start()
            while True:
                while start > 0 and text[start - 1] in _DIGIT_SET:
                    start -= 1
                if start >= 2 and text[start - 1] in _SEPS and text[start - 2] in _DIGIT_SET:
                    start -= 1
                    continue
                break
            skip = _escape_skip(text, start, decoded)
            while skip:
                start += skip
                skip = _escape_skip(text, start, decoded)
            while start < len(text) and text[start] in _SEPS:  # "%00.203.0.113.7"
                start += 1
            run = _V4_RUN.match(text, start)
            if run is None:
                continue
            seen = end = run.end()
            runs.update(_segments(text, start, end))
    for start, end in sorted(runs):
        # Inside an IPv6 address (::ffff:203.0.113.7) the IPv6 candidate decides redaction;
        # the run is still read for an own address (::7.113.0.203.in-addr.arpa).
        inside = any(a <= start and end <= b for a, b in taken)
        found.append(("v4in" if inside else "v4", start, end, None))
    if _ARPA6.search(text):
        for match in _NIBBLES.finditer(text):
            found.append(("n", match.start(), match.end() - 1, _nibbles(match.group(0))))
    return found


# --- the report -------------------------------------------------------------------------------


@dataclass(slots=True)
class ScrubReport:
    """What one `Scrubber.scrub_record` did. It never holds an address.

    `replaced` counts occurrences of an own address (or own /64) replaced, `redacted` other
    identifying literals redacted in free text (redaction mode), `fields` the paths of the
    strings that changed (``test_keys.requests[0].response.body``), `hashes_cleared` the
    ``x_body_sha256`` set to null because their body changed."""

    mode: str
    replaced: int = 0
    redacted: int = 0
    fields: list[str] = field(default_factory=list)
    hashes_cleared: int = 0

    @property
    def count(self) -> int:
        return self.replaced + self.redacted

    def annotations(self) -> dict[str, str]:
        """For the record's ``annotations`` (string values, as OONI's)."""
        return {ANNOTATION: self.mode, COUNT_ANNOTATION: str(self.count)}


@dataclass(slots=True)
class _Run:
    """State of one scrub: the mode and what was kept, and the running counts."""

    redact: bool
    keep: frozenset[IPAddress]
    replaced: int = 0
    redacted: int = 0
    hashes_cleared: int = 0
    #: short string -> (result or None when unchanged, replaced, redacted), for own-only and
    #: for free-text scrubbing
    memo: dict[str, tuple[str | None, int, int]] = field(default_factory=dict)
    memo_free: dict[str, tuple[str | None, int, int]] = field(default_factory=dict)


# --- the scrubber -----------------------------------------------------------------------------


@dataclass(slots=True)
class Scrubber:
    """Replaces the probe's own addresses with ``[scrubbed]``; with ``redact_unknown``, also
    every other identifying address in free text that was not measured or is not in `keep`.

    `add` accepts only a public address (`addresses.is_public`) or one in `allow_nets`: a
    control behind a reverse proxy echoes 127.0.0.1 or 10.x, and scrubbing those would both
    destroy measurement data (blockpage addresses live in 10/8) and hide that the real address
    is unknown. `allow_nets` defaults to the documentation ranges (never routed, used by the
    tests); the lab passes ``DOCUMENTATION_NETS + LAB_NETS``."""

    addresses: set[IPAddress] = field(default_factory=set)
    redact_unknown: bool = False
    keep: Iterable[str | IPAddress] = ()
    allow_nets: Iterable[Network | str] = DOCUMENTATION_NETS
    prefixes: set[ipaddress.IPv6Network] = field(default_factory=set)
    _keep: frozenset[IPAddress] = field(default_factory=frozenset, init=False, repr=False)
    _allow: tuple[Network, ...] = field(default=(), init=False, repr=False)

    def __post_init__(self) -> None:
        self._allow = tuple(ipaddress.ip_network(n, strict=False) for n in self.allow_nets)
        self._keep = frozenset(_addresses_of(self.keep))
        self.addresses = {_normalize(a) for a in self.addresses}

    # -- what is ours --------------------------------------------------------------------------

    def add(self, address: str | None) -> bool:
        """Learn an own address (the control's echo, a local global IPv6 address). Returns
        whether it was accepted: never a loopback, private, link-local, reserved or other
        non-public address unless it lies in `allow_nets`."""
        parsed = parse_unmapped(address) if address else None
        if parsed is None or not self._may_be_own(parsed):
            return False
        self.addresses.add(_normalize(parsed))
        return True

    def add_prefix(self, address: str | None, prefixlen: int = 64) -> bool:
        """Treat the whole ``/prefixlen`` around an own IPv6 address as own (privacy addresses
        rotate inside the /64: any address in it is the same household)."""
        parsed = parse_unmapped(address) if address else None
        if not isinstance(parsed, ipaddress.IPv6Address) or not self._may_be_own(parsed):
            return False
        self.prefixes.add(ipaddress.IPv6Network((parsed, prefixlen), strict=False))
        return True

    def allow(self, *nets: Network | str) -> None:
        """Accept addresses in `nets` as own too (a test bed's ranges, ``RoundOptions.own_nets``),
        for a scrubber made before they were known."""
        self._allow += tuple(ipaddress.ip_network(n, strict=False) for n in nets)

    def _may_be_own(self, address: IPAddress) -> bool:
        if address.is_unspecified or address.is_loopback:
            return False
        return is_public(str(address)) or self._allowed(address)

    def _allowed(self, address: IPAddress) -> bool:
        if in_networks(address, self._allow):
            return True
        inner = embedded_ipv4(address)
        return inner is not None and in_networks(inner, self._allow)

    def knows(self, version: int) -> bool:
        """Whether an own address of this IP version is known."""
        if version == 6 and self.prefixes:
            return True
        return any(a.version == version for a in self.addresses)

    def is_own(self, address: str | IPAddress | None) -> bool:
        """An own address in any spelling, or an address in an own prefix."""
        if address is None:
            return False
        parsed = parse_unmapped(address) if isinstance(address, str) else address
        return parsed is not None and self._own(_normalize(parsed))

    def _own(self, address: IPAddress) -> bool:
        if address in self.addresses:
            return True
        if isinstance(address, ipaddress.IPv6Address):
            if any(address in p for p in self.prefixes):
                return True
            inner = embedded_ipv4(address)  # NAT64, 6to4, Teredo
            return inner is not None and inner in self.addresses
        return False

    def identifying(self, address: IPAddress) -> bool:
        """Could this be a volunteer's address? Public addresses (IPv6 ones only in 2000::/3),
        ones in `allow_nets`, and IPv6 addresses whose interface identifier is a MAC (EUI-64).
        Private, loopback, link-local and reserved addresses locate nobody on the internet and
        stay: national blockpages live at such addresses (10.10.34.34) and are evidence."""
        if self._allowed(address) or _eui64(address):
            return True
        if isinstance(address, ipaddress.IPv6Address) and address not in _GLOBAL_UNICAST:
            return False  # a::bef is CSS's a::before, not anybody's address
        return is_public(str(address))

    @property
    def mode(self) -> str:
        if self.redact_unknown:
            return MODE_UNKNOWN_REDACTED
        return MODE_KNOWN if self.addresses or self.prefixes else MODE_UNKNOWN

    # -- text --------------------------------------------------------------------------------

    def scrub(self, text: str) -> str:
        """`text` with own addresses replaced; in redaction mode `text` is free text, so other
        identifying literals not in `keep` are redacted as well."""
        if not (self.addresses or self.prefixes or self.redact_unknown):
            return text
        return self._text(text, _Run(self.redact_unknown, self._keep), self.redact_unknown)

    def _text(self, text: str, run: _Run, redact: bool) -> str:
        # Until nothing changes: a replacement can leave another reading behind
        # ("203.0.113.7::cb00:7107" -> "[scrubbed]::cb00:7107", IPv4-compatible ::cb00:7107).
        for _ in range(_MAX_PASSES):
            spans = self._spans(text, run, redact)
            if not spans:
                break
            out: list[str] = []
            last = 0
            for start, end in spans:
                out.append(text[last:start])
                out.append(SCRUBBED)
                last = end
            out.append(text[last:])
            text = "".join(out)
        return text

    def _spans(self, text: str, run: _Run, redact: bool) -> list[tuple[int, int]]:
        """The (start, end) in `text` of every literal to replace, in order, not overlapping."""
        if len(text) <= _SHORT and not _TRIGGER_SEARCH(text):
            return []
        view = _View.of(text)
        spans: list[tuple[int, int]] = []
        for kind, start, end, what in _candidates(view.text, view.decoded):
            if kind == "v4":
                replace = self._judge_v4(view.text, start, end, run, redact)
            elif kind == "v4in":
                replace = self._judge_v4(view.text, start, end, run, False)
            elif kind == "v6":
                span = self._judge_v6(view.text, start, end, what, run, redact)
                replace = span is not None
                if span is not None:
                    start, end = span
            else:
                replace = self._judge(what, run, redact)
            if replace:
                spans.append((view.back(start), view.back(end)))
        if len(spans) > 1:
            spans.sort()
            merged = [spans[0]]
            for start, end in spans[1:]:
                if start < merged[-1][1]:
                    merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
                else:
                    merged.append((start, end))
            spans = merged
        return spans

    def _judge(self, address: IPAddress, run: _Run, redact: bool) -> bool:
        if self._own(address):
            run.replaced += 1
            return True
        if redact and address not in run.keep and self.identifying(address):
            run.redacted += 1
            return True
        return False

    def _judge_v6(
        self,
        text: str,
        start: int,
        end: int,
        readings: tuple[_Reading, ...],
        run: _Run,
        redact: bool,
    ) -> tuple[int, int] | None:
        """The span to replace, or None. Any reading that is ours counts; redaction goes by the
        most natural reading."""
        for address, lead, trail in readings:
            candidate = text[start + lead : end - trail].split("%", 1)[0]
            # Also ours: ending in an own IPv4 address in dotted form.
            for reading in (address, _v4_tail(candidate)):
                if reading is not None and self._own(reading):
                    run.replaced += 1
                    return start + lead, end - trail
        address, lead, trail = readings[0]
        if redact and _in_word(text, start + lead, end - trail):
            return None  # std::vector's "d::", a word, not an address to redact
        if self._judge(address, run, redact):
            return start + lead, end - trail
        return None

    def _judge_v4(self, text: str, start: int, end: int, run: _Run, redact: bool) -> bool:
        octets = _octets(text[start:end])
        if octets is None:
            return False
        forward = ipaddress.IPv4Address(bytes(octets))
        reverse = ipaddress.IPv4Address(bytes(octets[::-1]))
        arpa = text[end : end + len(_ARPA4)].lower() == _ARPA4
        host = arpa or _hostname_context(text, start, end)
        dashed = "-" in text[start:end] or "_" in text[start:end]
        if arpa:
            readings = [reverse]
        elif host:
            readings = [forward, reverse]
        else:
            readings = [forward]  # an own address in dashes is ours in any context
        for address in readings:
            if self._own(address):
                run.replaced += 1
                return True
        if redact and (host or not dashed):  # "12-30-45-67" alone: a phone number, a date
            for address in readings:
                if address not in run.keep and self.identifying(address):
                    run.redacted += 1
                    return True
        return False

    # -- binary ------------------------------------------------------------------------------

    def _binary(self, value: str, kind: int, run: _Run, redact: bool) -> str:
        try:
            if kind == _B64:
                raw = base64.b64decode(value, validate=True)
            else:
                raw = bytes.fromhex(value)
        except (binascii.Error, ValueError):
            return self._text(value, run, redact)
        data: bytearray | None = None
        for needle, width in self._packed():
            at = raw.find(needle)
            while at != -1:
                if data is None:
                    data = bytearray(raw)
                data[at : at + width] = bytes(len(data[at : at + width]))
                run.replaced += 1
                at = raw.find(needle, at + 1)
        for _ in range(_MAX_PASSES):
            spans = self._spans((raw if data is None else data).decode("latin-1"), run, redact)
            if not spans:
                break
            if data is None:
                data = bytearray(raw)
            for start, end in spans:
                data[start:end] = b"x" * (end - start)
        if data is None:
            return value
        if kind == _B64:
            return base64.b64encode(bytes(data)).decode("ascii")
        return bytes(data).hex()

    def _packed(self) -> list[tuple[bytes, int]]:
        """Own addresses as they appear in packets and certificates: (bytes to find, how many
        bytes to overwrite from there)."""
        out = [(a.packed, len(a.packed)) for a in self.addresses]
        out += [(p.network_address.packed[: p.prefixlen // 8], 16) for p in self.prefixes]
        return [(needle, width) for needle, width in out if len(needle) >= 4]

    # -- records -----------------------------------------------------------------------------

    def scrub_record(
        self, record: dict[str, Any], *, keep: Iterable[str | IPAddress] = (), annotate: bool = True
    ) -> tuple[dict[str, Any], ScrubReport]:
        """Scrub a record (a JSON-shaped dict) before it is encoded.

        Copy on write: `record` is never modified; the returned record shares every subtree
        that did not change (it *is* `record` when nothing changed and `annotate` is false).
        Every string is looked at once, dict keys included (header names come from the peer:
        ``response.headers`` is keyed by them); when two keys become equal the first one wins.
        In redaction mode `keep` adds to the scrubber's `keep` and to the record's own
        `measured_addresses`. With `annotate`, ``annotations`` gets `ScrubReport.annotations`
        (``x_scrubbed`` = the mode, ``x_scrubbed_count``)."""
        report = ScrubReport(self.mode)
        if self.addresses or self.prefixes or self.redact_unknown:
            kept = self._keep
            if self.redact_unknown:
                kept = kept | measured_addresses(record) | frozenset(_addresses_of(keep))
                kept |= PUBLIC_RESOLVERS
            run = _Run(self.redact_unknown, kept)
            scrubbed = self._walk(record, _TRIE, run)
            report.replaced, report.redacted = run.replaced, run.redacted
            report.hashes_cleared = run.hashes_cleared
            if scrubbed is not record:
                report.fields = list(_changed_paths(record, scrubbed, ""))
            record = scrubbed
        if annotate and isinstance(record.get("annotations"), dict):
            record = {**record, "annotations": {**record["annotations"], **report.annotations()}}
        return record, report

    def _walk(self, value: Any, node: _Node, run: _Run) -> Any:
        kind = type(value)
        if kind is str:
            return self._string(value, node.kind, run)
        if kind is dict:
            return self._walk_dict(value, node, run)
        if kind is list or kind is tuple:
            return self._walk_list(value, node, run)
        return value

    def _string(self, value: str, kind: int, run: _Run) -> str:
        if kind >= _B64:
            return self._binary(value, kind, run, run.redact)
        redact = run.redact and kind != _STRUCT
        if len(value) > _SHORT:
            return self._text(value, run, redact)
        # Short strings repeat within a record (a header value is in headers_list and headers).
        memo = run.memo_free if redact else run.memo
        seen = memo.get(value)
        if seen is not None:
            done, replaced, redacted = seen
            if done is None:
                return value  # this very object: unchanged subtrees stay identical
            run.replaced += replaced
            run.redacted += redacted
            return done
        if not _TRIGGER_SEARCH(value):
            memo[value] = _UNCHANGED
            return value
        replaced, redacted = run.replaced, run.redacted
        done = self._text(value, run, redact)
        if done is value:
            memo[value] = _UNCHANGED
        else:
            memo[value] = (done, run.replaced - replaced, run.redacted - redacted)
        return done

    def _walk_list(self, value: list[Any] | tuple[Any, ...], node: _Node, run: _Run) -> Any:
        star = node.child(0)
        new: list[Any] | None = None
        done: Any
        for index, item in enumerate(value):
            kind = type(item)
            if kind is str:
                done = self._string(item, star.kind, run)
            elif kind is dict:
                done = self._walk_dict(item, star, run)
            elif kind is list or kind is tuple:
                done = self._walk_list(item, star, run)
            else:
                done = item
            if new is None:
                if done is item:
                    continue
                new = list(value[:index])
            new.append(done)
        if new is None:
            return value
        return tuple(new) if type(value) is tuple else new

    def _walk_dict(self, value: dict[Any, Any], node: _Node, run: _Run) -> dict[Any, Any]:
        new: dict[Any, Any] | None = None
        children = node.children
        fallback = node.child(None)  # a key not in the trie
        done: Any
        for index, (key, item) in enumerate(value.items()):
            child = children.get(key, fallback) if type(key) is str else fallback
            kind = type(item)
            if kind is str:
                done = self._string(item, child.kind, run)
            elif kind is dict:
                done = self._walk_dict(item, child, run)
            elif kind is list or kind is tuple:
                done = self._walk_list(item, child, run)
            else:
                done = item
            new_key = key
            if type(key) is str:
                # Header names come from the peer: response.headers is keyed by them.
                new_key = self._string(key, _STRUCT if child.kind == _STRUCT else _FREE, run)
            if new is None:
                if done is item and new_key is key:
                    continue
                new = {}
                for k, v in value.items():
                    if len(new) == index:
                        break
                    new[k] = v
            new.setdefault(new_key, done)
        if new is None:
            return value
        body = value.get("body")
        if isinstance(body, str) and new.get("body") is not body and new.get("x_body_sha256"):
            # The hash of the original body would confirm a guessed address.
            new["x_body_sha256"] = None
            run.hashes_cleared += 1
        return new


_UNCHANGED: tuple[str | None, int, int] = (None, 0, 0)


def _in_word(text: str, start: int, end: int) -> bool:
    before = text[start - 1] if start else ""
    after = text[end] if end < len(text) else ""
    return before.isalnum() or before == "_" or after.isalnum() or after == "_"


def _hostname_context(text: str, start: int, end: int) -> bool:
    """The run is a label of a host name: ``ip-203-0-113-7``, ``203-0-113-7.dyn.example``."""
    before = text[start - 1] if start else ""
    after = text[end : end + 2]
    if before.isalpha() or before in ("-", "_"):
        return True
    return len(after) == 2 and after[0] in ".-_" and after[1].isalpha()


def _addresses_of(values: Iterable[str | IPAddress]) -> Iterator[IPAddress]:
    for value in values:
        if isinstance(value, str):
            yield from literals(value)
        else:
            yield _normalize(value)


def literals(text: str) -> list[IPAddress]:
    """Every IP literal in `text` (``ip``, ``ip:port``, ``[v6]:port``, a URL), normalized
    (IPv4-mapped as IPv4). Used for the addresses to keep."""
    if len(text) <= _SHORT and not _TRIGGER.search(text):
        return []
    view = _View.of(text)
    found: list[IPAddress] = []
    for kind, start, end, what in _candidates(view.text, view.decoded):
        if kind == "v6":
            found.append(what[0][0])
            continue
        if kind == "n":
            found.append(what)
            continue
        run = view.text[start:end]
        octets = _octets(run)
        if octets is not None and "-" not in run and "_" not in run:
            found.append(ipaddress.IPv4Address(bytes(octets)))
    return found


def _values_at(value: Any, keys: list[str]) -> Iterator[Any]:
    if not keys:
        yield value
        return
    key, rest = keys[0], keys[1:]
    if key == "*":
        items = value.values() if isinstance(value, dict) else value
        if isinstance(items, list | tuple) or isinstance(value, dict):
            for item in items:
                yield from _values_at(item, rest)
    elif isinstance(value, dict) and key in value:
        yield from _values_at(value[key], rest)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def measured_addresses(record: dict[str, Any]) -> frozenset[IPAddress]:
    """The addresses this record measured (`MEASURED_ADDRESS_PATHS`, x_endpoints) and every IP
    literal in its target definition and input: what redaction keeps in free text."""
    found: set[IPAddress] = set()
    for path in _MEASURED:
        for value in _values_at(record, path.split(".")):
            if isinstance(value, str):
                found.update(literals(value))
    test_keys = record.get("test_keys")
    target = test_keys.get("target") if isinstance(test_keys, dict) else None
    for text in _strings([target, record.get("input")]):
        found.update(literals(text))
    return frozenset(found)


def _changed_paths(old: Any, new: Any, path: str) -> Iterator[str]:
    """The paths where `new` differs from `old` (copy on write: equal subtrees are identical)."""
    if old is new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        old_keys = list(old)
        new_keys = list(new)
        if old_keys != new_keys:
            yield f"{path}{{keys}}" if path else "{keys}"
        for key, value in new.items():
            if key in old:
                yield from _changed_paths(old[key], value, f"{path}.{key}" if path else str(key))
        return
    if isinstance(old, list | tuple) and isinstance(new, list | tuple):
        for index, (a, b) in enumerate(zip(old, new, strict=False)):
            yield from _changed_paths(a, b, f"{path}[{index}]")
        return
    yield path


# --- the resolver -----------------------------------------------------------------------------


def safe_resolver_ip(whoami: str | None, configured: str | None, scrubber: Scrubber) -> str | None:
    """What the envelope's ``resolver_ip`` may hold.

    `whoami` is the resolver's egress address as ``whoami.akamai.net`` answered it, `configured`
    the nameserver the probe sends to. A home router that resolves recursively itself makes the
    whoami answer the household's own address, so:

    * never an own address or one in an own prefix;
    * the whoami answer when it is not identifying (a resolver on a private network, the lab),
      or when an own address of its IP version is known (then it is somebody else's);
    * else the configured address, when it is not identifying, an own address of its version
      is known, or it is a big public resolver (`PUBLIC_RESOLVERS`);
    * else None: only the resolver's ASN (looked up from the whoami answer in memory) is kept.
    """
    for candidate, is_whoami in ((whoami, True), (configured, False)):
        address = parse_unmapped(candidate) if candidate else None
        if address is None:
            continue
        address = _normalize(address)
        if scrubber.is_own(address):
            continue
        if (
            not scrubber.identifying(address)
            or scrubber.knows(address.version)
            or (not is_whoami and address in PUBLIC_RESOLVERS)
        ):
            return str(address)
    return None
