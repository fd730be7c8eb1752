"""The cache of the parsed bundled fingerprint files (probe/analysis/fingerprints/cache.py): a
load from it gives the same database as parsing the files, and any cache file that is not
exactly the right one — stale, foreign, damaged, unwritable — only means parsing them again."""

from __future__ import annotations

import marshal
import os
import subprocess
import sys
import zlib
from importlib import resources
from pathlib import Path

import pytest

from probe.analysis.fingerprints import BUNDLED_FILES, HEADER, FingerprintDB, parse_csv
from probe.analysis.fingerprints import cache as fpcache
from probe.analysis.fingerprints.body import body_layout
from probe.analysis.fingerprints.rows import _read_text
from probe.observations import HTTPTransaction
from probe.paths import CACHE_DIR_ENV, user_cache_dir
from tests.fingerprints_reference import fixture_bodies, reference_match_http

REPO = Path(__file__).resolve().parent.parent
_DATAS = [resources.files("probe.data").joinpath(name).read_bytes() for name in BUNDLED_FILES]


def _parsed_as_before() -> tuple[list, list[str]]:
    """The bundled files parsed the way FingerprintDB.load did before the cache."""
    found, warnings = [], []
    for name in BUNDLED_FILES:
        text = resources.files("probe.data").joinpath(name).read_text(encoding="utf-8-sig")
        rows, row_warnings = parse_csv(text, name)
        found.extend(rows)
        warnings.extend(row_warnings)
    return found, warnings


_REFERENCE, _REFERENCE_WARNINGS = _parsed_as_before()


def _assert_same(bundled: fpcache.Bundled) -> None:
    assert bundled.fingerprints == _REFERENCE
    assert bundled.warnings == _REFERENCE_WARNINGS
    # `regex` takes no part in ==: the compiled patterns too
    regexes = [(fp.regex.pattern, fp.regex.flags) if fp.regex else None for fp in _REFERENCE]
    assert [
        (fp.regex.pattern, fp.regex.flags) if fp.regex else None for fp in bundled.fingerprints
    ] == regexes
    assert bundled.layouts == [body_layout(fp) for fp in _REFERENCE if fp.location == "body"]


def test_cached_load_is_the_parsed_load(tmp_path: Path) -> None:
    cold = fpcache.load_files(_DATAS, tmp_path)
    warm = fpcache.load_files(_DATAS, tmp_path)
    assert not cold.from_cache and warm.from_cache
    _assert_same(cold)
    _assert_same(warm)
    assert [p.name for p in tmp_path.iterdir()] == [fpcache.FILE_NAME]


def test_cached_database_matches_as_the_parsed_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    FingerprintDB.load()
    cached = FingerprintDB.load()
    assert (tmp_path / fpcache.FILE_NAME).is_file()
    parsed = FingerprintDB(_REFERENCE, _REFERENCE_WARNINGS)
    assert cached.fingerprints == parsed.fingerprints and cached.warnings == parsed.warnings
    page = "<html><head><title>x</title></head><body>{}</body></html>"
    bodies = fixture_bodies() + [page.format(fp.pattern) for fp in _REFERENCE]
    assert len(bodies) > len(_REFERENCE)
    for body in bodies:
        headers = [("Server", "Protected by WireFilter 8000"), ("Location", body[:80])]
        transaction = HTTPTransaction(
            "http://x/", response_code=200, body=body, response_headers=headers
        )
        for cc in (None, "IR"):
            # `parsed` computes its body index, `cached` takes the cached one
            assert cached.match_http(transaction, probe_cc=cc) == parsed.match_http(
                transaction, probe_cc=cc
            )
    for body in fixture_bodies()[:50]:
        transaction = HTTPTransaction("http://x/", response_code=200, body=body)
        assert cached.match_http(transaction) == reference_match_http(parsed, transaction)
    for fp in _REFERENCE:
        if fp.location == "dns":
            for cc in (None, "IR", "RU"):
                assert cached.match_dns(fp.pattern, probe_cc=cc) == parsed.match_dns(
                    fp.pattern, probe_cc=cc
                )


def test_user_files_come_after_the_cached_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    extra = tmp_path / "mine.csv"
    extra.write_text(
        ",".join(HEADER) + "\nmine_body,isp,,body,contains,Zorblocked page,,XX,,,\n"
        "mine_header,isp,,header.server,full,Zorbfilter,,XX,,,\n"
        "bad,isp,,body,contains,,,,,,\n",
        encoding="utf-8",
    )
    cold = FingerprintDB.load([extra])
    warm = FingerprintDB.load([extra])
    rows, warnings = parse_csv(_read_text(extra), str(extra))
    assert cold.fingerprints == warm.fingerprints == tuple(_REFERENCE + rows)
    assert cold.warnings == warm.warnings == tuple(_REFERENCE_WARNINGS + warnings)
    assert len(warnings) == 1
    transaction = HTTPTransaction(
        "http://x/",
        response_code=200,
        body="<p>Zorblocked page</p>",
        response_headers=[("Server", "Zorbfilter")],
    )
    assert [m.name for m in warm.match_http(transaction)] == ["mine_body", "mine_header"]
    assert warm.match_http(transaction) == cold.match_http(transaction)


def test_changed_files_rebuild_the_cache(tmp_path: Path) -> None:
    fpcache.load_files(_DATAS, tmp_path)
    row = "\r\nnew_row,nat,,body,contains,Zorbblock,,XX,,,\r\n"
    changed = [*_DATAS[:-1], _DATAS[-1].rstrip(b"\r\n") + row.encode()]
    rebuilt = fpcache.load_files(changed, tmp_path)
    assert not rebuilt.from_cache
    assert rebuilt.fingerprints[:-1] == _REFERENCE and rebuilt.fingerprints[-1].name == "new_row"
    again = fpcache.load_files(changed, tmp_path)
    assert again.from_cache and again.fingerprints == rebuilt.fingerprints
    back = fpcache.load_files(_DATAS, tmp_path)  # the old files: the cache is stale again
    assert not back.from_cache
    _assert_same(back)


def _damaged(data: bytes) -> dict[str, bytes]:
    """Cache files that must not be used: damaged, foreign, or with the right key and checksum
    but not what this version writes."""
    key, payload = data[:32], data[36:]

    def frame(body: bytes) -> bytes:
        return key + zlib.crc32(body).to_bytes(4, "big") + body

    columns, regexps, warnings, layouts = marshal.loads(payload)
    return {
        "empty": b"",
        "garbage": os.urandom(4096),
        "truncated": data[: len(data) // 2],
        "header only": data[:36],
        "one byte flipped": data[:-100] + bytes([data[-100] ^ 1]) + data[-99:],
        "another key": bytes([key[0] ^ 1]) + data[1:],
        "not marshal": frame(b"\xff\xfe" + payload[2:]),
        "marshal cut short": frame(payload[: len(payload) // 2]),
        "wrong shape": frame(marshal.dumps((1, 2))),
        "strings for columns": frame(marshal.dumps(("a", "b", "c", "d"))),
        "a column missing": frame(marshal.dumps((columns[:-1], regexps, warnings, layouts))),
        "a column shorter": frame(
            marshal.dumps(((*columns[:-1], columns[-1][:-1]), regexps, warnings, layouts))
        ),
        "layouts missing": frame(marshal.dumps((columns, regexps, warnings, layouts[:-1]))),
        "regexp out of range": frame(marshal.dumps((columns, (10**6,), warnings, layouts))),
    }


def test_damaged_or_foreign_cache_files_are_parsed_again_and_rewritten(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    fpcache.load_files(_DATAS, tmp_path)
    path = tmp_path / fpcache.FILE_NAME
    good = path.read_bytes()
    for what, data in _damaged(good).items():
        path.write_bytes(data)
        loaded = fpcache.load_files(_DATAS, tmp_path)
        assert not loaded.from_cache, what
        _assert_same(loaded)
        assert path.read_bytes() == good, what  # rewritten
        assert fpcache.load_files(_DATAS, tmp_path).from_cache, what
    assert capfd.readouterr() == ("", "")


def test_another_cache_format_or_python_is_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fpcache.load_files(_DATAS, tmp_path)
    monkeypatch.setattr(fpcache, "FORMAT", fpcache.FORMAT + 1)
    assert not fpcache.load_files(_DATAS, tmp_path).from_cache
    monkeypatch.setattr(sys, "version", sys.version + " (another build)")
    assert not fpcache.load_files(_DATAS, tmp_path).from_cache
    assert fpcache.load_files(_DATAS, tmp_path).from_cache


def test_changed_code_rebuilds_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = tmp_path / "body.py"
    code.write_bytes(Path(fpcache.code_files()[1]).read_bytes())
    files = (fpcache.code_files()[0], str(code), fpcache.code_files()[2])
    monkeypatch.setattr(fpcache, "code_files", lambda: files)
    cache_dir = tmp_path / "cache"
    assert not fpcache.load_files(_DATAS, cache_dir).from_cache
    assert fpcache.load_files(_DATAS, cache_dir).from_cache
    code.write_bytes(code.read_bytes() + b"\n# another version\n")
    assert not fpcache.load_files(_DATAS, cache_dir).from_cache
    assert fpcache.load_files(_DATAS, cache_dir).from_cache
    code.unlink()  # the code cannot be read: no cache at all, never a stale one
    for _ in range(2):
        loaded = fpcache.load_files(_DATAS, cache_dir)
        assert not loaded.from_cache
        _assert_same(loaded)


def test_no_usable_cache_directory(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    for cache_dir in (blocker / "cache", blocker):
        for _ in range(2):
            loaded = fpcache.load_files(_DATAS, cache_dir)
            assert not loaded.from_cache
            _assert_same(loaded)
    missing = tmp_path / "new" / "deeper"
    assert not fpcache.load_files(_DATAS, missing).from_cache
    assert fpcache.load_files(_DATAS, missing).from_cache
    fifo_in_the_way = tmp_path / "fifo-cache"
    fifo_in_the_way.mkdir()
    os.mkfifo(fifo_in_the_way / fpcache.FILE_NAME)  # opening it for reading would block
    assert not fpcache.load_files(_DATAS, fifo_in_the_way).from_cache
    assert fpcache.load_files(_DATAS, fifo_in_the_way).from_cache  # replaced by the file
    directory_in_the_way = tmp_path / "dir-cache"
    (directory_in_the_way / fpcache.FILE_NAME).mkdir(parents=True)
    for _ in range(2):
        assert not fpcache.load_files(_DATAS, directory_in_the_way).from_cache
    assert sorted(p.name for p in directory_in_the_way.iterdir()) == [fpcache.FILE_NAME]
    assert capfd.readouterr() == ("", "")


_WRITER = """
import sys
from pathlib import Path
from probe.analysis.fingerprints import cache
directory, churn = Path(sys.argv[1]), sys.argv[2] == "churn"
for _ in range(15 if churn else 1):
    assert len(cache.load_bundled(directory).fingerprints) > 1000
    if churn:
        cache.cache_file(directory).unlink(missing_ok=True)
"""


def test_writers_at_once_leave_one_whole_file(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for how, count in (("churn", 4), ("once", 4)):
        fpcache.cache_file(tmp_path).unlink(missing_ok=True)  # type: ignore[union-attr]
        writers = [
            subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), how], env=env)
            for _ in range(count)
        ]
        assert [writer.wait(timeout=120) for writer in writers] == [0] * count
    assert [p.name for p in tmp_path.iterdir()] == [fpcache.FILE_NAME]  # no temporary left
    loaded = fpcache.load_files(_DATAS, tmp_path)
    assert loaded.from_cache
    _assert_same(loaded)


def test_the_tests_never_use_the_user_cache() -> None:
    configured = os.environ.get(CACHE_DIR_ENV)
    assert configured and user_cache_dir() == Path(configured)
    assert Path(configured).name.startswith("probe-tests-cache-")
