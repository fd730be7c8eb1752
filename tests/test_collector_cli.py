"""`probe collector serve` on the command line: bad options and files are one line and exit
status 2; one directory, one collector; SIGHUP rotates the tokens; the log names no client
address unless --log-client-addresses."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from tests.collector_helpers import (
    jsonl,
    lines_of,
    request,
    serve,
    synthetic_files,
    upload,
)
from tests.loopback_world import run_probe

TOKEN_OLD = "old-token-of-the-iran-group"
TOKEN_NEW = "new-token-of-the-iran-group"


@pytest.fixture(scope="module")
def lines(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    return lines_of(synthetic_files(tmp_path_factory.mktemp("synthetic"), vantages=1))


def _one_line_error(stderr: str, *expected: str) -> None:
    found = stderr.strip().splitlines()
    assert len(found) == 1, stderr
    assert found[0].startswith("probe: error: ")
    for part in expected:
        assert part in found[0], stderr


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--port", "0"], "--port 0: must be in 1..65535"),
        (["--port", "70000"], "--port 70000"),
        (["--port", "abc"], "'--port'"),
        (["--max-concurrent", "0"], "--max-concurrent 0: must be at least 1"),
        (["--reserve-mb", "-1"], "--reserve-mb must be at least 0"),
        (["--compact-mb", "0"], "--compact-mb at least 1"),
        (["--merge-files", "1"], "--merge-files at least 2"),
        (["--compact-interval", "0"], "--compact-interval 0.0: must be in (0, 86400]"),
        (["--compact-interval", "nan"], "--compact-interval nan"),
        (["--tokens", "/nonexistent/tokens"], "/nonexistent/tokens: No such file or directory"),
        (["--tokens", "/dev/zero"], "/dev/zero: not a regular file"),
        (["--no-such-option"], "No such option"),
    ],
)
async def test_bad_options_are_one_line_and_exit_2(
    tmp_path: Path, options: list[str], expected: str
) -> None:
    run = await run_probe(["collector", "serve", str(tmp_path / "c"), *options])
    assert run.returncode == 2
    _one_line_error(run.stderr, expected)


async def test_bad_tokens_file_and_directory_are_refused(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"iran {TOKEN_OLD}\nlab short\n")
    run = await run_probe(["collector", "serve", str(tmp_path / "c"), "--tokens", str(tokens)])
    assert run.returncode == 2
    _one_line_error(run.stderr, f"{tokens}:2: a token is 16 to 512")
    a_file = tmp_path / "file"
    a_file.write_text("")
    run = await run_probe(["collector", "serve", str(a_file)])
    assert run.returncode == 2
    _one_line_error(run.stderr, "is a file")


async def test_two_collectors_on_one_directory_are_refused(
    tmp_path: Path, lines: list[bytes]
) -> None:
    directory = tmp_path / "c"
    first = await serve(directory, log=tmp_path / "log")
    try:
        second = await run_probe(["collector", "serve", str(directory), "--port", "1"])
        assert second.returncode == 2
        _one_line_error(second.stderr, f"{directory}: another collector is using it")
        # the first one goes on
        assert (await upload(first.port, lines[:1])).json()["stored"] == 1
        busy_port = await run_probe(
            ["collector", "serve", str(tmp_path / "other"), "--port", str(first.port)]
        )
        assert busy_port.returncode == 2
        # the storage opened (and logged so) before the port was found taken: the error is
        # the last line
        last = busy_port.stderr.strip().splitlines()[-1]
        assert last.startswith(f"probe: error: 127.0.0.1:{first.port}: ")
        assert "address already in use" in last
    finally:
        assert await first.stop() == 0


async def test_sighup_rotates_the_tokens(tmp_path: Path, lines: list[bytes]) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"iran {TOKEN_OLD}\n")
    server = await serve(tmp_path / "c", "--tokens", str(tokens), log=tmp_path / "log")
    try:
        assert (await upload(server.port, lines[:1], token=TOKEN_OLD)).status == 200
        tokens.write_text(f"iran {TOKEN_NEW}\nlab {TOKEN_NEW}-lab\n")
        server.process.send_signal(signal.SIGHUP)
        for _ in range(100):
            if "tokens reloaded: 2" in server.log_text():
                break
            await asyncio.sleep(0.05)
        assert (await upload(server.port, lines[1:2], token=TOKEN_OLD)).status == 401
        assert (await upload(server.port, lines[1:2], token=TOKEN_NEW)).status == 200
        # a broken file: logged, the tokens in use stay
        tokens.write_text("nonsense\n")
        server.process.send_signal(signal.SIGHUP)
        for _ in range(100):
            if "tokens not reloaded" in server.log_text():
                break
            await asyncio.sleep(0.05)
        assert "tokens not reloaded, the old ones stay in use" in server.log_text()
        assert (await upload(server.port, lines[2:3], token=TOKEN_NEW)).status == 200
    finally:
        assert await server.stop() == 0


async def _traffic(port: int, lines: list[bytes]) -> None:
    await upload(port, lines[:2])
    await request(port, "GET", "/v1/health")
    await request(port, "POST", "/v1/records", jsonl(lines[:2]), {"Content-Type": "text/html"})
    # malformed HTTP: aiohttp's own error line names the client unless told not to
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /v1/records HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    await writer.drain()
    await reader.read()
    writer.close()


async def test_the_log_names_no_client_address(tmp_path: Path, lines: list[bytes]) -> None:
    log = tmp_path / "log"
    server = await serve(tmp_path / "c", log=log)
    await _traffic(server.port, lines)
    assert await server.stop() == 0
    text = log.read_text()
    assert "POST /v1/records 200" in text and "GET /v1/health 200" in text
    assert "POST /v1/records 415" in text
    assert "Error handling request" in text  # the malformed request was logged
    # the only address in the log is the collector's own, in the line saying where it serves
    mentions = [line for line in text.splitlines() if "127.0.0.1" in line]
    assert len(mentions) == 1 and "serving" in mentions[0], mentions


async def test_log_client_addresses_when_asked(tmp_path: Path, lines: list[bytes]) -> None:
    log = tmp_path / "log"
    server = await serve(tmp_path / "c", "--log-client-addresses", log=log)
    await _traffic(server.port, lines)
    assert await server.stop() == 0
    access = [line for line in log.read_text().splitlines() if "/v1/" in line]
    assert access and all("127.0.0.1 " in line for line in access), access
