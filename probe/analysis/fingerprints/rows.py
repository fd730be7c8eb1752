"""The fingerprint files: their format, the checks a row must pass, and what one row and one
match are (`Fingerprint`, `Match`, and how a row's countries make a match confirmed, foreign or
neither).

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
"""

from __future__ import annotations

import csv
import io
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from itertools import repeat
from pathlib import Path
from typing import Any

from probe.addresses import parse_ip

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
_COLUMNS = len(HEADER)
_NO_COUNTRIES: frozenset[str] = frozenset()
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


#: Fingerprint's fields, in order: the columns `fingerprints_from_columns` takes.
FIELDS = tuple(f.name for f in fields(Fingerprint))


def fingerprints_from_columns(columns: Sequence[Sequence[Any]]) -> list[Fingerprint]:
    """The fingerprints whose fields are `columns` (one sequence per name in FIELDS, all of one
    length), made without one call to __init__ per row: the frozen dataclass's __init__ sets
    each field through object.__setattr__ (~12,000 instructions a row); here each field's slot
    is set for all rows in one `map` over C calls (~5,000). Nothing is checked: the values
    must be what `_parse_row` made (cache.py keeps them)."""
    if len(columns) != len(FIELDS):
        raise ValueError(f"expected {len(FIELDS)} columns, found {len(columns)}")
    count = len(columns[0])
    made: list[Fingerprint] = list(map(object.__new__, repeat(Fingerprint, count)))
    for name, column in zip(FIELDS, columns, strict=True):
        if len(column) != count:
            raise ValueError("columns of different lengths")
        # the slot's own descriptor: what object.__setattr__ ends up calling, minus the lookup
        deque(map(vars(Fingerprint)[name].__set__, made, column), maxlen=0)
    return made


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
    # Unpacked by position, not through a dict of the stripped cells: this runs once per row
    # (1,959 bundled ones) on every load that does not come from the cache (cache.py).
    if len(row) != _COLUMNS:
        raise ValueError(f"expected {_COLUMNS} columns, found {len(row)}")
    name, scope, _, location, pattern_type, pattern, _, countries_text, _, _, _ = row
    name, scope = name.strip(), scope.strip().lower()
    location, pattern_type = location.strip().lower(), pattern_type.strip().lower()
    # patterns keep their spaces
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
    countries = _NO_COUNTRIES
    if countries_text and not countries_text.isspace():
        countries = frozenset(c.strip().upper() for c in countries_text.split(",") if c.strip())
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
        # a blank row: every cell empty or spaces (tested on the first cell, then all at once)
        if not row or (not row[0].strip() and not "".join(row).strip()):
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
