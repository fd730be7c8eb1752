"""The indexed matching (`FingerprintDB.match_http`) against today's (tests/
fingerprints_reference.py: every pattern searched): the same rows, in the same order, with the
same fields, over the bundled database and bodies and headers built from its own patterns."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe.analysis.fingerprints import Fingerprint, FingerprintDB, default_db
from probe.observations import HTTPTransaction
from tests.fingerprints_reference import fixture_bodies, reference_match_http

_DB = default_db()
_BODY = [fp.pattern for fp in _DB.fingerprints if fp.location == "body"]
_HEADERS = [
    (fp.location.removeprefix("header."), fp.pattern)
    for fp in _DB.fingerprints
    if fp.location.startswith("header.")
]
_NOISE = st.text(
    alphabet=st.sampled_from([*"aZ09_ -<>/.\"'\n\t", "é", "中", "\xa0", "\u2028", "\ufffd"]),
    max_size=20,
)


def _same(body: str, headers: list[tuple[str, str]], cc: str | None = None) -> None:
    transaction = HTTPTransaction(
        "http://x/", response_code=200, body=body, response_headers=headers
    )
    assert _DB.match_http(transaction, probe_cc=cc) == reference_match_http(_DB, transaction, cc)


@st.composite
def _piece(draw: st.DrawFn) -> str:
    """A pattern, a slice of one (a near miss, words cut in two), or one in another case."""
    text = draw(st.sampled_from(_BODY))
    how = draw(st.sampled_from(["whole", "slice", "upper", "lower", "noise"]))
    if how == "slice":
        start = draw(st.integers(0, len(text)))
        return text[start : draw(st.integers(start, len(text)))]
    if how == "upper":
        return text.upper()
    if how == "lower":
        return text.lower()
    if how == "noise":
        return draw(_NOISE)
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=st.lists(_piece(), min_size=1, max_size=5),
    glue=st.sampled_from(["", " ", "x", "_", "é", "<", "\n", "Blocked", "中"]),
    header=st.sampled_from(_HEADERS),
    cut=st.integers(0, 40),
    cc=st.sampled_from([None, "IR", "IT", "ZZ"]),
)
def test_generated_bodies_and_headers(pieces, glue, header, cut, cc) -> None:
    name, pattern = header
    headers = [("Server", "nginx"), (name.title(), pattern[: len(pattern) - cut] + glue)]
    _same(glue.join(pieces), headers, cc)


def test_every_pattern_alone_and_in_a_page() -> None:
    page = "<html><head><title>x</title></head><body>{}</body></html>"
    for pattern in _BODY:
        for body in (pattern, page.format(pattern), pattern[1:], pattern[:-1]):
            _same(body, [])
    for name, pattern in _HEADERS:
        _same("", [(name, pattern), (name.upper(), pattern + "/x"), (name, "x" + pattern)])


def test_huge_bodies() -> None:
    words = " ".join(f"w{i}q{i * 7}" for i in range(20_000))
    _same(words + " " + " ".join(_BODY[::50]), [])
    _same("y" * (2 << 20), [])


@pytest.mark.parametrize("body", fixture_bodies())
def test_fixture_bodies(body: str) -> None:
    _same(body, [("Server", "Protected by WireFilter 8000")])


#: Body patterns whose keys are start, end and inside marks of every length around the index's
#: prefix of start marks (3 characters): shorter, equal, longer, non-ASCII ones, one mark under
#: another's prefix, a mark that starts or ends mid-word.
_MARK_PATTERNS = [
    " a", " ab", " abc", " abcd", " abcé", " abd", " éab", " 中文x", " xé中", " é",
    "a ", "ab ", "cdab ", "éa ", "中 ", "b", "bé", "dab", "中文", "<abc", "ab<",
]  # fmt: skip
#: Regexps searched on every body (no word in their literal start), only on bodies that are not
#: ASCII (a non-ASCII literal start), or under a word after a plain "{".
_MARK_REGEXPS = ["(a)b", "—.*a", "©", "é.*a", '{"ab":.*b', "{a"]
_MARK_DB = FingerprintDB(
    Fingerprint(f"m{i}", "isp", "body", kind, pattern, frozenset(), f"t:{i}", re.compile(pattern))
    for i, (kind, pattern) in enumerate(
        [*(("contains", p) for p in _MARK_PATTERNS), *(("regexp", p) for p in _MARK_REGEXPS)]
    )
)


def test_mark_patterns_are_indexed_by_marks() -> None:
    index = _MARK_DB._body_index
    assert {"\nabc", "\nabcd", "\nabd", "\néab", "\n中文x"} <= {
        mark for marks in index._starts.values() for mark in marks
    }
    assert {"\na", "\nab", "a\n", "b", "中文"} <= set(index._marks)
    assert "中文" not in index._ascii_marks
    assert [e[1].pattern for e in index._not_ascii] == ["—.*a", "©"]
    assert [e[1].pattern for e in index._always] == ["(a)b"]
    assert index._by_word["ab"][0][1].pattern == '{"ab":.*b'


@settings(max_examples=500, deadline=None)
@given(body=st.text(alphabet=st.sampled_from([*'abcdxA _<\n{":', *"é中文—©"]), max_size=40))
def test_generated_bodies_with_mark_patterns(body: str) -> None:
    transaction = HTTPTransaction("http://x/", response_code=200, body=body)
    assert _MARK_DB.match_http(transaction) == reference_match_http(_MARK_DB, transaction)
