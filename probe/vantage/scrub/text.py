"""Judging the candidates in one string (or one binary field) and replacing the ones to go.

`scrub_text` replaces, in a string, every candidate (`probe.vantage.scrub.candidates`) that is an
own
address of the scrubber, or, when redacting, an identifying address not kept; `scrub_binary`
does the same in the bytes of a base64 or hex field, with bytes of the same length. `Run` holds
one scrub's state: the mode, the addresses kept, the counts, and the memo of short strings.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from probe.addresses import IPAddress
from probe.failures import SCRUBBED
from probe.vantage.scrub.candidates import (
    ARPA4,
    MAX_PASSES,
    SHORT,
    TRIGGER_SEARCH,
    Reading,
    View,
    candidates,
    octets_of,
    v4_tail,
)
from probe.vantage.scrub.paths import B64

if TYPE_CHECKING:
    from probe.vantage.scrub.scrubber import Scrubber


@dataclass(slots=True)
class Run:
    """State of one scrub: the mode and what was kept, and the running counts."""

    redact: bool
    keep: frozenset[IPAddress]
    replaced: int = 0
    redacted: int = 0
    hashes_cleared: int = 0
    #: how often an address was spared because it is in `keep`: a string scanned
    #: without this moving would come out the same whatever is kept
    kept: int = 0
    #: short string -> (result or None when unchanged, replaced, redacted), for own-only and
    #: for free-text scrubbing
    memo: dict[str, tuple[str | None, int, int]] = field(default_factory=dict)
    memo_free: dict[str, tuple[str | None, int, int]] = field(default_factory=dict)
    #: what `keep` gains for this record (its measured addresses), made by `_redacts` when it
    #: first needs it: most records hold no identifying address in free text and never do
    more: Callable[[], frozenset[IPAddress]] | None = None


def scrub_text(scrubber: Scrubber, text: str, run: Run, redact: bool) -> str:
    """`text` with every literal to go replaced by ``[scrubbed]``."""
    # Until nothing changes: a replacement can leave another reading behind
    # ("203.0.113.7::cb00:7107" -> "[scrubbed]::cb00:7107", IPv4-compatible ::cb00:7107).
    for _ in range(MAX_PASSES):
        found = spans(scrubber, text, run, redact)
        if not found:
            break
        out: list[str] = []
        last = 0
        for start, end in found:
            out.append(text[last:start])
            out.append(SCRUBBED)
            last = end
        out.append(text[last:])
        text = "".join(out)
    return text


def spans(scrubber: Scrubber, text: str, run: Run, redact: bool) -> list[tuple[int, int]]:
    """The (start, end) in `text` of every literal to replace, in order, not overlapping."""
    if len(text) <= SHORT:
        if not TRIGGER_SEARCH(text):
            return []
        plain = _PLAIN_V4(text)
        if plain is not None:
            return _plain_v4(scrubber, plain, run, redact)
    view = View.of(text)
    found: list[tuple[int, int]] = []
    for kind, start, end, what in candidates(view.text, view.decoded):
        if kind == "v4":
            replace = _judge_v4(scrubber, view.text, start, end, run, redact)
        elif kind == "v4in":
            replace = _judge_v4(scrubber, view.text, start, end, run, False)
        elif kind == "v6":
            span = _judge_v6(scrubber, view.text, start, end, what, run, redact)
            replace = span is not None
            if span is not None:
                start, end = span
        else:
            replace = _judge(scrubber, what, run, redact)
        if replace:
            found.append((view.back(start), view.back(end)))
    if len(found) > 1:
        found.sort()
        merged = [found[0]]
        for start, end in found[1:]:
            if start < merged[-1][1]:
                merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
            else:
                merged.append((start, end))
        found = merged
    return found


#: The commonest string with an address: one dotted IPv4 address, perhaps with a port
#: (``151.101.1.1``, ``151.101.1.1:443``). Its only candidate is the address, in no host-name
#: context, so `_plain_v4` decides it the way `_judge_v4` would, without the scan.
_PLAIN_V4 = re.compile(
    r"([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})(?::[0-9]{1,5})?"
).fullmatch


def _plain_v4(
    scrubber: Scrubber, plain: re.Match[str], run: Run, redact: bool
) -> list[tuple[int, int]]:
    numbers = [int(number) for number in plain.groups()]
    if max(numbers) > 255:
        return []
    address = ipaddress.IPv4Address(bytes(numbers))
    if scrubber.owns(address):
        run.replaced += 1
        return [(0, plain.end(4))]
    if redact and _redacts(scrubber, address, run):
        run.redacted += 1
        return [(0, plain.end(4))]
    return []


def _redacts(scrubber: Scrubber, address: IPAddress, run: Run) -> bool:
    """Whether redaction takes `address` (an identifying one not kept)."""
    if run.more is not None:
        # `keep` not made yet: identifying first. An address that is not needs no `keep` (nor
        # the record's measured addresses), and leaves `Run.kept` alone: a string whose
        # addresses are all like that comes out the same in every record.
        if not scrubber.identifying(address):
            return False
        run.keep = run.keep | run.more()
        run.more = None
    if address in run.keep:
        run.kept += 1
        return False
    return scrubber.identifying(address)


def _judge(scrubber: Scrubber, address: IPAddress, run: Run, redact: bool) -> bool:
    if scrubber.owns(address):
        run.replaced += 1
        return True
    if redact and _redacts(scrubber, address, run):
        run.redacted += 1
        return True
    return False


def _judge_v6(
    scrubber: Scrubber,
    text: str,
    start: int,
    end: int,
    readings: tuple[Reading, ...],
    run: Run,
    redact: bool,
) -> tuple[int, int] | None:
    """The span to replace, or None. Any reading that is ours counts; redaction goes by the most
    natural reading."""
    for address, lead, trail in readings:
        candidate = text[start + lead : end - trail].split("%", 1)[0]
        # Also ours: ending in an own IPv4 address in dotted form.
        for reading in (address, v4_tail(candidate)):
            if reading is not None and scrubber.owns(reading):
                run.replaced += 1
                return start + lead, end - trail
    address, lead, trail = readings[0]
    if redact and _in_word(text, start + lead, end - trail):
        return None  # std::vector's "d::", a word, not an address to redact
    if _judge(scrubber, address, run, redact):
        return start + lead, end - trail
    return None


def _judge_v4(scrubber: Scrubber, text: str, start: int, end: int, run: Run, redact: bool) -> bool:
    octets = octets_of(text[start:end])
    if octets is None:
        return False
    forward = ipaddress.IPv4Address(bytes(octets))
    reverse = ipaddress.IPv4Address(bytes(octets[::-1]))
    arpa = text[end : end + len(ARPA4)].lower() == ARPA4
    host = arpa or _hostname_context(text, start, end)
    dashed = "-" in text[start:end] or "_" in text[start:end]
    if arpa:
        readings = [reverse]
    elif host:
        readings = [forward, reverse]
    else:
        readings = [forward]  # an own address in dashes is ours in any context
    for address in readings:
        if scrubber.owns(address):
            run.replaced += 1
            return True
    if redact and (host or not dashed):  # "12-30-45-67" alone: a phone number, a date
        for address in readings:
            if _redacts(scrubber, address, run):
                run.redacted += 1
                return True
    return False


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


def scrub_binary(
    scrubber: Scrubber,
    value: str,
    kind: int,
    run: Run,
    redact: bool,
    packed: list[tuple[bytes, int]] | None = None,
) -> str:
    """A base64 (`kind` B64) or hex field with an own address, packed (4 or 16 bytes, or the 8
    bytes of an own /64) or as text, overwritten in place: zeros for the packed form, ``x`` for
    text, so the field keeps its length. Not decodable: scrubbed as text. `packed` is
    `Scrubber.packed()`, when the caller has it already."""
    try:
        if kind == B64:
            raw = base64.b64decode(value, validate=True)
        else:
            raw = bytes.fromhex(value)
    except (binascii.Error, ValueError):
        return scrub_text(scrubber, value, run, redact)
    data: bytearray | None = None
    for needle, width in scrubber.packed() if packed is None else packed:
        at = raw.find(needle)
        while at != -1:
            if data is None:
                data = bytearray(raw)
            data[at : at + width] = bytes(len(data[at : at + width]))
            run.replaced += 1
            at = raw.find(needle, at + 1)
    for _ in range(MAX_PASSES):
        found = spans(scrubber, (raw if data is None else data).decode("latin-1"), run, redact)
        if not found:
            break
        if data is None:
            data = bytearray(raw)
        for start, end in found:
            data[start:end] = b"x" * (end - start)
    if data is None:
        return value
    if kind == B64:
        return base64.b64encode(bytes(data)).decode("ascii")
    return bytes(data).hex()
