"""Known blocking fingerprints: DNS answers and HTTP blockpages, and matching against them.

The format is the community database's CSV (OONI's blocking-fingerprints, FACTS.md §5):

    name,scope,other_names,location_found,pattern_type,pattern,confidence_no_fp,
    expected_countries,source,exp_url,notes

`location_found` is ``dns``, ``body`` or ``header.<name>``; `pattern_type` is ``full``,
``prefix``, ``contains`` or ``regexp``. Scope ``nat``/``isp`` (or a match in one of the
`expected_countries`) is confirmed blocking; scope ``fp`` marks a known false positive: a page
that looks like a blockpage but is not one, which must never count as blocking.

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
        confirmed = self.scope in CONFIRMED_SCOPES or (
            probe_cc is not None and probe_cc.upper() in self.expected_countries
        )
        if self.scope == FALSE_POSITIVE_SCOPE:
            confirmed = False
        return Match(self.name, self.scope, self.location, confirmed)


@dataclass(frozen=True, slots=True)
class Match:
    """A fingerprint that matched. `confirmed`: counts as proof of deliberate blocking."""

    name: str
    scope: str
    location: str
    confirmed: bool

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


def required_word(fp: Fingerprint) -> str | None:
    """A run of word characters that any text matching the (literal) pattern holds as a whole
    word: for `contains`, a run not touching the pattern's ends (the pattern's own non-word
    characters bound it); for `prefix`, also one at its start; for `full`, any. The longest is
    the most selective. None for regexps and patterns without such a run."""
    if fp.pattern_type not in ("contains", "full", "prefix"):
        return None
    pattern = fp.pattern

    def bounded(match: re.Match[str]) -> bool:
        if fp.pattern_type == "full":
            return True
        left = match.start() > 0 or fp.pattern_type == "prefix"
        return left and match.end() < len(pattern)

    words = [m.group() for m in _WORD.finditer(pattern) if bounded(m)]
    return max(words, key=len, default=None)


class FingerprintDB:
    """All fingerprints, indexed for matching. Build with `load()` (or `default_db()`)."""

    def __init__(self, fingerprints: Iterable[Fingerprint], warnings: Sequence[str] = ()) -> None:
        self.fingerprints: tuple[Fingerprint, ...] = tuple(fingerprints)
        self.warnings: tuple[str, ...] = tuple(warnings)
        self._dns_exact: dict[str, list[Fingerprint]] = {}
        self._dns_other: list[Fingerprint] = []
        self._body: list[Fingerprint] = []
        # Body prefilter: most patterns contain a word that any body holding the pattern must
        # hold as a whole word; index them by it, and search only those whose word is there.
        self._body_by_word: dict[str, list[tuple[int, Fingerprint]]] = {}
        self._body_always: list[tuple[int, Fingerprint]] = []
        self._headers: dict[str, list[Fingerprint]] = {}
        for fp in self.fingerprints:
            if fp.location == "dns":
                if fp.pattern_type == "full":
                    self._dns_exact.setdefault(fp.pattern, []).append(fp)
                else:
                    self._dns_other.append(fp)
            elif fp.location == "body":
                entry = (len(self._body), fp)
                self._body.append(fp)
                word = required_word(fp)
                if word is None:
                    self._body_always.append(entry)
                else:
                    self._body_by_word.setdefault(word, []).append(entry)
            else:
                self._headers.setdefault(fp.location.removeprefix("header."), []).append(fp)

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
        return [fp.match(probe_cc) for fp in hits]

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
            words = set(_WORD.findall(body))
            candidates = list(self._body_always)
            for word in words.intersection(self._body_by_word):
                candidates.extend(self._body_by_word[word])
            candidates.sort(key=lambda entry: entry[0])  # the files' order, as without the index
            hits.extend(fp for _, fp in candidates if fp.matches(body))
        for name, value in transaction.response_headers:
            for fp in self._headers.get(name.lower(), ()):
                if fp.matches(value) and fp not in hits:
                    hits.append(fp)
        return [fp.match(probe_cc) for fp in hits]


@lru_cache(maxsize=1)
def default_db() -> FingerprintDB:
    """The bundled fingerprints, loaded once per process."""
    return FingerprintDB.load()
