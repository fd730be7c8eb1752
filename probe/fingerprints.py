"""Known blocking fingerprints: DNS answers and HTTP blockpages, and matching against them.

The format is the community database's CSV (OONI's blocking-fingerprints, FACTS.md §5):

    name,scope,other_names,location_found,pattern_type,pattern,confidence_no_fp,
    expected_countries,source,exp_url,notes

`location_found` is ``dns``, ``body`` or ``header.<name>``; `pattern_type` is ``full``,
``prefix``, ``contains`` or ``regexp``. Scope ``nat``/``isp`` (or a match in one of the
`expected_countries`) is confirmed blocking — but a row that lists its countries confirms only
for a probe in one of them (or whose country is unknown): Iran's injected address seen from a
probe in Italy is *foreign*, worth naming, not proof. Rows of the same answer or page that list
no country then count as that other country's too (`_settle_countries`). Scope ``fp`` marks a
known false positive: a page that looks like a blockpage but is not one, which must never count
as blocking.

The package ships copies of the community files plus `fingerprints_extra.csv` (rows the
community files lack, e.g. Iran's IPv6 injection addresses). Users add newer copies or their
own rows with ``--fingerprints FILE``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from probe.addresses import parse_ip
from probe.observations import HTTPTransaction

HEADER = (
    "name",
    "scope",
    "other_names",
    "location_found",
    "pattern_type",
    "pattern",
    "confidence_no_fp",
    "expected_countries",
    "source",
    "exp_url",
    "notes",
)
BUNDLED_FILES = ("fingerprints_dns.csv", "fingerprints_http.csv", "fingerprints_extra.csv")
SCOPES = frozenset({"nat", "isp", "prod", "inst", "vbw", "prov", "injb", "fp"})
CONFIRMED_SCOPES = frozenset({"nat", "isp"})
FALSE_POSITIVE_SCOPE = "fp"
PATTERN_TYPES = frozenset({"full", "prefix", "contains", "regexp"})

#: Bodies are matched up to this many characters (a body snapshot never exceeds the probe's
#: body cap anyway); regular expressions see only the first REGEX_INPUT_LIMIT characters, which
#: bounds the work of a `.*X.*Y` pattern on a hostile single-line body.
BODY_MATCH_LIMIT = 1 << 20
REGEX_INPUT_LIMIT = 1 << 16
MAX_PATTERN_LENGTH = 2000
MAX_FILE_BYTES = 32 << 20
MAX_ROWS_PER_FILE = 200_000

# A quantified group that itself contains a quantifier, e.g. (a+)+ or (x*)*: the shape of
# catastrophic backtracking. Such patterns are refused at load time.
_NESTED_QUANTIFIER = re.compile(r"\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)\s*[+*{]")


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """One row of a fingerprint file, with its pattern compiled when it is a regexp."""

    name: str
    scope: str
    location: str  # "dns", "body" or "header.<lowercase name>"
    pattern_type: str
    pattern: str
    expected_countries: frozenset[str]
    source: str  # "file:line" it came from
    regex: re.Pattern[str] | None = field(default=None, compare=False)

    def matches(self, text: str) -> bool:
        if self.pattern_type == "full":
            return text == self.pattern
        if self.pattern_type == "prefix":
            return text.startswith(self.pattern)
        if self.pattern_type == "contains":
            return self.pattern in text
        assert self.regex is not None
        return self.regex.search(text[:REGEX_INPUT_LIMIT]) is not None

    def match(self, probe_cc: str | None) -> Match:
        country = known_country(probe_cc)
        foreign = bool(self.expected_countries) and country is not None
        foreign = foreign and country not in self.expected_countries
        confirmed = self.scope in CONFIRMED_SCOPES or (
            country is not None and country in self.expected_countries
        )
        if self.scope == FALSE_POSITIVE_SCOPE or foreign:
            confirmed = False
        return Match(
            self.name, self.scope, self.location, confirmed, self.expected_countries, foreign
        )


#: What a record says when the probe's country is not known (df-000-base).
UNKNOWN_COUNTRY = "ZZ"


def known_country(probe_cc: str | None) -> str | None:
    """The probe's country in upper case, or None when the record does not know it."""
    if not isinstance(probe_cc, str):
        return None
    country = probe_cc.strip().upper()
    return country if country and country != UNKNOWN_COUNTRY else None


@dataclass(frozen=True, slots=True)
class Match:
    """A fingerprint that matched. `confirmed`: counts as proof of deliberate blocking."""

    name: str
    scope: str
    location: str
    confirmed: bool
    #: the countries the row is known from (empty: anywhere)
    countries: frozenset[str] = frozenset()
    #: the row names countries and the probe is known to be in none of them: a censor's
    #: pattern from elsewhere, never proof here (it may be named in the reason)
    foreign: bool = False

    @property
    def false_positive(self) -> bool:
        """A known look-alike (scope fp): it must not count as blocking."""
        return self.scope == FALSE_POSITIVE_SCOPE


def _normalise_ip(text: str) -> str:
    """The canonical form of an IP literal (d0:0:0:0:0:0:0:11 → d0::11), else the text."""
    address = parse_ip(text)
    return str(address) if address is not None else text.strip()


def _check_regex(pattern: str) -> re.Pattern[str]:
    if _NESTED_QUANTIFIER.search(pattern):
        raise ValueError("regexp with a nested quantifier (catastrophic backtracking)")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"bad regexp: {exc}") from None


def _parse_row(row: list[str], source: str) -> Fingerprint:
    if len(row) != len(HEADER):
        raise ValueError(f"expected {len(HEADER)} columns, found {len(row)}")
    values = dict(zip(HEADER, (c.strip() for c in row), strict=True))
    name, scope = values["name"], values["scope"].lower()
    location, pattern_type = values["location_found"].lower(), values["pattern_type"].lower()
    pattern = row[HEADER.index("pattern")]  # patterns keep their spaces
    if not name:
        raise ValueError("empty name")
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")
    if pattern_type not in PATTERN_TYPES:
        raise ValueError(f"unknown pattern_type {pattern_type!r}")
    if location != "dns" and location != "body" and not location.startswith("header."):
        raise ValueError(f"unknown location_found {location!r}")
    if location == "header.":
        raise ValueError("header location without a header name")
    if not pattern:
        raise ValueError("empty pattern")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"pattern longer than {MAX_PATTERN_LENGTH} characters")
    regex = _check_regex(pattern) if pattern_type == "regexp" else None
    if location == "dns" and pattern_type == "full":
        pattern = _normalise_ip(pattern)
    countries = frozenset(
        c.strip().upper() for c in values["expected_countries"].split(",") if c.strip()
    )
    return Fingerprint(name, scope, location, pattern_type, pattern, countries, source, regex)


def parse_csv(text: str, path: str) -> tuple[list[Fingerprint], list[str]]:
    """Fingerprints in one file's text, and a `file:line: message` warning per skipped row.

    Raises ValueError (naming file:line) when the file is not in the format at all."""
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise ValueError(f"{path}:1: not a fingerprint CSV: {exc}") from None
    if header is None:
        raise ValueError(f"{path}:1: empty file, expected the header {','.join(HEADER)}")
    if tuple(h.strip().lower() for h in header) != HEADER:
        raise ValueError(f"{path}:1: wrong header, expected {','.join(HEADER)}")
    found: list[Fingerprint] = []
    warnings: list[str] = []
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise ValueError(f"{path}:{line}: bad CSV: {exc}") from None
        if len(found) + len(warnings) >= MAX_ROWS_PER_FILE:
            raise ValueError(f"{path}:{line}: more than {MAX_ROWS_PER_FILE} rows")
        if not row or all(not c.strip() for c in row):
            continue
        try:
            found.append(_parse_row(row, f"{path}:{line}"))
        except ValueError as exc:
            warnings.append(f"{path}:{line}: skipped: {exc}")
    return found, warnings


def _read_text(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"{path}:0: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{path}:0: larger than {MAX_FILE_BYTES} bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not UTF-8") from None


_WORD = re.compile(r"\w+")

# How a word of a pattern shows up among the words (maximal `\w+` runs) of any body that matches
# the pattern: as a whole word when the pattern bounds it on both sides (by its own non-word
# characters, or by the start/end of the text for `prefix`/`full`); as the start of a word when
# bounded only on the left; as the end of one when bounded only on the right; somewhere inside
# a word when not bounded at all (a pattern that is a single word).
WHOLE_WORD = "whole"
WORD_START = "start"
WORD_END = "end"
IN_WORD = "inside"
_KIND_RANK = {WHOLE_WORD: 3, WORD_START: 2, WORD_END: 2, IN_WORD: 1}  # cheapest test first

#: Words found in nearly every HTML page (tag and attribute names, the commonest English words)
#: or too short to select anything: a key on one of them lets the pattern be searched on every
#: page (e.g. 23 patterns have `title` as their longest bounded word), so a rarer word of the
#: same pattern is preferred when there is one. Only the choice depends on this list, never a
#: result.
_COMMON_WORDS = frozenset(
    "html head title body meta link script style div span class id href src http https www "
    "com org net img alt type text content name charset utf rel css js width height iframe "
    "form input button table tr td li ul ol br hr nbsp amp quot lt gt the and for you your "
    "are not this that with from was has have can will page site web access index info "
    "default please error home".split()
)


def _is_common(word: str) -> bool:
    return len(word) <= 2 or word.lower() in _COMMON_WORDS


#: Characters with a meaning in a regular expression (outside the VERBOSE flag, which a pattern
#: could only turn on with a leading `(?x)`; a leading `(` ends the literal prefix anyway).
_REGEX_SPECIAL = frozenset(".^$*+?{}[]\\|()")


def regex_literal_prefix(pattern: str) -> str:
    """The literal text any match of `pattern` starts with ("" when none is certain).

    Conservative: stops at the first special character or escape of a letter or digit (a class
    like \\s), drops a character a quantifier follows, and gives up on any `|` (an alternation
    at the top level would make the prefix optional)."""
    if "|" in pattern:
        return ""
    literal: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            escaped = pattern[i + 1 : i + 2]
            if not escaped or (escaped.isascii() and escaped.isalnum()):
                break
            c, step = escaped, 2
        elif c in _REGEX_SPECIAL:
            break
        else:
            step = 1
        if pattern[i + step : i + step + 1] in ("*", "+", "?", "{"):
            break  # `c` is quantified: it may be absent or repeated
        literal.append(c)
        i += step
    return "".join(literal)


def body_keys(fp: Fingerprint) -> list[tuple[str, str]]:
    """Every (kind, word) that any body matching `fp` holds (kinds above), the most selective
    first: not a common word, then the cheapest kind to test, then the longest. Empty for a
    regexp without a literal start and for patterns without a word character."""
    if fp.pattern_type == "regexp":
        literal, at_start, at_end = regex_literal_prefix(fp.pattern), False, False
    elif fp.pattern_type in ("contains", "full", "prefix"):
        literal = fp.pattern
        at_start = fp.pattern_type in ("full", "prefix")
        at_end = fp.pattern_type == "full"
    else:
        return []
    keys: dict[tuple[str, str], tuple[bool, int, int]] = {}
    for m in _WORD.finditer(literal):
        left = m.start() > 0 or at_start
        right = m.end() < len(literal) or at_end
        kind = (WHOLE_WORD if right else WORD_START) if left else (WORD_END if right else IN_WORD)
        word = m.group()
        keys[(kind, word)] = (not _is_common(word), _KIND_RANK[kind], len(word))
    return sorted(keys, key=keys.__getitem__, reverse=True)


def required_word(fp: Fingerprint) -> str | None:
    """The word of the most selective of `body_keys` (None when there is none)."""
    keys = body_keys(fp)
    return keys[0][1] if keys else None


#: Start and end keys are indexed by their first (last) SHORT_KEY characters, which any word
#: they start (end) starts (ends) with too: one set of such pieces per body then tests them all
#: at once, where a sorted search per key cost ~0.4 us each (150 keys: 60 us a body). The whole
#: key is still tested, for the few patterns the piece lets through.
SHORT_KEY = 4
_SHORT_START = "short-start"
_SHORT_END = "short-end"


# ASCII characters other than word characters ([A-Za-z0-9_]) become spaces; bytes of UTF-8
# sequences (0x80 and up) stay as they are.
_ASCII_NON_WORD_TO_SPACE = bytes(
    c if chr(c).isalnum() or c == ord("_") else ord(" ") for c in range(128)
) + bytes(range(128, 256))


def body_words(body: str) -> set[str]:
    """The distinct words (maximal `\\w+` runs) of `body`: what `set(re.findall(r"\\w+", body))`
    gives, about 2.5x faster on text that is mostly ASCII (bytes.translate and str.split run in C,
    where the regex costs ~35 ns a character: 75 us for a 2 KB page, 2.3 ms for 64 KiB).

    Every ASCII non-word character becomes a space; what `split()` then returns are words,
    except tokens holding other characters, which are split with the regex (they are bounded by
    non-word characters, so their words are whole words of the body)."""
    if body.isascii():
        return set(body.encode("ascii").translate(_ASCII_NON_WORD_TO_SPACE).decode("ascii").split())
    raw = body.encode("utf-8", "surrogatepass")
    if len(raw) - len(body) > len(body) // 16:  # mostly non-Latin text: the regex is cheaper
        return set(_WORD.findall(body))
    tokens = set(raw.translate(_ASCII_NON_WORD_TO_SPACE).decode("utf-8", "surrogatepass").split())
    odd = [token for token in tokens if not token.isascii()]
    if len(odd) * 4 > len(tokens):
        return set(_WORD.findall(body))
    tokens.difference_update(odd)
    for token in odd:
        tokens.update(_WORD.findall(token))
    return tokens


class _BodyWords:
    """The words of one body, and the views of them that `body_keys` are tested against (each
    built on first use)."""

    __slots__ = ("_joined", "_short_ends", "_short_starts", "words")

    def __init__(self, body: str) -> None:
        self.words = body_words(body)
        self._short_starts: set[str] | None = None
        self._short_ends: set[str] | None = None
        self._joined: str | None = None

    def short_starts(self) -> set[str]:
        """The first SHORT_KEY characters of every word at least that long."""
        if self._short_starts is None:
            self._short_starts = {w[:SHORT_KEY] for w in self.words if len(w) >= SHORT_KEY}
        return self._short_starts

    def short_ends(self) -> set[str]:
        """The last SHORT_KEY characters of every word at least that long."""
        if self._short_ends is None:
            self._short_ends = {w[-SHORT_KEY:] for w in self.words if len(w) >= SHORT_KEY}
        return self._short_ends

    def has_inside(self, part: str) -> bool:
        """Some word contains `part` (words are joined by a non-word character)."""
        if self._joined is None:
            self._joined = "\n".join(self.words)
        return part in self._joined


def _index_key(keys: list[tuple[str, str]]) -> tuple[str, str, list[tuple[str, str]]] | None:
    """How a pattern with `keys` (most selective first) is indexed: (kind, word, the keys left
    to test). A whole word if it has one; else a start or end of SHORT_KEY characters or more,
    indexed by that many; else a part of a word. None: test its keys on every body."""

    def others(key: tuple[str, str]) -> list[tuple[str, str]]:
        return [k for k in keys if k != key]

    whole = [(kind, word) for kind, word in keys if kind == WHOLE_WORD]
    for key in whole:
        if not _is_common(key[1]):
            return WHOLE_WORD, key[1], others(key)
    for kind, word in keys:
        if kind == WORD_START and len(word) >= SHORT_KEY and not _is_common(word):
            return _SHORT_START, word[:SHORT_KEY], keys
        if kind == WORD_END and len(word) >= SHORT_KEY and not _is_common(word):
            return _SHORT_END, word[-SHORT_KEY:], keys
    if whole:
        return WHOLE_WORD, whole[0][1], others(whole[0])
    for kind, word in keys:
        if kind == IN_WORD:
            return kind, word, others((kind, word))
    return None


#: A body pattern in the index: its position in the files' order, the fingerprint, and what
#: must hold too before the pattern is searched: its whole words, the SHORT_KEY-character starts
#: and ends of its other words (each a subset test), and the words that may sit inside others.
#: Starts and ends shorter than SHORT_KEY are not tested: they select little, and testing them
#: exactly needed sorted views of the words (sorting them cost more than the searches it saved).
_BodyEntry = tuple[
    int, Fingerprint, frozenset[str], frozenset[str], frozenset[str], tuple[str, ...]
]


def _entry(position: int, fp: Fingerprint, keys: list[tuple[str, str]]) -> _BodyEntry:
    def words(kind: str) -> list[str]:
        return [word for k, word in keys if k == kind]

    return (
        position,
        fp,
        frozenset(words(WHOLE_WORD)),
        frozenset(w[:SHORT_KEY] for w in words(WORD_START) if len(w) >= SHORT_KEY),
        frozenset(w[-SHORT_KEY:] for w in words(WORD_END) if len(w) >= SHORT_KEY),
        tuple(words(IN_WORD)),
    )


class FingerprintDB:
    """All fingerprints, indexed for matching. Build with `load()` (or `default_db()`)."""

    def __init__(self, fingerprints: Iterable[Fingerprint], warnings: Sequence[str] = ()) -> None:
        self.fingerprints: tuple[Fingerprint, ...] = tuple(fingerprints)
        self.warnings: tuple[str, ...] = tuple(warnings)
        self._dns_exact: dict[str, list[Fingerprint]] = {}
        self._dns_other: list[Fingerprint] = []
        self._body: list[Fingerprint] = []
        # Body prefilter (see `body_keys`): nearly every pattern holds words that any matching
        # body holds too (whole, or as the start, end or part of a word). Index each pattern by
        # its most selective one; search only patterns whose words are all there. The words of
        # a body are found once (`body_words`). match_http against the previous index (longest
        # bounded word only; 127 patterns searched on every body), same process: the 2 KB page
        # of bench/success_overhead.py 250 -> 79 us, 64 KiB of text 7.8 -> 1.3 ms, real 35-60
        # KB HTML pages 4.7-8.7 -> 1.0-3.5 ms. Results are the same as searching every pattern
        # (tests/test_fingerprints.py compares with that on generated bodies).
        self._body_by_kind: dict[str, dict[str, list[_BodyEntry]]] = {
            kind: {} for kind in (WHOLE_WORD, _SHORT_START, _SHORT_END, IN_WORD)
        }
        self._body_always: list[_BodyEntry] = []
        self._headers: dict[str, list[Fingerprint]] = {}
        for fp in self.fingerprints:
            if fp.location == "dns":
                if fp.pattern_type == "full":
                    self._dns_exact.setdefault(fp.pattern, []).append(fp)
                else:
                    self._dns_other.append(fp)
            elif fp.location == "body":
                keys = body_keys(fp)
                index = _index_key(keys)
                if index is None:
                    self._body_always.append(_entry(len(self._body), fp, keys))
                else:
                    kind, word, left = index
                    self._body_by_kind[kind].setdefault(word, []).append(
                        _entry(len(self._body), fp, left)
                    )
                self._body.append(fp)
            else:
                self._headers.setdefault(fp.location.removeprefix("header."), []).append(fp)

        self._body_keys = {kind: frozenset(index) for kind, index in self._body_by_kind.items()}

    def __len__(self) -> int:
        return len(self.fingerprints)

    @property
    def skipped(self) -> int:
        """Rows skipped while loading (each has a warning)."""
        return len(self.warnings)

    @classmethod
    def load(cls, extra_paths: Iterable[str | Path] = ()) -> FingerprintDB:
        """The bundled files plus `extra_paths`. Bad rows are skipped (see `warnings`); an
        extra file that is missing or not in the format raises ValueError naming file:line."""
        found: list[Fingerprint] = []
        warnings: list[str] = []
        package = resources.files("probe.data")
        for name in BUNDLED_FILES:
            text = package.joinpath(name).read_text(encoding="utf-8-sig")
            rows, row_warnings = parse_csv(text, name)
            found.extend(rows)
            warnings.extend(row_warnings)
        for extra in extra_paths:
            path = Path(extra)
            rows, row_warnings = parse_csv(_read_text(path), str(path))
            found.extend(rows)
            warnings.extend(row_warnings)
        return cls(found, warnings)

    def match_dns(self, ip: str, *, probe_cc: str | None = None) -> list[Match]:
        """Fingerprints matching one DNS answer (an IP literal)."""
        text = _normalise_ip(ip)
        hits = list(self._dns_exact.get(text, ()))
        hits.extend(fp for fp in self._dns_other if fp.matches(text))
        return _settle_countries([fp.match(probe_cc) for fp in hits])

    def match_http(
        self, transaction: HTTPTransaction, *, probe_cc: str | None = None
    ) -> list[Match]:
        """Fingerprints matching one HTTP response: its body snapshot and its headers (names
        compared case-insensitively). A transaction without a response matches nothing."""
        if transaction.response_code is None:
            return []
        hits: list[Fingerprint] = []
        body = (transaction.body or "")[:BODY_MATCH_LIMIT]
        if body:
            hits.extend(fp for fp in self._body_candidates(body) if fp.matches(body))
        for name, value in transaction.response_headers:
            for fp in self._headers.get(name.lower(), ()):
                if fp.matches(value) and fp not in hits:
                    hits.append(fp)
        return _settle_countries([fp.match(probe_cc) for fp in hits])

    def _body_candidates(self, body: str) -> list[Fingerprint]:
        """The body patterns whose keys all hold for `body`, in the files' order."""
        words = _BodyWords(body)
        found = list(self._body_always)
        for kind, pieces in (
            (WHOLE_WORD, words.words),
            (_SHORT_START, words.short_starts()),
            (_SHORT_END, words.short_ends()),
        ):
            index = self._body_by_kind[kind]
            # A set & a set walks the smaller one (a set & a dict would walk the dict).
            for word in pieces & self._body_keys[kind]:
                found.extend(index[word])
        for word, entries in self._body_by_kind[IN_WORD].items():
            if words.has_inside(word):
                found.extend(entries)
        whole, starts, ends = words.words, words.short_starts(), words.short_ends()
        kept = [
            entry
            for entry in found
            if entry[2] <= whole
            and entry[3] <= starts
            and entry[4] <= ends
            and all(words.has_inside(part) for part in entry[5])
        ]
        kept.sort(key=lambda entry: entry[0])  # the files' order, as without the index
        return [entry[1] for entry in kept]


def _settle_countries(matches: list[Match]) -> list[Match]:
    """Rows of one answer or page that list no country take the others' word for where it is
    from: when every row that lists countries lists only others than the probe's (Iran's
    iframe blockpage seen from Italy: OONI's rows say IR, a Censored Planet row of the same
    page says nothing), the page is another country's, and none of its rows confirms here."""
    foreign = [m for m in matches if m.foreign]
    if not foreign or any(m.countries and not m.foreign for m in matches):
        return matches
    countries = frozenset(c for m in foreign for c in m.countries)
    return [
        m
        if m.foreign or m.countries or m.scope == FALSE_POSITIVE_SCOPE
        else Match(m.name, m.scope, m.location, False, countries, True)
        for m in matches
    ]


@lru_cache(maxsize=1)
def default_db() -> FingerprintDB:
    """The bundled fingerprints, loaded once per process."""
    return FingerprintDB.load()
