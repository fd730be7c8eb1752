"""Citizen Lab test-list import: round trip, id scheme, the CSV's problems by line, fuzzing."""

from __future__ import annotations

import csv
import hashlib
import random
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.cli import main
from probe.targets import load_lists, parse_list_text
from probe.targets.citizenlab import (
    HEADER,
    citizenlab_target_id,
    convert_citizenlab_text,
    normalized_url,
)

SAMPLE = Path(__file__).parent / "data" / "targets" / "citizenlab-sample.csv"
HEADER_LINE = ",".join(HEADER) + "\n"


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 1), out, err


def sample_rows() -> list[dict[str, str]]:
    with SAMPLE.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_import_round_trip_keeps_every_url_and_category(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "ir.toml"
    code, out, err = run_cli(
        capsys, "targets", "import-citizenlab", str(SAMPLE), "-o", str(out_file)
    )
    rows = sample_rows()
    assert (code, out) == (0, "")
    assert err == f"{out_file}: {len(rows)} targets\n"
    loaded = load_lists([str(out_file)])
    assert loaded.problems == []
    (the_list,) = loaded.lists
    assert the_list.name == "citizenlab-sample"
    assert len(loaded.targets) == len(rows) == 14
    assert len({t.id for t in loaded.targets}) == len(rows)
    for row, target in zip(rows, loaded.targets, strict=True):
        assert target.url == row["url"]
        assert target.check == row["url"].split("://")[0]
        assert f"category:{row['category_code']}" in target.tags
        assert target.service == "web" and target.id.startswith("web/")
        assert target.note == (row["notes"] or None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ir.toml"]  # no temp file left
    code, _, _ = run_cli(capsys, "targets", "validate", str(out_file))
    assert code == 0


def test_stdout_output_is_deterministic_and_filters_categories(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["targets", "import-citizenlab", str(SAMPLE), "--updated", "2026-11-28"]
    _, first, _ = run_cli(capsys, *args)
    _, second, _ = run_cli(capsys, *args)
    assert first == second
    assert "updated = 2026-11-28\n" in first
    code, out, err = run_cli(
        capsys, *args, "--category", "COMT", "--category", "NEWS", "--service", "websites"
    )
    assert code == 0 and err == ""
    result = parse_list_text(out, "filtered.toml")
    assert result.problems == []
    wanted = [r["url"] for r in sample_rows() if r["category_code"] in ("COMT", "NEWS")]
    assert [t.url for t in result.targets] == wanted
    assert all(t.id.startswith("websites/") for t in result.targets)
    assert (
        'description = "Citizen Lab test list citizenlab-sample.csv (categories COMT, NEWS)"' in out
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://telegram.org/", "web/telegram.org"),
        ("https://telegram.org", "web/telegram.org"),
        ("HTTPS://Telegram.ORG:443/", "web/telegram.org"),
        ("http://www.balatarin.com/", "web/www.balatarin.com_http"),
        ("https://bücher.example/", "web/xn--bcher-kva.example"),
        ("http://192.0.2.7/", "web/192.0.2.7_http"),
    ],
)
def test_ids_of_front_pages(url: str, expected: str) -> None:
    assert citizenlab_target_id(url) == expected


@pytest.mark.parametrize(
    ("url", "readable"),
    [
        ("https://www.bbc.com/persian", "web/www.bbc.com_persian_"),
        ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", "web/www.youtube.com_watch-v-dqw4w9wgxcq_"),
        ("https://example.org:8443/", "web/example.org_"),
        ("http://[2001:db8::1]/x", "web/ipv6-2001-db8--1_x_"),
    ],
)
def test_ids_of_other_urls_carry_a_digest_of_the_normalized_url(url: str, readable: str) -> None:
    digest = hashlib.sha256(normalized_url(url).encode()).hexdigest()[:10]
    assert citizenlab_target_id(url) == readable + digest


def test_ids_do_not_depend_on_other_rows_or_their_order(capsys: pytest.CaptureFixture[str]) -> None:
    lines = SAMPLE.read_text().splitlines(keepends=True)
    body = lines[1:]
    random.Random(7).shuffle(body)
    full = convert_citizenlab_text("".join(lines), "a.csv")
    shuffled = convert_citizenlab_text(HEADER_LINE + "".join(body), "a.csv")
    fewer = convert_citizenlab_text(HEADER_LINE + "".join(body[:5]), "a.csv")
    ids: dict[str | None, str] = {}
    for result in (full, shuffled, fewer):
        assert result.problems == []
        for target in parse_list_text(result.text, "a.toml").targets:
            assert ids.setdefault(target.url, target.id) == target.id


ROW = "https://telegram.org/,COMT,Communication Tools,2017-09-26,citizenlab,\n"

# (case, CSV text, line, message)
BROKEN_CSVS = [
    ("empty file", "", 1, f'empty file (expected the header "{HEADER_LINE.strip()}")'),
    (
        "wrong header",
        "url,category,description,date,source,notes\n" + ROW,
        1,
        f'header must be "{HEADER_LINE.strip()}", not "url,category,description,date,source,notes"',
    ),
    (
        "five columns",
        HEADER_LINE + ROW + "https://t.me/,COMT,Communication Tools,2017-09-26,x\n",
        3,
        "expected 6 columns, found 5",
    ),
    (
        "url without scheme",
        HEADER_LINE + ROW.replace("https://telegram.org/", "www.example.com"),
        2,
        'url "www.example.com" must start with http:// or https://',
    ),
    (
        "ftp url",
        HEADER_LINE + ROW.replace("https://", "ftp://"),
        2,
        'url "ftp://telegram.org/" must start with http:// or https://',
    ),
    (
        "url with a bad host",
        HEADER_LINE + ROW.replace("telegram.org", "telegram..org"),
        2,
        'url host "telegram..org" is not a valid hostname (bad label "")',
    ),
    (
        "url with user info",
        HEADER_LINE + ROW.replace("https://", "https://me@"),
        2,
        'url "https://me@telegram.org/" must not contain user info',
    ),
    (
        "lower-case category",
        HEADER_LINE + ROW.replace("COMT", "comt"),
        2,
        'category code "comt" must be upper-case letters (e.g. COMT)',
    ),
    (
        "empty category description",
        HEADER_LINE + ROW.replace("Communication Tools", ""),
        2,
        "empty category description",
    ),
    (
        "date with slashes",
        HEADER_LINE + ROW.replace("2017-09-26", "2017/09/26"),
        2,
        'date_added "2017/09/26" must be a date as YYYY-MM-DD',
    ),
    (
        "impossible date",
        HEADER_LINE + ROW.replace("2017-09-26", "2017-02-30"),
        2,
        'date_added "2017-02-30" must be a date as YYYY-MM-DD',
    ),
    (
        "duplicate url",
        HEADER_LINE + ROW + ROW.replace("telegram.org", "Telegram.org"),
        3,
        'duplicate url "https://Telegram.org/" (first on line 2)',
    ),
    (
        "bad row after a multi-line note",
        HEADER_LINE + ROW.replace(",\n", ',"first line\nsecond line"\n') + ROW.replace("COMT", "?"),
        4,
        'category code "?" must be upper-case letters (e.g. COMT)',
    ),
    (
        "unclosed quote",
        HEADER_LINE + ROW + 'https://t.me/,COMT,"Communication Tools,2017\n',
        3,
        "invalid CSV: unexpected end of data",
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [case[1:] for case in BROKEN_CSVS],
    ids=[case[0] for case in BROKEN_CSVS],
)
def test_broken_csv_gives_exact_problem_and_writes_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    line: int,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "ir.csv"
    source.write_text(text, encoding="utf-8")
    existing = tmp_path / "existing.toml"
    existing.write_text("# an earlier import\n")
    before = sorted(tmp_path.iterdir())

    code, out, err = run_cli(
        capsys, "targets", "import-citizenlab", str(source), "-o", str(existing)
    )

    assert code == 2 and out == ""
    assert err.splitlines() == [
        f"{source}:{line}: {message}",
        f"probe: error: 1 problem in {source}; nothing written",
    ]
    assert sorted(tmp_path.iterdir()) == before
    assert existing.read_text() == "# an earlier import\n"


def test_every_csv_problem_is_reported(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    source = tmp_path / "bad.csv"
    source.write_text(
        HEADER_LINE
        + ROW.replace("COMT", "comt")
        + ROW.replace("2017-09-26", "yesterday").replace("telegram.org", "t.me")
        + ROW
        + ROW
    )
    code, out, err = run_cli(capsys, "targets", "import-citizenlab", str(source))
    assert code == 2 and out == ""
    assert err.splitlines() == [
        f'{source}:2: category code "comt" must be upper-case letters (e.g. COMT)',
        f'{source}:3: date_added "yesterday" must be a date as YYYY-MM-DD',
        f'{source}:5: duplicate url "https://telegram.org/" (first on line 4)',
        f"probe: error: 3 problems in {source}; nothing written",
    ]


def test_bad_options_and_empty_selection(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "targets", "import-citizenlab", str(SAMPLE), "--category", "x")
    assert code == 2
    assert err.splitlines()[0] == f'{SAMPLE}:1: --category "x" is not a category code (e.g. COMT)'
    code, _, err = run_cli(
        capsys, "targets", "import-citizenlab", str(SAMPLE), "--category", "PORN"
    )
    assert code == 2
    assert err.splitlines()[0] == f"{SAMPLE}:1: no rows in categories PORN: nothing to import"
    code, _, err = run_cli(capsys, "targets", "import-citizenlab", str(SAMPLE), "--updated", "x")
    assert (code, err) == (2, "probe: error: --updated x: not a date (YYYY-MM-DD)\n")
    code, _, err = run_cli(capsys, "targets", "import-citizenlab", "/nonexistent/ir.csv")
    assert code == 2
    assert err.splitlines()[0] == "/nonexistent/ir.csv:1: cannot read: No such file or directory"


# --- fuzzing ---------------------------------------------------------------------------------

LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
HOST = st.lists(LABEL, min_size=1, max_size=3).map(lambda labels: ".".join([*labels, "org"]))
URL = st.builds(
    lambda scheme, host, port, path, query: f"{scheme}://{host}{port}{path}{query}",
    st.sampled_from(["http", "https", "HTTPS"]),
    HOST,
    st.sampled_from(["", ":443", ":80", ":8080"]),
    st.sampled_from(["", "/"])
    | st.from_regex(r"(/[A-Za-z0-9._~%!$&'()*+;=:@-]{0,12}){1,3}", fullmatch=True),
    st.sampled_from(["", "?q=1", "?Q=1", "?a=b&c=d"]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(URL, min_size=1, max_size=12))
def test_fuzz_generated_urls_give_valid_distinct_ids(urls: list[str]) -> None:
    distinct: dict[str, str] = {}
    for url in urls:
        distinct.setdefault(normalized_url(url), url)
    text = HEADER_LINE + "".join(
        f"{url},NEWS,News Media,2020-01-01,test,\n" for url in distinct.values()
    )
    result = convert_citizenlab_text(text, "gen.csv", updated=None)
    assert result.problems == []
    loaded = parse_list_text(result.text, "gen.toml")
    assert loaded.problems == []
    assert [t.url for t in loaded.targets] == list(distinct.values())


PROBLEM = re.compile(r"fuzz\.csv:\d+: \S")


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from([*',"\n\r :/.aZ09-', "https://", "COMT"]), max_size=150).map("".join)
)
def test_fuzz_any_csv_text_gives_problems_or_a_valid_list(text: str) -> None:
    result = convert_citizenlab_text(HEADER_LINE + text, "fuzz.csv")
    for problem in result.problems:
        assert PROBLEM.match(problem) and "\n" not in problem, problem
    if not result.problems:
        assert parse_list_text(result.text, "fuzz.toml").problems == []
