"""`FingerprintDB`: the bundled files plus the user's, indexed for matching DNS answers
(`match_dns`) and HTTP responses (`match_http`, body and headers)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

from probe.analysis.fingerprints.body import BodyIndex, BodyLayout
from probe.analysis.fingerprints.cache import load_bundled
from probe.analysis.fingerprints.rows import (
    BODY_MATCH_LIMIT,
    Fingerprint,
    Match,
    _normalise_ip,
    _read_text,
    _settle_countries,
    parse_csv,
)
from probe.observations import HTTPTransaction


class FingerprintDB:
    """All fingerprints, indexed for matching. Build with `load()` (or `default_db()`)."""

    def __init__(
        self,
        fingerprints: Iterable[Fingerprint],
        warnings: Sequence[str] = (),
        body_layouts: Sequence[BodyLayout] = (),
    ) -> None:
        """`body_layouts`: the `body_layout` of the first body patterns, when known (cache.py)."""
        self.fingerprints: tuple[Fingerprint, ...] = tuple(fingerprints)
        self.warnings: tuple[str, ...] = tuple(warnings)
        self._dns_exact: dict[str, list[Fingerprint]] = {}
        self._dns_other: list[Fingerprint] = []
        #: the body patterns in the files' order
        self._body: list[Fingerprint] = [fp for fp in self.fingerprints if fp.location == "body"]
        self._body_index = BodyIndex(self._body, body_layouts)
        self._headers: dict[str, list[Fingerprint]] = {}
        for fp in self.fingerprints:
            if fp.location == "dns":
                if fp.pattern_type == "full":
                    self._dns_exact.setdefault(fp.pattern, []).append(fp)
                else:
                    self._dns_other.append(fp)
            elif fp.location != "body":
                self._headers.setdefault(fp.location.removeprefix("header."), []).append(fp)
        self._header_tests = {name: _HeaderTest(fps) for name, fps in self._headers.items()}

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
        bundled = load_bundled()  # from the cache when it holds the bundled files
        found = list(bundled.fingerprints)
        warnings = list(bundled.warnings)
        for extra in extra_paths:
            path = Path(extra)
            rows, row_warnings = parse_csv(_read_text(path), str(path))
            found.extend(rows)
            warnings.extend(row_warnings)
        return cls(found, warnings, bundled.layouts)

    def match_dns(self, ip: str, *, probe_cc: str | None = None) -> list[Match]:
        """Fingerprints matching one DNS answer (an IP literal)."""
        text = _answer_text(ip)
        hits = self._dns_exact.get(text, ())
        if self._dns_other:  # none in the bundled files: their DNS rows are all exact
            hits = [*hits, *(fp for fp in self._dns_other if fp.matches(text))]
        if not hits:  # the usual answer: no call to settle nothing
            return []
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
            hits.extend(fp for fp in self._body_index.candidates(body) if fp.matches(body))
        for name, value in transaction.response_headers:
            test = self._header_tests.get(name.lower())
            if test is None or not test.may_match(value):
                continue
            for fp in self._headers[name.lower()]:
                if fp.matches(value) and fp not in hits:
                    hits.append(fp)
        if not hits:  # the usual response
            return []
        return _settle_countries([fp.match(probe_cc) for fp in hits])


class _HeaderTest:
    """Whether any of one header's patterns can match a value, in a few calls into C (an
    ordinary `Server: nginx` then costs no call per pattern); when one can, `match_http` tries
    each pattern in order as before, so the result and its order are unchanged."""

    __slots__ = ("_contains", "_full", "_prefixes", "_regexes")

    def __init__(self, fps: list[Fingerprint]) -> None:
        def patterns(pattern_type: str) -> tuple[str, ...]:
            return tuple(fp.pattern for fp in fps if fp.pattern_type == pattern_type)

        self._full = frozenset(patterns("full"))
        self._prefixes = patterns("prefix")
        self._contains = patterns("contains")
        self._regexes = any(fp.pattern_type == "regexp" for fp in fps)

    def may_match(self, value: str) -> bool:
        return (
            self._regexes
            or value in self._full
            or value.startswith(self._prefixes)
            or any(map(value.__contains__, self._contains))
        )


#: An answer's text as the DNS rows hold it, cached like `parse_ip` (the same addresses come back
#: for many targets: a CDN's, a blockpage server's; `str` of an address is ~10 Python calls).
_answer_text = lru_cache(maxsize=4096)(_normalise_ip)


@lru_cache(maxsize=1)
def default_db() -> FingerprintDB:
    """The bundled fingerprints, loaded once per process."""
    return FingerprintDB.load()
