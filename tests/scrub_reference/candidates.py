"""Finding IP literals in free text: every run of characters that can spell an address.

A candidate is any run that can spell an address, in plain text or HTML/XML numeric or named
entities (``203&#46;0&#46;113&#46;7``, ``&#50;&#48;&#51;``, ``&period;``) or percent-encoding
(``203%2E0%2E113%2E7``): dotted IPv4 with any zero padding, any IPv6 form (upper case,
zero-padded groups, compressed differently, a zone id, IPv4-mapped, IPv4-compatible), ``addr:port``
and ``[v6]:port``, ``ip6.arpa`` nibbles and dashed host labels. This module only finds and reads
candidates (`candidates`, `literals`); whether one is replaced is `text`'s call.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from functools import lru_cache
from typing import Any

from probe.addresses import IPAddress

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
TRIGGER = re.compile(
    r"[0-9][.\-_][0-9]++[.\-_][0-9]++[.\-_][0-9]"
    r"|::|:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:"
    r"|&(?:\#|period;|colon;|lowbar;)|%[2-6][0-9A-Fa-f]|6\.(?i:arpa)"
)
SHORT = 256
#: a replacement can expose another reading; each pass removes address characters, so a few do
MAX_PASSES = 8
TRIGGER_SEARCH = TRIGGER.search
_SEPARATORS = re.compile(r"[.\-_]")
_PORT_SUFFIX = re.compile(r":[0-9]{1,5}$")
_V4_TAIL = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}$")
_HEX_SET = frozenset(_HEXDIGITS)
_HEXCOLON_SET = frozenset(_HEXDIGITS + ":")
_DIGIT_SET = frozenset(_DIGITS)
ARPA4 = ".in-addr.arpa"


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


class View:
    """`text` with the escapes that can spell an address decoded, and the way back."""

    __slots__ = ("at", "ends", "starts", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.at: list[int] = []  # where each decoded escape is in the view
        self.starts: list[int] = []  # ... and in the original
        self.ends: list[int] = []

    @classmethod
    def of(cls, text: str) -> View:
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
Reading = tuple[IPAddress, int, int]


def _counts(run: int) -> list[int]:
    """How many of `run` stray colons to try dropping (all of a very long run would be slow)."""
    return sorted({n for n in (0, 1, 2, run - 2, run - 1, run) if 0 <= n <= run})


@lru_cache(maxsize=4096)
def _parse6(text: str) -> tuple[Reading, ...]:
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
    readings: list[Reading] = []
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
    return normalize(address)


def normalize(address: IPAddress) -> IPAddress:
    """IPv4-mapped and IPv4-compatible IPv6 addresses are their IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        value = int(address)
        if 0xFFFF < value < 1 << 32:  # ::a.b.c.d (deprecated compatible form), not :: or ::1
            return ipaddress.IPv4Address(value)
    return address


@lru_cache(maxsize=4096)
def v4_tail(text: str) -> ipaddress.IPv4Address | None:
    """The dotted IPv4 address an IPv6 candidate ends with (``::ffff:203.0.113.7``)."""
    match = _V4_TAIL.search(text.split("%", 1)[0])
    octets = octets_of(match.group(0)) if match else None
    return ipaddress.IPv4Address(bytes(octets)) if octets else None


@lru_cache(maxsize=4096)
def octets_of(text: str) -> tuple[int, int, int, int] | None:
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
    return normalize(ipaddress.IPv6Address(int(text.replace(".", "")[::-1], 16)))


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
Candidate = tuple[str, int, int, Any]


def candidates(text: str, decoded: frozenset[int] = frozenset()) -> list[Candidate]:
    """Every candidate in `text` (a view: escapes already decoded, at `decoded`), IPv6 first."""
    found: list[Candidate] = []
    taken: list[tuple[int, int]] = []
    if ":" in text:
        found = _v6_candidates(text, decoded)
        for _, start, end, readings in found:
            _, lead, trail = readings[0]
            taken.append((start + lead, end - trail))
    for start, end in sorted(_v4_runs(text, decoded)):
        # Inside an IPv6 address (::ffff:203.0.113.7) the IPv6 candidate decides redaction;
        # the run is still read for an own address (::7.113.0.203.in-addr.arpa).
        inside = any(a <= start and end <= b for a, b in taken)
        found.append(("v4in" if inside else "v4", start, end, None))
    if _ARPA6.search(text):
        for match in _NIBBLES.finditer(text):
            found.append(("n", match.start(), match.end() - 1, _nibbles(match.group(0))))
    return found


def _v6_candidates(text: str, decoded: frozenset[int]) -> list[Candidate]:
    """The IPv6 candidates, each with its readings."""
    found: list[Candidate] = []
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
    return found


def _v4_runs(text: str, decoded: frozenset[int]) -> set[tuple[int, int]]:
    """The (start, end) of every run of four numbers and separators (or of its parts)."""
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
    return runs


def literals(text: str) -> list[IPAddress]:
    """Every IP literal in `text` (``ip``, ``ip:port``, ``[v6]:port``, a URL), normalized
    (IPv4-mapped as IPv4). Used for the addresses to keep."""
    if len(text) <= SHORT:
        return list(_short_literals(text))
    return _literals(text)


@lru_cache(maxsize=4096)
def _short_literals(text: str) -> tuple[IPAddress, ...]:
    """`literals` of a short string, remembered: measured addresses repeat from record to
    record (every network event of a flow names its address)."""
    if not TRIGGER_SEARCH(text):
        return ()
    return tuple(_literals(text))


def _literals(text: str) -> list[IPAddress]:
    view = View.of(text)
    found: list[IPAddress] = []
    for kind, start, end, what in candidates(view.text, view.decoded):
        if kind == "v6":
            found.append(what[0][0])
            continue
        if kind == "n":
            found.append(what)
            continue
        run = view.text[start:end]
        octets = octets_of(run)
        if octets is not None and "-" not in run and "_" not in run:
            found.append(ipaddress.IPv4Address(bytes(octets)))
    return found
