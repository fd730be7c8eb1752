"""Target lists: exact `file:line: message` problems, bundled lists, packaging, fuzzing."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe.cli import main
from probe.targets import (
    CHECKS,
    TARGET_KEYS,
    LoadResult,
    Target,
    _PositionScanner,
    bundled_list_dir,
    bundled_list_paths,
    host_problem,
    load_lists,
    parse_list_text,
    url_problem,
    validate_paths,
)
from probe.targets.toml_out import toml_string

REPO = Path(__file__).resolve().parent.parent
HEAD = '[list]\nname = "t"\nupdated = 2026-11-28\n'


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 1), out, err


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in directory.rglob("*")
    }


def target(body: str, **extra: Any) -> str:
    return HEAD + "\n[[targets]]\n" + body


MTPROTO = 'id = "telegram/dc2"\nservice = "telegram"\ncheck = "mtproto"\nhost = "149.154.167.51"\n'
HTTPS = 'id = "telegram/web"\nservice = "telegram"\ncheck = "https"\n'

# (case name, list text, line, message). The header is lines 1-3, [[targets]] is line 5.
BROKEN_LISTS = [
    (
        "unknown target key",
        target(MTPROTO + "prots = [443]\n"),
        10,
        'unknown key "prots" in [[targets]] (did you mean "ports"?)',
    ),
    (
        "unknown list key",
        HEAD.replace("updated", 'colour = "red"\nupdated') + "\n[[targets]]\n" + MTPROTO,
        3,
        'unknown key "colour" in [list]',
    ),
    (
        "unknown top-level key",
        "version = 2\n" + target(MTPROTO),
        1,
        'unknown key "version" at top level (expected [list] and [[targets]])',
    ),
    (
        "ports not an array",
        target(MTPROTO + 'ports = "443"\n'),
        10,
        '"ports" must be an array of integers, not a string',
    ),
    (
        "port of the wrong type",
        target(MTPROTO + "ports = [\n  443,\n  true,\n]\n"),
        12,
        '"ports" must be an array of integers, but item 2 is a boolean',
    ),
    (
        "port out of range",
        target(MTPROTO + "ports = [\n  443,\n  70000,\n]\n"),
        12,
        "port 70000 out of range 1..65535",
    ),
    ("port zero", target(MTPROTO + "ports = [0]\n"), 10, "port 0 out of range 1..65535"),
    ("duplicate port", target(MTPROTO + "ports = [443, 80, 443]\n"), 10, "duplicate port 443"),
    ("missing id", target(MTPROTO.split("\n", 1)[1]), 5, 'missing required key "id"'),
    (
        "missing host",
        target(MTPROTO.rsplit("host", 1)[0]),
        5,
        'missing required key "host" for check "mtproto"',
    ),
    (
        "tcp without ports",
        target(MTPROTO.replace('"mtproto"', '"tcp"')),
        5,
        'missing required key "ports" for check "tcp"',
    ),
    (
        "id without service",
        target(MTPROTO.replace('"telegram/dc2"', '"dc2"')),
        6,
        'id "dc2" must be "service/name"',
    ),
    (
        "id prefix is not the service",
        target(MTPROTO.replace('"telegram/dc2"', '"tg/dc2"')),
        6,
        'id "tg/dc2" must start with its service "telegram/"',
    ),
    (
        "id name with capitals",
        target(MTPROTO.replace("telegram/dc2", "telegram/DC2")),
        6,
        'id "telegram/DC2": the name after "/" must match [a-z0-9][a-z0-9._-]*',
    ),
    (
        "duplicate id",
        target(MTPROTO) + "\n[[targets]]\n" + MTPROTO.replace("51", "52"),
        12,
        'duplicate id "telegram/dc2" (first at {path}:6)',
    ),
    (
        "unknown check",
        target(MTPROTO.replace('"mtproto"', '"ftp"')),
        8,
        'check "ftp" is not one of dns, tcp, tls, http, https, mtproto',
    ),
    (
        "url on a host check",
        target(MTPROTO + 'url = "https://t.me/"\n'),
        10,
        '"url" is not allowed for check "mtproto" (use "host")',
    ),
    (
        "host on a url check",
        target(HTTPS + 'url = "https://t.me/"\nhost = "t.me"\n'),
        10,
        '"host" is not allowed for check "https" (use "url")',
    ),
    (
        "bad IPv4 literal",
        target(MTPROTO.replace("149.154.167.51", "999.1.1.1")),
        9,
        'host "999.1.1.1" is not a valid IPv4 address',
    ),
    (
        "bracketed IPv6",
        target(MTPROTO.replace("149.154.167.51", "[2001:db8::1]")),
        9,
        'host "[2001:db8::1]" is not a valid address (write IPv6 addresses without brackets)',
    ),
    (
        "bad IPv6",
        target(MTPROTO.replace("149.154.167.51", "2001:db8:::1")),
        9,
        'host "2001:db8:::1" is not a valid IPv6 address',
    ),
    (
        "bad hostname",
        target(MTPROTO.replace("149.154.167.51", "-dc.telegram.org")),
        9,
        'host "-dc.telegram.org" is not a valid hostname (bad label "-dc")',
    ),
    (
        "url scheme is not the check",
        target(HTTPS + 'url = "http://t.me/"\n'),
        9,
        'url scheme "http" does not match check "https"',
    ),
    (
        "url with user info",
        target(HTTPS + 'url = "https://me@t.me/"\n'),
        9,
        'url "https://me@t.me/" must not contain user info',
    ),
    (
        "url with a bad port",
        target(HTTPS + 'url = "https://t.me:99999/"\n'),
        9,
        'url "https://t.me:99999/" has an invalid port',
    ),
    (
        "url without host",
        target(HTTPS + 'url = "https:///path"\n'),
        9,
        'url "https:///path" has no host',
    ),
    (
        "ports with a url",
        target(HTTPS + 'url = "https://t.me/"\nports = [443]\n'),
        10,
        '"ports" is not allowed for check "https" (the port comes from the url)',
    ),
    (
        "tls to an IP without sni",
        target(MTPROTO.replace('"mtproto"', '"tls"')),
        9,
        'check "tls" with an IP address host needs "sni"',
    ),
    (
        "sni is an IP",
        target(MTPROTO.replace('"mtproto"', '"tls"') + 'sni = "1.2.3.4"\n'),
        10,
        'sni "1.2.3.4" must be a hostname, not an IP address',
    ),
    (
        "AS number zero",
        target(MTPROTO + "expect_asn = [62041, 0]\n"),
        10,
        "AS number 0 is not a valid AS number",
    ),
    (
        "unknown transport",
        target(MTPROTO + 'transports = ["obfuscated2", "obfs4"]\n'),
        10,
        'unknown transport "obfs4" '
        "(known: abridged, intermediate, padded_intermediate, obfuscated2)",
    ),
    (
        "empty transports",
        target(MTPROTO + "transports = []\n"),
        10,
        '"transports" must not be empty',
    ),
    (
        "transports on tcp",
        target(
            MTPROTO.replace('"mtproto"', '"tcp"') + 'ports = [443]\ntransports = ["abridged"]\n'
        ),
        11,
        '"transports" is not allowed for check "tcp"',
    ),
    (
        "ca file missing",
        target(HTTPS + 'url = "https://t.me/"\nca = "roots.pem"\n'),
        10,
        'ca file "roots.pem" not found ({dir}/roots.pem)',
    ),
    (
        "ca file is not PEM",
        target(HTTPS + 'url = "https://t.me/"\nca = "notes.txt"\n'),
        10,
        'ca file "notes.txt" contains no PEM certificate',
    ),
    (
        "ca certificate does not parse",
        target(HTTPS + 'url = "https://t.me/"\nca = "broken.pem"\n'),
        10,
        'ca file "broken.pem": certificate 1 does not parse',
    ),
    (
        "updated is a string",
        HEAD.replace("2026-11-28", '"2026-11-28"') + "\n[[targets]]\n" + MTPROTO,
        3,
        '"updated" must be a TOML date (YYYY-MM-DD, no quotes), not a string',
    ),
    (
        "updated is a date-time",
        HEAD.replace("2026-11-28", "2026-11-28T10:00:00") + "\n[[targets]]\n" + MTPROTO,
        3,
        '"updated" must be a TOML date (YYYY-MM-DD, no quotes), not a date-time',
    ),
    (
        "list without name",
        HEAD.replace('name = "t"\n', "") + "\n[[targets]]\n" + MTPROTO,
        1,
        'missing required key "name" in [list]',
    ),
    ("no [list] at all", "[[targets]]\n" + MTPROTO, 1, "missing [list] table"),
    ("no targets", HEAD, 1, "no [[targets]] in this list"),
    (
        "target as a plain table",
        HEAD + "[targets]\nid = 1\n",
        4,
        '"targets" must be an array of tables ([[targets]]), not a table',
    ),
    (
        "TOML syntax error",
        target(MTPROTO.replace('"149.154.167.51"', "149.154.167.51")),
        9,
        "invalid TOML: Expected newline or end of document after a statement (column 15)",
    ),
    (
        "duplicate key",
        target(MTPROTO + 'id = "telegram/dc3"\n'),
        10,
        "invalid TOML: Cannot overwrite a value (column 20)",
    ),
    (
        "service with capitals",
        target(MTPROTO.replace('service = "telegram"', 'service = "TG"')),
        7,
        'service "TG" must match [a-z0-9][a-z0-9_-]*',
    ),
    ("dc as a string", target(MTPROTO + 'dc = "2"\n'), 10, '"dc" must be an integer, not a string'),
    (
        "dc as a boolean",
        target(MTPROTO + "dc = true\n"),
        10,
        '"dc" must be an integer, not a boolean',
    ),
    ("dc zero", target(MTPROTO + "dc = 0\n"), 10, "dc 0 is not a DC id (-32768..32767, not 0)"),
    (
        "dc beyond 16 bits",
        target(MTPROTO + "dc = 40000\n"),
        10,
        "dc 40000 is not a DC id (-32768..32767, not 0)",
    ),
    (
        "dc on https",
        target(HTTPS + 'url = "https://t.me/"\ndc = 2\n'),
        10,
        '"dc" is not allowed for check "https" (only mtproto talks to a DC)',
    ),
]


def test_dc_key_loads_for_mtproto_targets() -> None:
    """`dc`: the DC id an obfuscated2 header carries (negative for media-only DCs)."""
    text = (
        target(MTPROTO + "dc = 2\n")
        + '\n[[targets]]\nid = "telegram/media-dc4"\nservice = "telegram"\ncheck = "mtproto"\n'
        'host = "149.154.164.250"\ndc = -4\n'
        '\n[[targets]]\nid = "telegram/dc9"\nservice = "telegram"\ncheck = "mtproto"\n'
        'host = "149.154.175.50"\n'
    )
    result = parse_list_text(text, "dc.toml")
    assert result.problems == []
    assert [t.dc for t in result.targets] == [2, -4, None]
    assert result.targets[1].table_as_written()["dc"] == -4


def test_a_table_its_fields_give_back_is_not_kept_twice_and_records_are_unchanged() -> None:
    """A loaded target keeps no copy of its table when its fields write the same table back
    (the common case: memory for lists of 100,000 targets). Any other table — keys in another
    order, a default written out, an int where a list was meant — is kept as written, and
    what a record carries is always the table as written."""
    tables = {
        "plain": 'id = "telegram/web"\nservice = "telegram"\ncheck = "https"\n'
        'url = "https://web.telegram.org/"\ntags = ["app:web"]\n',
        "reordered": 'service = "telegram"\nid = "telegram/web"\ncheck = "https"\n'
        'url = "https://web.telegram.org/"\n',
        "transports": MTPROTO + 'transports = ["abridged"]\n',
        "note last": MTPROTO + 'note = "a DC"\n',
        "ports first": 'ports = [443]\nid = "t/x"\nservice = "t"\ncheck = "tcp"\n'
        'host = "198.18.0.1"\n',
    }
    for case, body in tables.items():
        result = parse_list_text(target(body), "t.toml")
        assert result.problems == [], case
        [loaded] = result.targets
        as_written = tomllib.loads(target(body))["targets"][0]
        assert loaded.table_as_written() == as_written, case
        assert list(loaded.table_as_written()) == list(as_written), case  # the order too
        assert loaded.to_wire() == as_written, case
    plain = parse_list_text(target(tables["plain"]), "t.toml").targets[0]
    assert plain.definition is None
    reordered = parse_list_text(target(tables["reordered"]), "t.toml").targets[0]
    assert reordered.definition is not None


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [case[1:] for case in BROKEN_LISTS],
    ids=[case[0] for case in BROKEN_LISTS],
)
def test_broken_list_gives_exact_problem_and_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    line: int,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("these are not certificates\n")
    (tmp_path / "broken.pem").write_text(
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
    )
    path = tmp_path / "list.toml"
    path.write_text(text)
    before = snapshot(tmp_path)

    code, out, err = run_cli(capsys, "targets", "validate", str(path))

    expected = f"{path}:{line}: " + message.format(path=path, dir=tmp_path)
    lines = err.splitlines()
    assert code == 2
    assert out == ""
    assert len(lines) == 2, err
    if message.endswith("does not parse"):  # the parser's own reason follows
        assert lines[0].startswith(expected + " (")
    else:
        assert lines[0] == expected
    assert lines[1] == "probe: error: 1 problem in the target lists"
    assert snapshot(tmp_path) == before


def test_every_problem_of_every_file_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = tmp_path / "a.toml"
    first.write_text(
        HEAD + "owner = 1\n\n[[targets]]\n" + MTPROTO + "ports = [1, 0]\n"
        "\n[[targets]]\n" + HTTPS + 'url = "ftp://t.me/"\n'
    )
    second = tmp_path / "b.toml"
    second.write_text(
        HEAD.replace('"t"', '"u"') + "\n[[targets]]\n" + MTPROTO + "\n[[targets]]\n"
        'id = "web/x"\nservice = "web"\ncheck = "dns"\n'
    )
    code, out, err = run_cli(capsys, "targets", "validate", str(tmp_path))
    assert code == 2 and out == ""
    assert err.splitlines() == [
        f'{first}:4: unknown key "owner" in [list]',
        f"{first}:11: port 0 out of range 1..65535",
        f'{first}:17: url scheme "ftp" does not match check "https"',
        f'{second}:6: duplicate id "telegram/dc2" (first at {first}:7)',
        f'{second}:11: missing required key "host" for check "dns"',
        "probe: error: 5 problems in the target lists",
    ]


def test_missing_path_and_empty_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = tmp_path / "missing.toml"
    code, _, err = run_cli(capsys, "targets", "validate", str(missing), str(empty))
    assert code == 2
    assert err.splitlines()[:2] == [
        f"{missing}:1: no such file or directory",
        f"{empty}:1: no *.toml target lists in this directory",
    ]


def test_not_utf8_and_too_large(tmp_path: Path) -> None:
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'[list]\nname = "t"\ndescription = "caf\xe9"\n')
    huge = tmp_path / "huge.toml"
    huge.write_bytes(b"# " + b"x" * (1024 * 1024) + b"\n")
    assert validate_paths([str(latin), str(huge)]) == [
        f"{latin}:3: not UTF-8 text (byte 37)",
        f"{huge}:1: file too large (over 1048576 bytes): is this a target list?",
    ]


def test_valid_list_loads_into_targets(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "roots.pem"))
    text = (
        '[list]\nname = "lab"\ndescription = "a test list"\nupdated = 2026-11-28\n\n'
        "[[targets]]\n" + MTPROTO + 'transports = ["abridged"]\ntags = ["dc"]\n\n'
        '[[targets]]\nid = "lab/tls"\nservice = "lab"\ncheck = "tls"\nhost = "198.18.0.5"\n'
        'sni = "example.org"\nca = "roots.pem"\nnote = "lab host"\n\n'
        '[[targets]]\nid = "baseline/one"\nservice = "baseline"\ncheck = "https"\n'
        'url = "https://[2001:db8::1]:8443/x?y=1"\nexpect_asn = [64496]\n\n'
        '[[targets]]\nid = "lab/name"\nservice = "lab"\ncheck = "dns"\nhost = "bücher.example"\n'
    )
    path = tmp_path / "lab.toml"
    path.write_text(text, encoding="utf-8")
    result = load_lists([str(path)])
    assert result.problems == [] and result.ok
    (the_list,) = result.lists
    assert the_list.name == "lab" and the_list.updated == date(2026, 11, 28)
    assert the_list.description == "a test list"
    assert the_list.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert the_list.provenance()["sha256"] == the_list.sha256
    dc2, tls, baseline, name = result.targets
    assert dc2 == Target(
        id="telegram/dc2",
        service="telegram",
        check="mtproto",
        host="149.154.167.51",
        ports=(443,),
        transports=("abridged",),
        tags=("dc",),
        list_name="lab",
    )
    assert dc2.table_as_written()["transports"] == ["abridged"]
    assert tls.ca == str((tmp_path / "roots.pem").resolve()) and Path(tls.ca).is_absolute()
    assert tls.ports == (443,) and tls.sni == "example.org" and tls.transports == ()
    assert baseline.is_baseline and baseline.endpoint_ports() == (8443,)
    assert baseline.hostname == "2001:db8::1" and baseline.expect_asn == (64496,)
    assert name.hostname == "bücher.example" and name.ports == ()
    for item in result.targets:
        assert json.loads(json.dumps(item.table_as_written())) == item.table_as_written()


def test_positions_follow_the_source_layout() -> None:
    """Inline tables, quoted keys, strings and comments that look like headers, CRLF."""
    text = (
        "# [[targets]] in a comment is not a table\n"
        "targets = [\n"
        '  { id = "a/one", service = "a", check = "dns", host = "one.example", colour = 1 },\n'
        '  { "id" = "a/two", service = "a", check = "tcp", host = "two.example", ports = [0] },\n'
        '  { id = "a/three", service = "a", check = "tcp", host = "x", ports = [1, 2, 99999] },\n'
        "]\n"
        '[list]\nname = "t"\nupdated = 2026-11-28\n'
        'description = """\n[[targets]]\nid = "x/y"\n"""\n'
        "last = 1\n"
    ).replace("\n", "\r\n")
    assert parse_list_text(text, "inline.toml").problems == [
        'inline.toml:3: unknown key "colour" in [[targets]]',
        "inline.toml:4: port 0 out of range 1..65535",
        "inline.toml:5: port 99999 out of range 1..65535",
        'inline.toml:14: unknown key "last" in [list]',
    ]


def test_problems_in_dotted_and_quoted_keys() -> None:
    text = HEAD + '\n[[targets]]\n"id" = "a/b"\nservice = "a"\ncheck = "dns"\nhost.name = "x"\n'
    assert parse_list_text(text, "d.toml").problems == [
        'd.toml:9: "host" must be a string, not a table',
        # the check that needs a string host never sees one, so nothing else is reported
    ]
    text = HEAD + '\n[[targets]]\nid = "a/b"\nservice = "a"\ncheck = "dns"\nhost = "a.b"\n'
    text += "[targets.extra]\nkey = 1\n"
    assert parse_list_text(text, "s.toml").problems == [
        's.toml:10: unknown key "extra" in [[targets]]'
    ]


# --- host and URL rules, in isolation ------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "149.154.167.51",
        "2001:67c:4e8:f002::a",
        "::1",
        "e1.whatsapp.net",
        "t.me",
        "xn--bcher-kva.example",
        "bücher.example",
        "a-b.c0.example",
        "localhost",
    ],
)
def test_good_hosts(host: str) -> None:
    assert host_problem(host) is None


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        ("", "is empty"),
        ("999.1.1.1", "is not a valid IPv4 address"),
        ("1.2.3", "is not a valid IPv4 address"),
        ("01.2.3.4", "is not a valid IPv4 address"),
        ("[::1]", "is not a valid address (write IPv6 addresses without brackets)"),
        ("fe80::1%eth0", "is not a valid IPv6 address (zone ids are not allowed)"),
        ("2001:db8::g", "is not a valid IPv6 address"),
        ("a..b", 'is not a valid hostname (bad label "")'),
        ("a_b.example", 'is not a valid hostname (bad label "a_b")'),
        ("example.com.", 'is not a valid hostname (no trailing ".")'),
        ("x" * 64 + ".example", f'is not a valid hostname (bad label "{"x" * 64}")'),
        ("a b.example", "contains whitespace or control characters"),
        ("host:443", "is not a valid IPv6 address"),
    ],
)
def test_bad_hosts(host: str, problem: str) -> None:
    assert host_problem(host) == problem


@pytest.mark.parametrize(
    ("url", "check", "problem"),
    [
        ("https://web.telegram.org/", "https", None),
        ("http://[2001:db8::1]:8080/a?b#c", "http", None),
        ("https://t.me", "https", None),
        ("https://t.me/", "http", 'url scheme "https" does not match check "http"'),
        ("https://t.me:0/", "https", 'url "https://t.me:0/" has an invalid port'),
        ("https://t.me:/", "https", 'url "https://t.me:/" has an empty port'),
        (
            "https://[2001:db8::1/",
            "https",
            'url "https://[2001:db8::1/" is not a valid URL (bad host)',
        ),
        ("https://2001:db8::1/", "https", 'url "https://2001:db8::1/" has an invalid port'),
        (
            "https://t .me/",
            "https",
            'url "https://t .me/" contains whitespace or control characters',
        ),
        ("https:t.me", "https", 'url "https:t.me" must start with "https://"'),
        ("https://300.1.1.1/", "https", 'url host "300.1.1.1" is not a valid IPv4 address'),
    ],
)
def test_url_rules(url: str, check: str, problem: str | None) -> None:
    assert url_problem(url, check) == problem


# --- bundled lists ---------------------------------------------------------------------------


def test_bundled_lists_validate_and_hold_the_facts() -> None:
    paths = bundled_list_paths()
    assert [Path(p).name for p in paths] == [
        "baseline.toml",
        "facebook_messenger.toml",
        "signal.toml",
        "telegram.toml",
        "whatsapp.toml",
    ]
    result = load_lists(paths)
    assert result.problems == []
    by_id = {t.id: t for t in result.targets}
    assert len(by_id) == len(result.targets)
    updated = {t.name: t.updated for t in result.lists}
    assert updated == {
        "baseline": date(2026, 11, 28),
        "facebook_messenger": date(2026, 12, 5),
        "signal": date(2026, 12, 5),
        "telegram": date(2026, 12, 5),
        "whatsapp": date(2026, 12, 5),
    }
    # (address, DC id for the obfuscated2 header); TDLib's get_default_dc_options and Telegram
    # Desktop's kBuiltInDcs both list 95.161.76.100 as DC2.
    dcs = {
        "telegram/dc1": ("149.154.175.50", 1),
        "telegram/dc2": ("149.154.167.51", 2),
        "telegram/dc3": ("149.154.175.100", 3),
        "telegram/dc4": ("149.154.167.91", 4),
        "telegram/dc5": ("149.154.171.5", 5),
        "telegram/dc-95-161-76-100": ("95.161.76.100", 2),
    }
    for target_id, (ip, dc) in dcs.items():
        assert (by_id[target_id].check, by_id[target_id].host) == ("mtproto", ip)
        assert by_id[target_id].ports == (443, 80, 5222) and by_id[target_id].dc == dc
        assert "TDLib" in (by_id[target_id].note or "")  # the source of the ports
    # what each app needs to work (the summary's "usable?")
    app = {t.id: [g for g in t.tags if g.startswith("app:")] for t in result.targets}
    assert all(app[f"telegram/dc{n}"] == ["app:dc"] for n in range(1, 6))
    assert all(app[f"whatsapp/e{n}"] == ["app:chat"] for n in range(1, 17))
    assert app["signal/chat"] == ["app:chat"] and app["signal/cdsi"] == []
    assert app["telegram/web"] == [] and app["telegram/media-dc2"] == []
    for n in range(1, 6):
        assert by_id[f"telegram/dc{n}-v6"].check == "mtproto"
        assert ":" in (by_id[f"telegram/dc{n}-v6"].host or "")
        assert by_id[f"telegram/dc{n}-v6"].dc == n
    assert by_id["telegram/media-dc2-v6"].host == "2001:67c:4e8:f002::b"
    # media-only DCs go by their negated id (TDLib ConnectionCreator::get_transport_type)
    assert [by_id[f"telegram/media-dc{n}"].dc for n in (2, 4)] == [-2, -4]
    assert (by_id["telegram/cdn-dc203"].host, by_id["telegram/cdn-dc203"].dc) == (
        "91.105.192.100",
        203,
    )
    assert by_id["telegram/cdn-dc203-v6"].host == "2a0a:f280:203:a:5000::100"
    assert {by_id[i].url for i in ("telegram/web", "telegram/telegram.org", "telegram/t.me")} == {
        "https://web.telegram.org/",
        "https://telegram.org/",
        "https://t.me/",
    }
    planets = ("pluto", "venus", "aurora", "vesta", "flora")
    for n, planet in enumerate(planets, start=1):
        ws = by_id[f"telegram/ws-dc{n}"]
        assert (ws.check, ws.url) == ("https", f"https://{planet}.web.telegram.org/apiws")
    for n in range(1, 17):
        e = by_id[f"whatsapp/e{n}"]
        assert (e.check, e.host, e.ports) == ("tcp", f"e{n}.whatsapp.net", (443, 5222))
        assert "OONI" in (e.note or "")  # the source of the ports
    assert by_id["whatsapp/registration"].url == "https://v.whatsapp.net/v2/register"
    assert (by_id["whatsapp/media"].check, by_id["whatsapp/media"].url) == (
        "https",
        "https://mmg.whatsapp.net/",
    )
    # Every Telegram endpoint says where its address and port come from.
    for t in result.targets:
        if t.service == "telegram" and t.check == "mtproto":
            assert t.note and "443" in t.note, t.id
    signal_roots = str((Path(bundled_list_dir()) / "signal-roots.pem").resolve())
    for name in ("cdsi", "chat", "sfu", "storage"):
        assert by_id[f"signal/{name}"].check == "https"
        assert by_id[f"signal/{name}"].ca == signal_roots
    assert by_id["signal/uptime"].check == "dns"
    messenger = [t for t in result.targets if t.service == "facebook_messenger"]
    assert len(messenger) == 7 and all(t.expect_asn == (32934,) for t in messenger)
    baseline = [t for t in result.targets if t.is_baseline]
    assert len(baseline) >= 3 and all(t.check == "https" for t in baseline)
    assert all(t.list_name == "baseline" for t in baseline)


def test_cli_validates_the_bundled_directory(capsys: pytest.CaptureFixture[str]) -> None:
    count = len(load_lists(bundled_list_paths()).targets)
    code, out, err = run_cli(capsys, "targets", "validate", str(REPO / "targets"))
    assert (code, out, err) == (0, f"5 lists, {count} targets: ok\n", "")


def test_cli_lists_every_bundled_target(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "targets", "list")
    assert code == 0 and err == ""
    lines = out.splitlines()
    targets = load_lists(bundled_list_paths()).targets
    assert len(lines) == len(targets)
    for line, t in zip(lines, targets, strict=True):
        assert line.split()[:2] == [t.id, t.check]
    assert any(
        line.split() == ["telegram/dc2-v6", "mtproto", "[2001:67c:4e8:f002::a]:443"]
        for line in lines
    )
    assert any(
        line.split()
        == [
            "telegram/dc2",
            "mtproto",
            "149.154.167.51:443",
            "149.154.167.51:80",
            "149.154.167.51:5222",
        ]
        for line in lines
    )


def _fingerprint_comments(text: str) -> list[tuple[str, str, str]]:
    """(valid from, valid until, SHA-256) as written in the PEM file's comments."""
    dates = re.findall(r"valid (\d{4}-\d{2}-\d{2}) to (\d{4}-\d{2}-\d{2})", text)
    prints = re.findall(r"SHA-256 ([0-9A-F:]{95})", text)
    return [(a, b, p) for (a, b), p in zip(dates, prints, strict=True)]


def test_signal_roots_match_their_fingerprints_and_dates() -> None:
    pem = Path(bundled_list_dir()) / "signal-roots.pem"
    text = pem.read_text()
    certificates = x509.load_pem_x509_certificates(pem.read_bytes())
    written = _fingerprint_comments(text)
    assert len(certificates) == len(written) == 2
    for certificate, (valid_from, valid_until, fingerprint) in zip(
        certificates, written, strict=True
    ):
        digest = certificate.fingerprint(hashes.SHA256()).hex(":").upper()
        assert digest == fingerprint
        assert certificate.not_valid_before_utc.date().isoformat() == valid_from
        assert certificate.not_valid_after_utc.date().isoformat() == valid_until
    # The facts (reference/FACTS.md §1): the current root and the expired TextSecure root.
    by_cn = {
        c.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value: c for c in certificates
    }
    current = by_cn["Signal Messenger"]
    assert current.not_valid_before_utc.date() == date(2022, 1, 26)
    assert current.not_valid_after_utc.date() == date(2032, 1, 24)
    assert current.fingerprint(hashes.SHA256()).hex().upper().startswith("DDB0F92BB95C8D6F")
    old = by_cn["TextSecure"]
    assert old.not_valid_after_utc.date() == date(2023, 3, 23)
    assert old.fingerprint(hashes.SHA256()).hex().upper().startswith("098FD5403F63FEF8")


def test_lists_ship_in_the_wheel_and_load_from_it(tmp_path: Path) -> None:
    """A non-editable install finds the bundled lists (and the Signal roots), and the IP → ASN
    and country databases with their licences, as package data."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "probe", source / "probe", ignore=ignore)
    shutil.copytree(REPO / "targets", source / "targets", ignore=ignore)
    wheels = tmp_path / "wheels"
    command = [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-q", "-w", str(wheels)]
    if importlib.util.find_spec("wheel") is not None:
        command.append("--no-build-isolation")
    built = subprocess.run(command, cwd=source, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheels.glob("probe-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        shipped = sorted(
            p.name for p in (REPO / "targets").iterdir() if p.suffix in (".toml", ".pem")
        )
        for name in shipped:
            assert f"probe/data/targets/{name}" in names
        geoip_files = sorted(
            p.name
            for p in (REPO / "probe" / "data" / "geoip").iterdir()
            if p.suffix != ".py" and p.name != "__pycache__"
        )
        assert {"asn.mmdb", "country.mmdb", "SOURCES.md", "LICENSE-NRO"} <= set(geoip_files)
        for name in geoip_files:
            assert f"probe/data/geoip/{name}" in names
        # every package of the source tree ships (pyproject.toml lists them one by one)
        packages = sorted(
            str(init.parent.relative_to(REPO))
            for init in (REPO / "probe").rglob("__init__.py")
            if "__pycache__" not in init.parts
        )
        missing = [p for p in packages if f"{p}/__init__.py" not in names]
        assert not missing, f"packages missing from the wheel (pyproject.toml): {missing}"
        # the compiled message catalogs (docs/translating.md)
        catalogs = sorted(p.relative_to(REPO) for p in (REPO / "probe" / "locale").rglob("*.mo"))
        assert catalogs and all(str(p) in names for p in catalogs), catalogs
        archive.extractall(tmp_path / "installed")
    script = (
        "import probe.cli, probe.round.runner, probe.control, probe.report;"
        "import json, probe, probe.targets as t; r = t.load_lists(t.bundled_list_paths());"
        "print(json.dumps({'module': probe.__file__, 'dir': str(t.bundled_list_dir()),"
        " 'problems': r.problems, 'ids': [x.id for x in r.targets],"
        " 'ca': sorted({x.ca for x in r.targets if x.ca})}));"
        "import probe.vantage.geoip as g; d = g.resolve_databases(); geo = g.GeoIP(d.paths);"
        "print(json.dumps({'geoip': d.paths, 'origin': d.origin,"
        " 'asn': geo.lookup('1.1.1.1').asn}))"
    )
    ran = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={
            "PYTHONPATH": str(tmp_path / "installed"),
            "PATH": "/usr/bin:/bin",
            "PROBE_DATA_DIR": str(tmp_path / "data"),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    found, shipped_geoip = map(json.loads, ran.stdout.splitlines())
    installed = str(tmp_path / "installed")
    assert shipped_geoip["origin"] == "shipped" and shipped_geoip["asn"] == 13335
    assert [Path(p).name for p in shipped_geoip["geoip"]] == ["asn.mmdb", "country.mmdb"]
    assert all(p.startswith(installed) for p in shipped_geoip["geoip"])
    assert found["module"].startswith(installed) and found["dir"].startswith(installed)
    assert found["problems"] == []
    assert found["ids"] == [x.id for x in load_lists(bundled_list_paths()).targets]
    assert len(found["ca"]) == 1 and found["ca"][0].startswith(installed)
    listed = subprocess.run(
        [sys.executable, "-m", "probe", "targets", "list"],
        cwd=tmp_path,
        env={"PYTHONPATH": installed, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert [line.split()[0] for line in listed.stdout.splitlines()] == found["ids"]
    persian = subprocess.run(
        [sys.executable, "-m", "probe", "--lang", "fa", "run", "--help"],
        cwd=tmp_path,
        env={"PYTHONPATH": installed, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert persian.returncode == 0 and "طرز استفاده:" in persian.stdout, persian.stderr[-2000:]


# --- fuzzing: never a traceback --------------------------------------------------------------

FUZZ_PATH = "fuzz/list.toml"
PROBLEM_LINE = re.compile(r"fuzz/list\.toml:(\d+): \S")
VALID_TEXT = (REPO / "targets" / "telegram.toml").read_text()


def assert_well_formed(result: LoadResult, text: str) -> None:
    assert isinstance(result, LoadResult)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        pass
    else:  # valid TOML: the position scanner must understand all of it, never fall back
        scanner = _PositionScanner(text)
        scanner.document()
        for index, table in enumerate(document.get("targets", [])):
            if isinstance(table, dict):
                for key in table:
                    assert ("targets", index, key) in scanner.lines
    last_line = text.count("\n") + 1
    for problem in result.problems:
        match = PROBLEM_LINE.match(problem)
        assert match, problem
        assert 1 <= int(match.group(1)) <= last_line, problem
        assert "internal error" not in problem and "\n" not in problem
    if result.problems:
        assert result.lists == ()
    else:
        assert len(result.lists) == 1
        for item in result.targets:
            assert item.check in CHECKS
            json.dumps(item.table_as_written())


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=3000))
def test_fuzz_random_bytes(data: bytes) -> None:
    text = data.decode("utf-8", "surrogateescape")
    result = parse_list_text(text, FUZZ_PATH)
    assert_well_formed(result, text)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("[]{}=\"'#.,\n tx-_:0123456789ab")), max_size=400))
def test_fuzz_toml_shaped_text(text: str) -> None:
    assert_well_formed(parse_list_text(text, FUZZ_PATH), text)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_fuzz_edits_of_a_valid_list(data: st.DataObject) -> None:
    lines = VALID_TEXT.splitlines(keepends=True)
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(lines) - 1))
        action = data.draw(st.sampled_from(["delete", "duplicate", "insert", "cut"]))
        if action == "delete":
            del lines[index]
        elif action == "duplicate":
            lines.insert(index, lines[index])
        elif action == "insert":
            lines.insert(index, data.draw(st.text(max_size=40)) + "\n")
        else:
            cut = data.draw(st.integers(0, len(lines[index])))
            lines[index] = lines[index][:cut]
        if not lines:
            lines = ["\n"]
    text = "".join(lines)
    assert_well_formed(parse_list_text(text, FUZZ_PATH), text)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(value), repr(value))
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_string(key)


SCALARS = (
    st.integers(-(2**63), 2**63 - 1)
    | st.text(max_size=30)
    | st.booleans()
    | st.floats()
    | st.dates()
    | st.datetimes().map(lambda d: d.replace(microsecond=0))
    | st.sampled_from((*CHECKS, "149.154.167.51", "2001:db8::1", "https://t.me/", "[::1]", ""))
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_structured_mutations(data: st.DataObject) -> None:
    """Any key of a valid list set to any TOML value, or removed: problems or a valid result."""
    list_table: dict[str, Any] = {"name": "t", "updated": date(2026, 11, 28)}
    targets: list[dict[str, Any]] = [
        {
            "id": "telegram/dc2",
            "service": "telegram",
            "check": "mtproto",
            "host": "149.154.167.51",
            "ports": [443, 80],
        },
        {
            "id": "signal/chat",
            "service": "signal",
            "check": "https",
            "url": "https://chat.signal.org/",
        },
    ]
    keys = st.sampled_from((*TARGET_KEYS, "name", "extra", "id ")) | st.text(min_size=1, max_size=6)
    for _ in range(data.draw(st.integers(1, 4))):
        table: dict[str, Any] = data.draw(st.sampled_from([list_table, *targets]))
        key = data.draw(keys)
        if data.draw(st.booleans()) and key in table:
            del table[key]
        else:
            table[key] = data.draw(VALUES)
    text = "[list]\n" + "".join(f"{toml_key(k)} = {toml_value(v)}\n" for k, v in list_table.items())
    for item in targets:
        text += "\n[[targets]]\n" + "".join(
            f"{toml_key(k)} = {toml_value(v)}\n" for k, v in item.items()
        )
    result = parse_list_text(text, FUZZ_PATH)
    assert_well_formed(result, text)
    if not result.problems:
        assert [t.id for t in result.targets] == [t["id"] for t in targets]
