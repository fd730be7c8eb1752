"""The shipped IP → ASN / country data, which databases a run uses, and `probe geoip update`.

Lookups of well-known addresses (1.1.1.1, 8.8.8.8) are local database reads: nothing is sent
to them. Every download comes from an HTTP server this test starts on 127.0.0.1.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import maxminddb
import pytest

from probe.vantage import geoip
from probe.vantage.geoip import (
    SHIPPED_DIR,
    GeoIP,
    UpdateError,
    default_candidates,
    describe,
    resolve_databases,
    update_databases,
)
from tests.geoip_helpers import asn_record, country_record, write_db
from tests.loopback_world import GUARD_MARK, REPO, probe_env

SHIPPED_ASN = str(SHIPPED_DIR / "asn.mmdb")
SHIPPED_COUNTRY = str(SHIPPED_DIR / "country.mmdb")
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")


# --- the shipped data --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> Iterator[GeoIP]:
    databases = GeoIP((SHIPPED_ASN, SHIPPED_COUNTRY))
    yield databases
    databases.close()


@pytest.mark.parametrize(
    ("ip", "asn", "org_word"),
    [
        ("1.1.1.1", 13335, "Cloudflare"),
        ("8.8.8.8", 15169, "Google"),
        ("149.154.167.51", 62041, "Telegram"),
        ("2001:4860:4860::8888", 15169, "Google"),
        ("2606:4700:4700::1111", 13335, "Cloudflare"),
        ("::ffff:8.8.4.4", 15169, "Google"),  # IPv4-mapped: looked up as IPv4
        ("[2001:4860:4860::8844]", 15169, "Google"),
    ],
)
def test_shipped_data_knows_well_known_networks(
    shipped: GeoIP, ip: str, asn: int, org_word: str
) -> None:
    info = shipped.lookup(ip)
    assert info.asn == asn
    assert info.as_org_name and org_word in info.as_org_name
    assert info.cc and len(info.cc) == 2 and info.cc.isupper()


@pytest.mark.parametrize(
    "ip", ["127.0.0.1", "10.1.2.3", "192.168.0.1", "198.18.0.7", "::1", "fe80::1", "nonsense"]
)
def test_shipped_data_knows_nothing_of_private_and_lab_addresses(shipped: GeoIP, ip: str) -> None:
    assert shipped.lookup(ip) == geoip.NetworkInfo()


def test_shipped_files_are_the_documented_ones() -> None:
    sources = (SHIPPED_DIR / "SOURCES.md").read_text("utf-8")
    assert "IP geolocation by DB-IP (https://db-ip.com)" in sources
    assert "RouteViews" in sources and "NRO" in sources and "CC BY 4.0" in sources
    for name in ("asn.mmdb", "country.mmdb"):
        digest = hashlib.sha256((SHIPPED_DIR / name).read_bytes()).hexdigest()
        assert digest in sources, f"SOURCES.md does not describe this {name}"
    for licence in (
        "LICENSE-DBIP-ASN",
        "LICENSE-DBIP-COUNTRY",
        "LICENSE-ROUTEVIEWS",
        "LICENSE-NRO",
    ):
        assert "Creative Commons Attribution 4.0" in (SHIPPED_DIR / licence).read_text("utf-8")
    with maxminddb.open_database(SHIPPED_ASN) as reader:
        meta = reader.metadata()
        assert meta.ip_version == 6 and meta.binary_format_major_version == 2
    total = sum((SHIPPED_DIR / n).stat().st_size for n in ("asn.mmdb", "country.mmdb"))
    assert total < 40_000_000, "the shipped data grew: check the wheel size"


def test_geoip_description_of_the_shipped_data() -> None:
    text = describe((SHIPPED_ASN, SHIPPED_COUNTRY))
    assert text.startswith("shipped DB-IP/RouteViews/NRO data of 20")
    assert describe(()) == "none"


# --- tools/build_geoip.py on a tiny package ---------------------------------------------------


def _fake_packages(root: Path) -> tuple[Path, Path]:
    asn_dir, cc_dir = root / "asn", root / "cc"
    asn_dir.mkdir()
    cc_dir.mkdir()
    (asn_dir / "package.json").write_text(json.dumps({"version": "2.3.2026061719"}))
    (cc_dir / "package.json").write_text(json.dumps({"version": "2.3.2026060120"}))
    (asn_dir / "asn-ipv4.csv").write_text(
        '1.0.0.0,1.0.0.255,13335,"Cloudflare, Inc."\n'
        '1.0.1.0,1.0.1.255,13335,"Cloudflare, Inc."\n'  # touches the previous row: merged
        "5.0.0.0,5.0.2.255,64512,AS64512\n"  # a private ASN: left out
        "9.0.0.0,9.0.3.255,100,Earlier\n"
        "9.0.2.0,9.0.5.10,200,Later\n"  # overlaps the previous row: the later row wins
    )
    (asn_dir / "asn-ipv6.csv").write_text("2001:db8::,2001:db8::ffff,300,Six\n")
    for name in ("DBIP-LICENSE", "ROUTEVIEWS-LICENSE", "NRO_LICENSE", "MODIFICATIONS"):
        (asn_dir / name).write_text(f"{name}: Creative Commons Attribution 4.0\n")
    (cc_dir / "DBIP-LICENSE").write_text("Creative Commons Attribution 4.0\n")
    write_db(cc_dir / "dbip-country.mmdb", {"1.0.0.0/24": {"country_code": "AU"}})
    return asn_dir, cc_dir


def _build(asn_dir: Path, cc_dir: Path, out: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(REPO / "tools" / "build_geoip.py"), str(asn_dir), str(cc_dir)]
    return subprocess.run(
        [*command, "--out", str(out)], capture_output=True, text=True, timeout=120
    )


def _asn_of(reader: Any, ip: str) -> Any:
    record = reader.get(ip)
    return record["autonomous_system_number"] if isinstance(record, dict) else None


def test_build_script_converts_ranges_reproducibly(tmp_path: Path) -> None:
    asn_dir, cc_dir = _fake_packages(tmp_path)
    first = _build(asn_dir, cc_dir, tmp_path / "one")
    assert first.returncode == 0, first.stderr
    stats = json.loads(first.stdout)
    assert stats["dropped"] == 1 and stats["overlaps"] == 1
    second = _build(asn_dir, cc_dir, tmp_path / "two")
    assert second.returncode == 0, second.stderr
    for name in ("asn.mmdb", "country.mmdb", "SOURCES.md", "LICENSE-NRO"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    with maxminddb.open_database(str(tmp_path / "one" / "asn.mmdb")) as reader:
        assert reader.metadata().build_epoch == 1781722800  # 2026-06-17 19:00 UTC, not "now"
        cloudflare = asn_record(13335, "Cloudflare, Inc.")
        assert reader.get("1.0.0.0") == cloudflare and reader.get("1.0.1.255") == cloudflare
        assert reader.get("1.0.2.0") is None
        assert reader.get("5.0.1.1") is None
        assert _asn_of(reader, "9.0.1.255") == 100
        assert _asn_of(reader, "9.0.2.0") == 200
        assert _asn_of(reader, "9.0.5.10") == 200
        assert reader.get("9.0.5.11") is None
        assert _asn_of(reader, "2001:db8::ffff") == 300
    assert (
        "IP geolocation by DB-IP (https://db-ip.com)"
        in (tmp_path / "one" / "SOURCES.md").read_text()
    )


def test_build_script_refuses_a_bad_row(tmp_path: Path) -> None:
    asn_dir, cc_dir = _fake_packages(tmp_path)
    (asn_dir / "asn-ipv4.csv").write_text("1.0.0.0,1.0.0.255,13335\n")
    result = _build(asn_dir, cc_dir, tmp_path / "out")
    assert result.returncode == 2
    assert "asn-ipv4.csv:1:" in result.stderr
    assert not (tmp_path / "out" / "asn.mmdb").exists()


# --- which databases: explicit > updated > shipped --------------------------------------------


def _asn_db(path: Path, asn: int = 64000 + 1, org: str = "Updated AS") -> Path:
    networks = {
        "1.1.1.0/24": asn_record(asn, org),
        "8.8.8.0/24": asn_record(asn, org),
        "2606:4700::/32": asn_record(asn, org),
    }
    return write_db(path, networks, "probe-test-ASN")


def _country_db(path: Path, cc: str = "NL") -> Path:
    networks = {"1.1.1.0/24": country_record(cc), "8.8.8.0/24": country_record(cc)}
    return write_db(path, networks, "probe-test-Country")


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "data"
    monkeypatch.setenv("PROBE_DATA_DIR", str(directory))
    return directory


def test_nothing_installed_means_the_shipped_data(data_dir: Path) -> None:
    databases = resolve_databases()
    assert databases.paths == (SHIPPED_ASN, SHIPPED_COUNTRY)
    assert databases.origin == "shipped" and databases.notes == ()
    assert databases.description.startswith("shipped ")


def test_updated_files_win_over_the_shipped_ones_per_file(data_dir: Path) -> None:
    installed = data_dir / "geoip"
    installed.mkdir(parents=True)
    _asn_db(installed / "asn.mmdb")
    databases = resolve_databases()
    assert databases.paths == (str(installed / "asn.mmdb"), SHIPPED_COUNTRY)
    assert databases.origin == "mixed"
    assert databases.description.startswith(f"updated {datetime.now(UTC).date()}")
    assert "for asn; shipped DB-IP/RouteViews/NRO data of" in databases.description
    _country_db(installed / "country.mmdb")
    databases = resolve_databases()
    assert databases.paths == (str(installed / "asn.mmdb"), str(installed / "country.mmdb"))
    assert databases.origin == "updated"
    assert "shipped" not in databases.description and str(data_dir) not in databases.description
    geo = GeoIP(databases.paths)
    try:
        assert geo.lookup("1.1.1.1") == geoip.NetworkInfo(64001, "Updated AS", "NL")
    finally:
        geo.close()


def test_an_unreadable_updated_file_falls_back_to_the_shipped_one(data_dir: Path) -> None:
    installed = data_dir / "geoip"
    installed.mkdir(parents=True)
    (installed / "asn.mmdb").write_bytes(b"\0" * 100)
    databases = resolve_databases()
    assert databases.paths == (SHIPPED_ASN, SHIPPED_COUNTRY)
    assert len(databases.notes) == 1 and "asn.mmdb" in databases.notes[0]


def test_explicit_files_win_over_everything(data_dir: Path, tmp_path: Path) -> None:
    installed = data_dir / "geoip"
    installed.mkdir(parents=True)
    _asn_db(installed / "asn.mmdb")
    (tmp_path / "secret-home").mkdir()
    mine = _country_db(tmp_path / "secret-home" / "mine.mmdb")
    databases = resolve_databases((str(mine),))
    assert databases.paths == (str(mine),) and databases.origin == "explicit"
    assert databases.description == "--geoip-db mine.mmdb"  # the file name, not where it lives


@pytest.mark.skipif(sys.platform != "linux", reason="XDG_DATA_HOME is the Linux convention")
def test_xdg_data_home_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROBE_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert geoip.user_geoip_dir() == tmp_path / "xdg" / "probe" / "geoip"


def test_the_default_update_urls_are_this_and_last_months_lite_files() -> None:
    urls = default_candidates(date(2026, 1, 5))
    assert urls == {
        "asn": [
            "https://download.db-ip.com/free/dbip-asn-lite-2026-01.mmdb.gz",
            "https://download.db-ip.com/free/dbip-asn-lite-2025-12.mmdb.gz",
        ],
        "country": [
            "https://download.db-ip.com/free/dbip-country-lite-2026-01.mmdb.gz",
            "https://download.db-ip.com/free/dbip-country-lite-2025-12.mmdb.gz",
        ],
    }


# --- a loopback HTTP server to download from --------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    routes: dict[str, tuple[int, bytes, float]]
    hits: list[str]

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (a timeout test) is expected


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        status, body, delay = self.server.routes.get(self.path, (404, b"not found\n", 0.0))
        if delay:
            time.sleep(delay)
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def web() -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.routes = {}
    server.hits = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def url(server: _Server, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def _serve_good(web: _Server, tmp_path: Path) -> None:
    asn_bytes = _asn_db(tmp_path / "served-asn.mmdb").read_bytes()
    country_bytes = _country_db(tmp_path / "served-country.mmdb").read_bytes()
    web.routes["/asn.mmdb.gz"] = (200, gzip.compress(asn_bytes), 0.0)
    web.routes["/country.mmdb"] = (200, country_bytes, 0.0)  # not gzipped: also fine


def probe(args: list[str], data_dir: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real CLI in a subprocess under the network guard, with its own data directory."""
    env = probe_env()
    env["PROBE_DATA_DIR"] = str(data_dir)
    for name in PROXY_VARIABLES:
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-m", "probe", *args],
        env=env,
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert GUARD_MARK not in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("probe: error: "), result.stderr
    return lines[0]


def test_update_installs_into_the_user_data_dir_and_runs_use_it(
    web: _Server, tmp_path: Path
) -> None:
    _serve_good(web, tmp_path)
    data = tmp_path / "data"
    result = probe(
        ["geoip", "update", "--url", url(web, "/asn.mmdb.gz"), "--url", url(web, "/country.mmdb")],
        data,
    )
    assert result.returncode == 0, result.stderr
    installed = data / "geoip"
    assert f"installed asn database {installed / 'asn.mmdb'} (probe-test-ASN" in result.stdout
    assert f"installed country database {installed / 'country.mmdb'}" in result.stdout
    assert sorted(p.name for p in installed.iterdir()) == ["asn.mmdb", "country.mmdb"]
    assert (installed / "asn.mmdb").read_bytes() == (tmp_path / "served-asn.mmdb").read_bytes()
    shown = probe(["geoip", "show"], data)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"in use: updated {datetime.now(UTC).date()}")
    assert str(installed / "asn.mmdb") in shown.stdout and "shipped" not in shown.stdout


def test_update_into_another_directory(web: _Server, tmp_path: Path) -> None:
    _serve_good(web, tmp_path)
    target = tmp_path / "srv" / "geoip"
    result = probe(
        ["geoip", "update", "--url", url(web, "/asn.mmdb.gz"), "--dir", str(target)],
        tmp_path / "data",
    )
    assert result.returncode == 0, result.stderr
    assert (target / "asn.mmdb").is_file() and not (tmp_path / "data").exists()
    assert "--geoip-db" in result.stdout


def _installed_old(tmp_path: Path) -> tuple[Path, bytes]:
    installed = tmp_path / "data" / "geoip"
    installed.mkdir(parents=True)
    old = _asn_db(installed / "asn.mmdb", asn=64999, org="Old AS").read_bytes()
    return installed, old


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("not-a-database", "not a MaxMind database"),
        ("corrupt-gzip", "not a valid gzip file"),
        ("truncated-gzip", "truncated"),
        ("oversized", "more than 1048576 bytes"),
        ("http-500", "HTTP 500"),
        ("http-404", "HTTP 404"),
        ("empty-database", "knows neither"),
        ("slow", "timed out"),
    ],
)
def test_a_bad_download_keeps_the_old_database(
    web: _Server, tmp_path: Path, case: str, expected: str
) -> None:
    installed, old = _installed_old(tmp_path)
    good = gzip.compress(_asn_db(tmp_path / "new.mmdb").read_bytes())
    bodies = {
        "not-a-database": (200, gzip.compress(b"<html>blocked</html>" * 50), 0.0),
        "corrupt-gzip": (200, b"\x1f\x8b" + os.urandom(5000), 0.0),
        "truncated-gzip": (200, good[: len(good) // 2], 0.0),
        # 2 MB of zeros: 2 KB on the wire, too big once inflated
        "oversized": (200, gzip.compress(b"\0" * (2 << 20)), 0.0),
        "http-500": (500, b"oops", 0.0),
        "http-404": (404, b"gone", 0.0),
        "empty-database": (
            200,
            write_db(tmp_path / "e.mmdb", {"203.0.113.0/24": asn_record(1, "x")}).read_bytes(),
            0.0,
        ),
        "slow": (200, good, 5.0),
    }
    web.routes["/db"] = bodies[case]
    args = ["geoip", "update", "--url", url(web, "/db"), "--max-mb", "1", "--timeout", "2"]
    if case != "http-404":  # a failure after a good download installs nothing either
        _serve_good(web, tmp_path)
        args[2:2] = ["--url", url(web, "/country.mmdb")]
    result = probe(args, tmp_path / "data")
    assert result.returncode == 1, result.stderr
    line = one_error_line(result)
    assert expected in line and "nothing installed" in line, line
    assert result.stdout == ""
    assert sorted(p.name for p in installed.iterdir()) == ["asn.mmdb"]  # no temporary files
    assert (installed / "asn.mmdb").read_bytes() == old


@pytest.mark.parametrize(
    "bad", ["ftp://127.0.0.1/asn.mmdb", "127.0.0.1/asn.mmdb", "http://", "http://127.0.0.1:99999/"]
)
def test_a_bad_url_is_bad_input(tmp_path: Path, bad: str) -> None:
    result = probe(["geoip", "update", "--url", bad], tmp_path / "data")
    assert result.returncode == 2
    assert "--url" in one_error_line(result)
    assert not (tmp_path / "data").exists()


def test_an_unusable_directory_is_bad_input(web: _Server, tmp_path: Path) -> None:
    _serve_good(web, tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = probe(
        ["geoip", "update", "--url", url(web, "/asn.mmdb.gz"), "--dir", str(blocker / "sub")],
        tmp_path / "data",
    )
    assert result.returncode == 2
    assert str(blocker / "sub") in one_error_line(result)
    assert web.hits == []


def test_update_tries_last_month_after_a_404(web: _Server, tmp_path: Path) -> None:
    _serve_good(web, tmp_path)
    installed = update_databases(
        [("asn", [url(web, "/2026-12.gz"), url(web, "/asn.mmdb.gz")])], tmp_path / "d"
    )
    assert [(i.role, i.url) for i in installed] == [("asn", url(web, "/asn.mmdb.gz"))]
    assert web.hits == ["/2026-12.gz", "/asn.mmdb.gz"]
    with pytest.raises(UpdateError, match="expected a country database, got asn"):
        update_databases([("country", [url(web, "/asn.mmdb.gz")])], tmp_path / "d")
    with pytest.raises(UpdateError, match="a second asn database"):
        update_databases(
            [(None, [url(web, "/asn.mmdb.gz")]), (None, [url(web, "/asn.mmdb.gz")])],
            tmp_path / "d",
        )


def test_update_reads_concatenated_gzip_members(web: _Server, tmp_path: Path) -> None:
    raw = _asn_db(tmp_path / "a.mmdb").read_bytes()
    half = len(raw) // 2
    web.routes["/multi.gz"] = (200, gzip.compress(raw[:half]) + gzip.compress(raw[half:]), 0.0)
    (item,) = update_databases([(None, [url(web, "/multi.gz")])], tmp_path / "d")
    assert Path(item.path).read_bytes() == raw


# --- --geoip-db: a bad file is bad input, and nothing is written -------------------------------


def _loopback_list(tmp_path: Path) -> Path:
    path = tmp_path / "loopback.toml"
    path.write_text(
        '[list]\nname = "loopback"\nupdated = 2026-11-28\n\n[[targets]]\n'
        'id = "t/a"\nservice = "t"\ncheck = "tcp"\nhost = "127.0.0.1"\nports = [9]\n'
    )
    return path


@pytest.mark.parametrize("kind", ["missing", "corrupt", "directory"])
@pytest.mark.parametrize("command", ["run", "control"])
def test_a_bad_geoip_db_is_bad_input(tmp_path: Path, kind: str, command: str) -> None:
    bad = tmp_path / f"{kind}.mmdb"
    if kind == "corrupt":
        bad.write_bytes(b"\xab\xcd\xefMaxMind.com" + b"\0" * 40)
    elif kind == "directory":
        bad.mkdir()
    out = tmp_path / "results"
    if command == "run":
        args = ["run", str(_loopback_list(tmp_path)), "--no-control", "--resolver", "127.0.0.1:9"]
        args += [
            "--out",
            str(out),
            "--timeout",
            "1",
            "--geoip-db",
            SHIPPED_ASN,
            "--geoip-db",
            str(bad),
        ]
    else:
        args = ["control", "serve", "--port", "9", "--geoip-db", str(bad)]
    result = probe(args, tmp_path / "data", timeout=30)
    assert result.returncode == 2, result.stderr
    line = one_error_line(result)
    assert f"--geoip-db {bad}:" in line
    assert not out.exists()


def test_a_bad_geoip_db_in_the_config_file_names_the_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[run]\ntimeout = 3\ngeoip_db = ["nowhere.mmdb"]\n')
    out = tmp_path / "results"
    args = ["--config", str(config), "run", str(_loopback_list(tmp_path)), "--no-control"]
    result = probe([*args, "--resolver", "127.0.0.1:9", "--out", str(out)], tmp_path / "data")
    assert result.returncode == 2, result.stderr
    assert f"{config}:3: geoip_db" in one_error_line(result)
    assert not out.exists()


def test_show_prints_the_shipped_data_by_default(tmp_path: Path) -> None:
    result = probe(["geoip", "show"], tmp_path / "data")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("in use: shipped DB-IP/RouteViews/NRO data of 20")
    assert f"shipped  {SHIPPED_ASN}" in result.stdout
    assert f"shipped  {SHIPPED_COUNTRY}" in result.stdout
    assert lines[-1] == f"updates (probe geoip update) go to {tmp_path / 'data' / 'geoip'}"
