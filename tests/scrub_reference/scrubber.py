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

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from probe.addresses import IPAddress, embedded_ipv4, in_networks, is_public, parse_unmapped
from tests.scrub_reference.candidates import literals, normalize
from tests.scrub_reference.paths import TRIE, changed_paths, measured_addresses
from tests.scrub_reference.text import Run, scrub_text
from tests.scrub_reference.walk import Cache, Walker

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


#: Where every public IPv6 address is (RFC 4291): anything else that parses, like CSS's
#: ``a::before`` (a::bef), identifies nobody.
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")


def _eui64(address: IPAddress) -> bool:
    """An IPv6 interface identifier made from a MAC address (it carries the MAC)."""
    return (
        isinstance(address, ipaddress.IPv6Address)
        and not address.is_multicast
        and (int(address) >> 24) & 0xFFFF == 0xFFFE
    )


def _addresses_of(values: Iterable[str | IPAddress]) -> Iterator[IPAddress]:
    for value in values:
        if isinstance(value, str):
            yield from literals(value)
        else:
            yield normalize(value)


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
    _cache: Cache = field(default_factory=Cache, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._allow = tuple(ipaddress.ip_network(n, strict=False) for n in self.allow_nets)
        self._keep = frozenset(_addresses_of(self.keep))
        self.addresses = {normalize(a) for a in self.addresses}

    # -- what is ours --------------------------------------------------------------------------

    def add(self, address: str | None) -> bool:
        """Learn an own address (the control's echo, a local global IPv6 address). Returns
        whether it was accepted: never a loopback, private, link-local, reserved or other
        non-public address unless it lies in `allow_nets`."""
        parsed = parse_unmapped(address) if address else None
        if parsed is None or not self._may_be_own(parsed):
            return False
        self.addresses.add(normalize(parsed))
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
        return parsed is not None and self.owns(normalize(parsed))

    def owns(self, address: IPAddress) -> bool:
        """`is_own` for a parsed, normalized address (IPv4-mapped as IPv4)."""
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

    # -- text and records --------------------------------------------------------------------

    def scrub(self, text: str) -> str:
        """`text` with own addresses replaced; in redaction mode `text` is free text, so other
        identifying literals not in `keep` are redacted as well."""
        if not (self.addresses or self.prefixes or self.redact_unknown):
            return text
        return scrub_text(self, text, Run(self.redact_unknown, self._keep), self.redact_unknown)

    def packed(self) -> list[tuple[bytes, int]]:
        """Own addresses as they appear in packets and certificates: (bytes to find, how many
        bytes to overwrite from there)."""
        out = [(a.packed, len(a.packed)) for a in self.addresses]
        out += [(p.network_address.packed[: p.prefixlen // 8], 16) for p in self.prefixes]
        return [(needle, width) for needle, width in out if len(needle) >= 4]

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
            run = Run(self.redact_unknown, kept)
            # What the cache remembers holds for these own addresses and allowed networks.
            self._cache.check((tuple(self.addresses), tuple(self.prefixes), self._allow))
            scrubbed = Walker(self, run, self._cache).walk(record, TRIE)
            report.replaced, report.redacted = run.replaced, run.redacted
            report.hashes_cleared = run.hashes_cleared
            if scrubbed is not record:
                report.fields = list(changed_paths(record, scrubbed, ""))
            record = scrubbed
        if annotate and isinstance(record.get("annotations"), dict):
            record = {**record, "annotations": {**record["annotations"], **report.annotations()}}
        return record, report


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
        address = normalize(address)
        if scrubber.is_own(address):
            continue
        if (
            not scrubber.identifying(address)
            or scrubber.knows(address.version)
            or (not is_whoami and address in PUBLIC_RESOLVERS)
        ):
            return str(address)
    return None
