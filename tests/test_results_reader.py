"""The tolerant reader of result files: JSON Lines (streamed), whole documents, arrays, .gz,
and every way a file can be broken."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from probe.results import iter_json_objects, iter_result_files


def items(path: Path) -> list[tuple[int, dict | None, str | None]]:
    return [(i.line, i.obj, i.error) for i in iter_json_objects(path)]


def test_json_lines_with_bad_lines(tmp_path: Path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1}\n\nnot json\n[1, 2]\n"x"\n{"b": 2}\n')
    got = items(path)
    assert got[0] == (1, {"a": 1}, None)
    assert got[1][0] == 3 and got[1][2].startswith("not JSON")
    assert got[2] == (4, None, "not a JSON object")
    assert got[3] == (5, None, "not a JSON object")
    assert got[4] == (6, {"b": 2}, None)


def test_pretty_printed_document_and_array(tmp_path: Path):
    doc = tmp_path / "m.json"
    doc.write_text(json.dumps({"test_keys": {"x": [1, 2]}}, indent=2))
    assert items(doc) == [(1, {"test_keys": {"x": [1, 2]}}, None)]
    array = tmp_path / "arr.json"
    array.write_text(json.dumps([{"a": 1}, 2], indent=1))
    assert items(array) == [(1, {"a": 1}, None), (2, None, "not a JSON object")]
    one_line_array = tmp_path / "arr1.json"
    one_line_array.write_text('[{"a": 1}]')
    assert items(one_line_array) == [(1, {"a": 1}, None)]


def test_broken_pretty_document_names_its_line(tmp_path: Path):
    doc = tmp_path / "m.json"
    doc.write_text('{\n  "a": 1,\n  "b": \n}\n')
    [(line, obj, error)] = items(doc)
    assert obj is None and error.startswith("not JSON") and line == 4


def test_gzip_plain_truncated_and_fake(tmp_path: Path):
    good = tmp_path / "g.jsonl.gz"
    good.write_bytes(gzip.compress(b'{"a": 1}\n{"b": 2}\n'))
    assert [obj for _, obj, _ in items(good)] == [{"a": 1}, {"b": 2}]
    truncated = tmp_path / "t.jsonl.gz"
    truncated.write_bytes(gzip.compress(b'{"a": 1}\n' * 20000)[:-200])
    got = items(truncated)
    assert got[-1][2] is not None and got[-1][2].startswith("cannot read")
    assert all(obj == {"a": 1} for _, obj, _ in got[:-1])
    fake = tmp_path / "f.json.gz"
    fake.write_bytes(b"this is not gzip")
    [(_, obj, error)] = items(fake)
    assert obj is None and error.startswith("cannot read")


def test_empty_binary_and_missing_files(tmp_path: Path):
    empty = tmp_path / "e.jsonl"
    empty.write_text("\n\n")
    assert items(empty) == [(0, None, "empty file")]
    binary = tmp_path / "b.json"
    binary.write_bytes(bytes(range(256)) * 10)
    assert all(obj is None for _, obj, _ in items(binary))
    assert items(tmp_path / "missing.json")[0][2].startswith("cannot read")
    directory = tmp_path / "d.json"
    directory.mkdir()
    assert items(directory)[0][2].startswith("cannot read")


def test_result_files_found_recursively_in_order(tmp_path: Path):
    (tmp_path / "2026-11-28").mkdir()
    for name in ("2026-11-28/b.jsonl", "2026-11-28/a.jsonl.gz", "x.json", "notes.txt"):
        (tmp_path / name).write_text("{}")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_result_files([str(tmp_path)])]
    assert found == ["2026-11-28/a.jsonl.gz", "2026-11-28/b.jsonl", "x.json"]


def test_hostile_lines_are_skipped_one_by_one(tmp_path: Path):
    """Deep nesting, NaN/Infinity and invalid UTF-8 each cost their own line, never the file
    (nor a traceback), and every good line around them is read, plain or gzipped."""
    lines = [
        b'{"a": 1}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"runtime": NaN}',
        b'{"runtime": -Infinity}',
        b'{"name": "\xff\xfe"}',
        '{"name": "caf\u00e9"}'.encode(),
        b'{"b": 2}',
    ]
    data = b"\n".join(lines) + b"\n"
    for path in (tmp_path / "h.jsonl", tmp_path / "h.jsonl.gz"):
        path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
        assert items(path) == [
            (1, {"a": 1}, None),
            (2, None, "nested too deeply"),
            (3, None, "NaN is not JSON"),
            (4, None, "-Infinity is not JSON"),
            (5, None, "invalid UTF-8"),
            (6, {"name": "caf\u00e9"}, None),
            (7, {"b": 2}, None),
        ]


def test_hostile_whole_documents(tmp_path: Path):
    deep = tmp_path / "deep.json"
    deep.write_text("{\n" + '"a": ' + "[" * 100_000 + "]" * 100_000 + "\n}")
    assert items(deep) == [(1, None, "nested too deeply")]
    nan = tmp_path / "nan.json"
    nan.write_text('{\n  "x": NaN\n}')
    assert items(nan) == [(1, None, "NaN is not JSON")]


def test_absurd_and_unparsable_record_times_are_skipped_one_by_one(tmp_path: Path):
    """measurement_start_time / test_start_time before 2000, more than two days ahead, or not an
    ISO date/time cost their own line (or array item, or document) with a reason; a missing or
    null time is left to the caller, and a clock a day fast is believed."""
    soon = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
    later = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%d %H:%M:%S")
    objects = [
        {"measurement_start_time": "2024-03-01 00:00:00", "test_start_time": "2024-03-01"},
        {"measurement_start_time": "9999-12-31 23:59:59"},
        {"measurement_start_time": "0001-01-01 00:00:00"},
        {"measurement_start_time": "1999-12-31 23:59:59"},
        {"measurement_start_time": later},
        {"measurement_start_time": soon, "test_start_time": "2024-03-01T12:00:00Z"},
        {"measurement_start_time": "2024-03-01 00:00:00", "test_start_time": "99999-01-01"},
        {"test_start_time": "0001-01-01T00:00:00+05:00"},  # year 0 in UTC
        {"measurement_start_time": 1709251200},
        {"measurement_start_time": None, "x": 1},
        {"measurement_start_time": "yesterday" * 100},
    ]
    expected = [
        (1, objects[0], None),
        (2, None, "absurd measurement_start_time '9999-12-31 23:59:59': before 2000 or more "
         "than 2 days ahead"),
        (3, None, "absurd measurement_start_time '0001-01-01 00:00:00': before 2000 or more "
         "than 2 days ahead"),
        (4, None, "absurd measurement_start_time '1999-12-31 23:59:59': before 2000 or more "
         "than 2 days ahead"),
        (5, None, f"absurd measurement_start_time '{later}': before 2000 or more than 2 days "
         "ahead"),
        (6, objects[5], None),
        (7, None, "bad test_start_time '99999-01-01'"),
        (8, None, "bad test_start_time '0001-01-01T00:00:00+05:00'"),
        (9, None, "bad measurement_start_time 1709251200"),
        (10, objects[9], None),
        (11, None, "bad measurement_start_time 'yesterdayyesterdayyesterdayyesterdayye…"),
    ]  # fmt: skip
    lines = tmp_path / "t.jsonl"
    lines.write_text("".join(json.dumps(o) + "\n" for o in objects))
    assert items(lines) == expected
    array = tmp_path / "t.json"
    array.write_text(json.dumps(objects, indent=2))
    assert items(array) == expected
    document = tmp_path / "one.json"
    document.write_text(json.dumps(objects[1], indent=2))
    assert items(document) == [(1, None, expected[1][2])]
