"""Fingerprint loading (bundled copies, users' extra files, bad input) and matching."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe.analysis.fingerprints import (
    HEADER,
    REGEX_INPUT_LIMIT,
    Fingerprint,
    FingerprintDB,
    body_keys,
    body_words,
    default_db,
    regex_literal_prefix,
    required_word,
)
from probe.cli import cli
from probe.observations import HTTPTransaction

CSV_HEADER = ",".join(HEADER) + "\n"
IRAN_BLOCKPAGE = (
    "<html><head><title>M1-6</title></head><body><iframe "
    'src="http://10.10.34.36/?type=Invalid Keyword&policy=MainPolicy " style="width: 100%"'
    "></iframe></body></html>"
)


def extra(tmp_path: Path, *rows: str, name: str = "extra.csv") -> Path:
    path = tmp_path / name
    path.write_text(CSV_HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def response(body: str = "", headers: tuple[tuple[str, str], ...] = (), code: int = 200):
    return HTTPTransaction(
        "http://example.org/", response_code=code, body=body, response_headers=list(headers)
    )


def test_bundled_files_load_cleanly() -> None:
    db = default_db()
    assert db is default_db()  # cached
    assert len(db) > 1900
    assert db.skipped == 0, db.warnings[:3]


@pytest.mark.parametrize(
    "ip,name",
    [
        ("10.10.34.34", "ooni.ir_4"),
        ("10.10.34.35", "ooni.ir_5"),
        ("10.10.34.36", "ooni.ir_10dot10_ipv4_1"),
        ("d0::11", "ooni.ir_ipv6_1"),
        ("d0:0:0:0:0:0:0:11", "ooni.ir_ipv6_1"),
        ("2001:4188:2:600:10:10:34:34", "probe.ir_ipv6_34"),
        ("2001:4188:2:600:10:10:34:35", "probe.ir_ipv6_35"),
        ("2001:4188:2:600:10:10:34:36", "probe.ir_ipv6_36"),
    ],
)
def test_iran_dns_injection_addresses_are_confirmed(ip: str, name: str) -> None:
    matches = default_db().match_dns(ip, probe_cc="IR")
    assert [(m.name, m.scope, m.location, m.confirmed) for m in matches] == [
        (name, "nat", "dns", True)
    ]
    # Iran's rows name Iran: seen from another country they are not proof (issue 13); with
    # the probe's country unknown they still are
    assert [m.confirmed for m in default_db().match_dns(ip, probe_cc="DE")] == [False]
    assert default_db().match_dns(ip, probe_cc="DE")[0].foreign
    for unknown in (None, "", "ZZ"):
        assert [m.confirmed for m in default_db().match_dns(ip, probe_cc=unknown)] == [True]


def test_ordinary_addresses_match_nothing() -> None:
    db = default_db()
    for ip in ("149.154.167.51", "2001:67c:4e8:f002::a", "93.184.216.34"):
        assert db.match_dns(ip) == []


def test_iran_blockpage_iframe() -> None:
    matches = default_db().match_http(response(IRAN_BLOCKPAGE, code=403), probe_cc="IR")
    names = {m.name for m in matches}
    assert {"cl.nat_ir_iframe_forward_ipv4", "probe.ir_iframe_10dot10"} <= names
    assert all(m.confirmed and not m.false_positive for m in matches)
    # seen from another country, no row of it confirms, not even those that name no country
    # (Censored Planet's cp.b_nat_ir_national_3): the other rows say the page is Iran's
    abroad = default_db().match_http(response(IRAN_BLOCKPAGE, code=403), probe_cc="IT")
    assert {m.name for m in abroad} == names
    assert not any(m.confirmed for m in abroad) and all(m.foreign for m in abroad)
    assert all(m.countries == frozenset({"IR"}) for m in abroad)
    # other quoting is still Iran's blockpage (the project's own regexp row)
    single = IRAN_BLOCKPAGE.replace('"http://10.10.34.36/?', "'http://10.10.34.34/?")
    assert "probe.ir_iframe_10dot10" in {m.name for m in default_db().match_http(response(single))}


def test_iran_destination_pages() -> None:
    names = {m.name for m in default_db().match_http(response("see https://peyvandha.ir/1-2.html"))}
    assert "ooni.ir_3" in names


def test_header_names_are_case_insensitive() -> None:
    matches = default_db().match_http(
        response(headers=(("SERVER", "Protected by WireFilter 8000"),))
    )
    assert [m.name for m in matches] == ["ooni.ae_0"]
    assert matches[0].location == "header.server"


def test_no_response_matches_nothing() -> None:
    failed = HTTPTransaction("http://x/", failure="connection_reset", body=IRAN_BLOCKPAGE)
    assert default_db().match_http(failed) == []


def test_each_pattern_type(tmp_path: Path) -> None:
    path = extra(
        tmp_path,
        "t.full,isp,,body,full,exactly this,5,,t,,",
        "t.prefix,isp,,header.location,prefix,http://blocked.example/,5,,t,,",
        "t.contains,isp,,body,contains,needle,5,,t,,",
        "t.regexp,isp,,body,regexp,blocked by rule [0-9]+,5,,t,,",
        "t.dns,isp,,dns,full,203.0.113.7,5,,t,,",
        "t.dnsprefix,isp,,dns,prefix,203.0.113.,5,,t,,",
    )
    db = FingerprintDB.load([path])

    def names(body: str = "", headers: tuple[tuple[str, str], ...] = ()) -> set[str]:
        return {m.name for m in db.match_http(response(body, headers)) if m.name.startswith("t.")}

    assert names("exactly this") == {"t.full"}
    assert names("exactly this and more") == set()
    assert names(headers=(("Location", "http://blocked.example/?u=1"),)) == {"t.prefix"}
    assert names(headers=(("Location", "https://ok.example/http://blocked.example/"),)) == set()
    assert names("a haystack with a needle in it") == {"t.contains"}
    assert names("this was blocked by rule 42 today") == {"t.regexp"}
    assert names("blocked by rule x") == set()
    assert {m.name for m in db.match_dns("203.0.113.7")} == {"t.dns", "t.dnsprefix"}
    assert {m.name for m in db.match_dns("203.0.113.8")} == {"t.dnsprefix"}


def test_confirmed_rules(tmp_path: Path) -> None:
    path = extra(
        tmp_path,
        "c.isp,isp,,body,contains,isp-page,5,,t,,",
        'c.prod,prod,,body,contains,product-page,5,"IR,TR",t,,',
        "c.fp,fp,,body,contains,lookalike-page,5,IR,t,,",
    )
    db = FingerprintDB.load([path])

    def match(body: str, cc: str | None):
        (found,) = [
            m for m in db.match_http(response(body), probe_cc=cc) if m.name.startswith("c.")
        ]
        return found

    assert match("isp-page", None).confirmed
    assert match("product-page", "ir").confirmed  # an expected country
    assert not match("product-page", "DE").confirmed
    assert not match("product-page", None).confirmed
    lookalike = match("lookalike-page", "IR")
    assert lookalike.false_positive and not lookalike.confirmed


def test_national_rows_confirm_only_in_their_countries(tmp_path: Path) -> None:
    """A nat/isp row that lists countries is proof only for a probe in one of them (or whose
    country is unknown); a row that lists none is proof anywhere."""
    path = extra(
        tmp_path,
        "n.nat_ir,nat,,body,contains,national-page,5,IR,t,,",
        "n.isp_any,isp,,body,contains,anywhere-page,5,,t,,",
    )
    db = FingerprintDB.load([path])

    def match(body: str, cc: str | None):
        (found,) = [
            m for m in db.match_http(response(body), probe_cc=cc) if m.name.startswith("n.")
        ]
        return found

    assert match("national-page", "IR").confirmed and not match("national-page", "IR").foreign
    foreign = match("national-page", "IT")
    assert not foreign.confirmed and foreign.foreign and foreign.countries == frozenset({"IR"})
    assert match("national-page", "ZZ").confirmed
    assert match("anywhere-page", "IT").confirmed and not match("anywhere-page", "IT").foreign


def test_bad_rows_are_skipped_with_a_counted_warning(tmp_path: Path) -> None:
    path = extra(
        tmp_path,
        "ok.1,isp,,body,contains,fine,5,,t,,",
        "bad.scope,planet,,body,contains,x,5,,t,,",
        "bad.type,isp,,body,glob,x*,5,,t,,",
        "bad.regexp,isp,,body,regexp,(unclosed,5,,t,,",
        "bad.nested,isp,,body,regexp,(a+)+$,5,,t,,",
        "bad.columns,isp,,body",
        "bad.location,isp,,cookie,contains,x,5,,t,,",
    )
    db = FingerprintDB.load([path])
    assert db.skipped == 6
    assert [w.split(": ")[0] for w in db.warnings] == [f"{path}:{n}" for n in range(3, 9)]
    assert "nested quantifier" in db.warnings[3]
    assert {m.name for m in db.match_http(response("fine"))} == {"ok.1"}


@pytest.mark.parametrize(
    "content,where,words",
    [
        ("name,scope\nx,isp\n", 1, "wrong header"),
        ("", 1, "empty file"),
        (b"\xff\xfe" + b"\x00" * 4, 1, "not UTF-8"),
    ],
)
def test_a_bad_extra_file_is_a_clear_error(tmp_path: Path, content, where: int, words: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ValueError) as info:
        FingerprintDB.load([path])
    assert str(info.value).startswith(f"{path}:{where}: ")
    assert words in str(info.value)


def test_a_missing_extra_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        FingerprintDB.load([tmp_path / "nope.csv"])


def test_cli_reports_a_bad_fingerprint_file_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("hello\n", encoding="utf-8")
    measurement = tmp_path / "m.json"
    measurement.write_text('{"test_name": "x", "test_keys": {}}\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["analyze", "--fingerprints", str(bad), str(measurement)])
    assert result.exit_code == 2
    assert f"{bad}:1: wrong header" in result.output
    assert "Traceback" not in result.output


def test_regexps_see_a_bounded_prefix_of_the_body(tmp_path: Path) -> None:
    """A hostile single-line body cannot make a `.*` pattern scan megabytes."""
    path = extra(tmp_path, "r.late,isp,,body,regexp,start.*finish,5,,t,,")
    db = FingerprintDB.load([path])
    near = "start" + "x" * 100 + "finish"
    far = "start" + "x" * REGEX_INPUT_LIMIT + "finish"
    assert "r.late" in {m.name for m in db.match_http(response(near))}
    assert "r.late" not in {m.name for m in db.match_http(response(far))}
    # a two-megabyte body still gets matched (literal patterns) and returns
    big = "y" * (2 << 20)
    assert [m for m in db.match_http(response(big)) if m.name.startswith("r.")] == []


# --- the body prefilter must never change a result -------------------------------------------


def _brute_force(db, body: str) -> list[str]:
    return [fp.name for fp in db._body if fp.matches(body)]


_BODY_PATTERNS = [fp.pattern for fp in default_db()._body if fp.pattern_type == "contains"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    picks=st.lists(st.sampled_from(_BODY_PATTERNS), max_size=3),
    noise=st.lists(st.text(max_size=40), max_size=4),
    glue=st.sampled_from(["", " ", "x", "<", "\n", "é"]),
)
def test_prefilter_gives_the_same_matches_as_checking_every_pattern(picks, noise, glue):
    db = default_db()
    body = glue.join([*noise[:2], *picks, *noise[2:]])
    transaction = HTTPTransaction(url="http://x/", response_code=200, body=body)
    got = [m.name for m in db.match_http(transaction) if m.location == "body"]
    assert got == _brute_force(db, body)


def test_required_words_come_from_the_pattern():
    db = default_db()
    keyed = [(fp, required_word(fp)) for fp in db._body]
    assert sum(word is not None for _, word in keyed) > 0.8 * len(keyed)  # the index is useful
    for fp, word in keyed:
        if word is not None:
            assert word in fp.pattern


# Every pattern type and every kind of key (whole word, start, end or part of a word): bodies
# made of whole patterns, slices of patterns (which cut words in two) and texts that match the
# bundled regexps, glued with word and non-word characters.
_ALL_BODY_PATTERNS = [fp.pattern for fp in default_db()._body]
_REGEX_EXAMPLES = [
    "URL abc Spxxer Gate",
    "You don't have permission to access /x on this server.<P>",
    '<iframe src="http://10.10.34.35/',
    "<title>Dx Marie Hooks-Hutto</title>",
    "Set-Cookie: a=b; domain=.example.org",
    "U.S. Army Command",
    "<br><br>Mon, 1 Jan 2024 10:00:00 +0300",
    '{"msg": "x", "id": 2}',
]


@st.composite
def _pattern_piece(draw) -> str:
    text = draw(st.sampled_from(_ALL_BODY_PATTERNS + _REGEX_EXAMPLES))
    if draw(st.booleans()):
        return text
    start = draw(st.integers(0, len(text)))
    return text[start : draw(st.integers(start, len(text)))]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=st.lists(_pattern_piece(), min_size=1, max_size=4),
    glue=st.sampled_from(["", " ", "x", "_", "1", "é", "<", "-", "\n", "Blocked"]),
    ends=st.sampled_from(["", "a", " ", "1"]),
)
def test_prefilter_is_exact_for_every_pattern_type_and_key_kind(pieces, glue, ends):
    db = default_db()
    body = ends + glue.join(pieces) + ends
    transaction = HTTPTransaction(url="http://x/", response_code=200, body=body)
    got = [m.name for m in db.match_http(transaction) if m.location == "body"]
    assert got == _brute_force(db, body)


def test_prefilter_is_exact_for_prefix_and_full_patterns(tmp_path: Path) -> None:
    path = extra(
        tmp_path,
        "x.prefix,isp,,body,prefix,Access denied by,5,,t,,",
        "x.full,isp,,body,full,<h1>Blocked</h1>,5,,t,,",
        "x.single,isp,,body,contains,zblockedz,5,,t,,",
    )
    db = FingerprintDB.load([path])
    bodies = [
        "Access denied by policy",
        "Access denied byx",  # the prefix's last word may run on
        "xAccess denied by",  # but not its first one: not a prefix of the body
        "<h1>Blocked</h1>",
        "<h1>Blocked</h1> ",
        "azblockedzz",
        "zblocked",
    ]
    for body in bodies:
        got = [m.name for m in db.match_http(response(body)) if m.location == "body"]
        assert got == _brute_force(db, body), body
    assert {m.name for m in db.match_http(response("Access denied byx"))} >= {"x.prefix"}
    assert "x.full" not in {m.name for m in db.match_http(response("<h1>Blocked</h1> "))}
    assert "x.single" in {m.name for m in db.match_http(response("azblockedzz"))}


@pytest.mark.parametrize(
    ("pattern", "prefix"),
    [
        ("URL .* Sp.*er Gate", "URL "),
        ("U\\.S\\..*Command", "U.S."),
        ("<iframe\\s+src", "<iframe"),
        ("abc*d", "ab"),  # a quantified character may be absent
        ("abc{2}", "ab"),
        ("ab?", "a"),
        ("a|b", ""),  # an alternation makes any prefix optional
        ("(ab)c", ""),
        ("^abc", ""),
        ("[ab]c", ""),
        ("\\(x\\)", "(x)"),
        ("ab\\", "ab"),
        ('{"msg":.*"id":', '{"msg":'),  # a "{" that starts no quantifier is a plain one
        ("{x}", "{x"),
        ("{1}x", ""),
        ("{,2}x", ""),
        ("{}x", ""),
        ("x{", ""),
    ],
)
def test_regex_literal_prefix(pattern: str, prefix: str) -> None:
    assert regex_literal_prefix(pattern) == prefix


def test_body_keys_kinds() -> None:
    def keys(pattern: str, pattern_type: str = "contains") -> set[tuple[str, str]]:
        fp = FingerprintDB(
            [Fingerprint("n", "isp", "body", pattern_type, pattern, frozenset(), "t:1")]
        )._body[0]
        return set(body_keys(fp))

    assert keys("Webpage Blocked") == {("end", "Webpage"), ("start", "Blocked")}
    assert keys("<b>Site blocked</b>") == {
        ("whole", "b"),
        ("whole", "Site"),
        ("whole", "blocked"),
    }
    assert keys("blokeret") == {("inside", "blokeret")}
    assert keys("Access denied", "prefix") == {("whole", "Access"), ("start", "denied")}
    assert keys("Access denied", "full") == {("whole", "Access"), ("whole", "denied")}
    assert keys("{}") == set()


_TRICKY_CHARACTERS = [
    *"abcXYZ09_ -<>.\t\n\x1c",
    *("é", "©", "—", "\xa0", "\u2028", "\u3000", "中", "文", "\x85", "\u00b2", "\u0660"),
    *("\u0301", "ß", "\u00ad", "\ufeff", "\ud800", "\U0001f600"),
]
_TRICKY_TEXT = st.text(alphabet=st.sampled_from(_TRICKY_CHARACTERS), max_size=30)
# Many distinct ASCII words around a little other text: the mostly-ASCII path of body_words.
_ASCII_FILLER = " ".join(f"w{i}" for i in range(400))


@settings(max_examples=200, deadline=None)
@given(text=_TRICKY_TEXT, glue=st.sampled_from(["", " ", "x", "é", "-"]))
def test_body_words_are_the_regex_words(text: str, glue: str) -> None:
    """Each path of body_words (all ASCII, mostly ASCII, mostly not) finds exactly the `\\w+`
    runs of the text."""
    import re

    for body in (
        text,
        text.encode("ascii", "ignore").decode(),
        _ASCII_FILLER + glue + text,
        text + glue + _ASCII_FILLER,
        _ASCII_FILLER + glue + text + glue + _ASCII_FILLER,
    ):
        assert body_words(body) == set(re.findall(r"\w+", body))
