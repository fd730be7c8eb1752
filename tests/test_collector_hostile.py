"""Hostile and broken uploads against a real collector on loopback: every bad line is rejected
alone with its reason, every bad request as a whole with its status (400, 408, 413, 415) and
nothing of it stored; the collector keeps serving after each."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tests.collector_helpers import (
    jsonl,
    lines_of,
    request,
    running,
    sha_of,
    stored_rows,
    synthetic_files,
    upload,
)


@pytest.fixture(scope="module")
def lines(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    return lines_of(synthetic_files(tmp_path_factory.mktemp("synthetic"), vantages=1))


def _changed(line: bytes, **changes: object) -> bytes:
    record = json.loads(line)
    record.update(changes)
    return json.dumps(record).encode()


def _deep(levels: int) -> bytes:
    return b'{"a": ' + b"[" * levels + b"]" * levels + b"}"


async def _still_serving(port: int, line: bytes) -> None:
    reply = await upload(port, [line])
    assert reply.status == 200 and reply.json()["lines"][0]["status"] in ("stored", "duplicate")


async def test_bad_lines_are_rejected_each_with_its_reason(
    tmp_path: Path, lines: list[bytes]
) -> None:
    record = json.loads(lines[0])
    missing = dict(record)
    del missing["probe_cc"]
    bad = [
        (json.dumps(missing).encode(), "schema: record: 'probe_cc' is required"),
        (_changed(lines[0], probe_cc="Iran"), "schema: probe_cc"),
        (b"not json at all", "not JSON"),
        (b"\xff\xfe{}", "invalid UTF-8"),
        (b"[1, 2, 3]", "not a JSON object"),
        (lines[0][:-1] + b', "probe_cc": "DE"}', "duplicate key 'probe_cc'"),
        (lines[0][:-1] + b', "x_nan": NaN}', "NaN is not JSON"),
        (lines[0][:-1] + b', "x_big": 1e999}', "number out of range"),
        (_deep(40), "nested deeper than 32 levels"),
        (_deep(100_000), "nested deeper than 32 levels"),  # past Python's recursion limit
        (_changed(lines[0], measurement_start_time="2999-01-01 00:00:00"), "absurd"),
        (_changed(lines[0], probe_asn="AS99999999999"), "not a 32-bit AS number"),
    ]
    async with running(tmp_path / "c") as c:
        reply = await upload(c.port, [line for line, _ in bad] + [lines[1]])
        assert reply.status == 200
        body = reply.json()
        assert (body["stored"], body["rejected"]) == (1, len(bad))
        for entry, (_, reason) in zip(body["lines"], bad, strict=False):
            assert entry["status"] == "rejected"
            assert entry["reason"].startswith(reason) or reason in entry["reason"], entry
            assert len(entry["reason"]) <= 300
        assert body["lines"][-1] == {
            "line": len(bad) + 1,
            "status": "stored",
            "sha256": sha_of(lines[1]),
        }
        await _still_serving(c.port, lines[2])
    assert len(stored_rows(tmp_path / "c")) == 2


async def test_a_record_larger_than_the_limit_is_rejected_alone(
    tmp_path: Path, lines: list[bytes]
) -> None:
    huge = _changed(lines[0], x_padding="x" * 300_000)
    async with running(tmp_path / "c", max_record_bytes=200_000) as c:
        body = (await upload(c.port, [lines[1], huge, lines[2]])).json()
    assert [e["status"] for e in body["lines"]] == ["stored", "rejected", "stored"]
    assert body["lines"][1]["reason"] == "record larger than 200000 bytes"


@pytest.mark.parametrize(
    ("options", "body", "headers", "status", "message"),
    [
        ({"max_records": 5}, None, {}, 413, "more than 5 records in one request"),
        ({"max_body_bytes": 10_000}, None, {}, 413, "body larger than 10000 bytes"),
        ({}, b"", {}, 400, "no records: the body is empty"),
        ({}, b"\n \n\r\n", {}, 400, "only blank lines"),
        ({}, None, {"Content-Type": "text/html"}, 415, "send JSON Lines"),
        ({}, None, {"Content-Encoding": "br"}, 415, "Content-Encoding"),
        ({}, b"plain text, not gzip\n", {"Content-Encoding": "gzip"}, 400, "not valid gzip"),
    ],
    ids=["records", "body", "empty", "blank", "type", "encoding", "gzip"],
)
async def test_bad_requests_are_refused_whole(
    tmp_path: Path,
    lines: list[bytes],
    options: dict[str, int],
    body: bytes | None,
    headers: dict[str, str],
    status: int,
    message: str,
) -> None:
    sent = jsonl(lines[:6]) if body is None else body
    async with running(tmp_path / "c", **options) as c:
        reply = await request(c.port, "POST", "/v1/records", sent, headers)
        assert reply.status == status, reply.body
        assert message in reply.json()["error"]
        await _still_serving(c.port, lines[9])
    assert [r[0] for r in stored_rows(tmp_path / "c")] == [sha_of(lines[9])]


async def test_a_body_larger_than_declared_limits_is_refused_unread(tmp_path: Path) -> None:
    async with running(tmp_path / "c") as c:
        # only the head is sent: the refusal comes before any of the 1 GiB
        reply = await request(c.port, "POST", "/v1/records", b"", length=2**30)
    assert reply.status == 413 and "larger than" in reply.json()["error"]


async def test_a_chunked_body_is_cut_at_its_limit(tmp_path: Path, lines: list[bytes]) -> None:
    data = jsonl(lines[:50])
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (data[:4000], data[4000:]))
    async with running(tmp_path / "c", max_body_bytes=5000) as c:
        reply = await request(
            c.port, "POST", "/v1/records", chunked + b"0\r\n\r\n", {"Transfer-Encoding": "chunked"}
        )
    assert reply.status == 413
    assert stored_rows(tmp_path / "c") == []


async def test_a_gzip_bomb_stops_at_the_decoded_limit(tmp_path: Path, lines: list[bytes]) -> None:
    bomb = gzip.compress(b"\n" * 200_000_000, 9)  # 200 MB of blank lines in ~200 KB
    assert len(bomb) < 1_000_000
    async with running(tmp_path / "c") as c:
        reply = await request(
            c.port, "POST", "/v1/records", bomb, {"Content-Encoding": "gzip"}, pieces=4
        )
        assert reply.status == 413
        limit = c.config.max_decoded_bytes
        assert reply.json()["error"] == f"body larger than {limit} bytes decompressed"
        await _still_serving(c.port, lines[0])


async def test_a_truncated_gzip_body_is_refused(tmp_path: Path, lines: list[bytes]) -> None:
    packed = gzip.compress(jsonl(lines[:20]))
    async with running(tmp_path / "c") as c:
        reply = await request(
            c.port, "POST", "/v1/records", packed[:-12], {"Content-Encoding": "gzip"}
        )
    assert reply.status == 400 and "cut short" in reply.json()["error"]
    assert stored_rows(tmp_path / "c") == []


async def test_a_body_cut_short_stores_nothing(tmp_path: Path, lines: list[bytes]) -> None:
    """A client that ends its side of the connection before the body it announced: the request
    is abandoned (aiohttp takes the end as a disconnect and cancels it, so no reply comes;
    a 400 is allowed too) and nothing of it is stored; so for a malformed chunked body."""
    data = jsonl(lines[:20])
    chunk = b"%x\r\n%s\r\n" % (len(data), data)
    async with running(tmp_path / "c") as c:
        short = await request(
            c.port, "POST", "/v1/records", data, length=len(data) + 5000, cut_short=True
        )
        bad_chunk = await request(
            c.port,
            "POST",
            "/v1/records",
            chunk + b"zz\r\n",
            {"Transfer-Encoding": "chunked"},
            cut_short=True,
        )
        for reply in (short, bad_chunk):
            assert reply.status in (0, 400), reply
        await _still_serving(c.port, lines[30])
    assert [r[0] for r in stored_rows(tmp_path / "c")] == [sha_of(lines[30])]


async def test_a_slow_body_gets_408_and_stores_nothing(tmp_path: Path, lines: list[bytes]) -> None:
    data = jsonl(lines[:10])
    async with running(tmp_path / "c", body_timeout=0.5) as c:
        reply = await request(c.port, "POST", "/v1/records", data, pieces=10, pause=0.2)
        assert reply.status == 408 and "did not arrive within 0.5 s" in reply.json()["error"]
        await _still_serving(c.port, lines[30])
    assert [r[0] for r in stored_rows(tmp_path / "c")] == [sha_of(lines[30])]
