"""`probe proxy check`: links, the fake-TLS disguise and obfuscated2 with a secret, checked
against a real MTProxy on loopback (tests/servers/mtproxy_server.py) relaying to the fake DC;
hostile proxies; the verdicts; and the secret never appearing in output, records or logs."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import secrets
import struct
import sys
import time
from pathlib import Path

import pytest

from probe import failures
from probe.analysis.mtproxy import FAILS, KIND_FILTERED, WORKS, kinds_summary, proxy_verdicts
from probe.observations.mtproxy import MTProxyAttempt, MTProxyCheck
from probe.steps.dns import Resolver
from probe.steps.mtproxy import FAKE_TLS, PADDED, PLAIN, LinkError, mtproxy_check, parse_link
from probe.steps.mtproxy.faketls import HELLO_WIRE_LENGTH, client_hello, server_hello_matches
from probe.steps.mtproxy.obfuscation import proxy_header
from tests.servers.fake_dc import FakeDC
from tests.servers.mtproxy_server import (
    MTProxyServer,
    _server_hello,
    _sni,
    check_client_hello,
    link,
)

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 1.0
HANG_BOUND = 3 * 3 * TIMEOUT + 2  # three phases (connect, hello, exchange), each bounded
DOMAIN = "www.example.com"
KEY = bytes.fromhex("0123456789abcdef0123456789abcdef")


def secret_for(kind: str, key: bytes = KEY, domain: str = DOMAIN) -> str:
    if kind == PLAIN:
        return key.hex()
    if kind == PADDED:
        return "dd" + key.hex()
    return "ee" + key.hex() + domain.encode().hex()


def no_dns() -> Resolver:
    return Resolver(("127.0.0.1", 9), pool=None)  # links name IP literals: never asked


# --- links -------------------------------------------------------------------------------------


def test_link_forms_and_kinds() -> None:
    plain = parse_link(f"tg://proxy?server=127.0.0.1&port=443&secret={KEY.hex()}")
    assert (plain.server, plain.port, plain.kind, plain.key, plain.domain) == (
        "127.0.0.1", 443, PLAIN, KEY, None,
    )  # fmt: skip
    padded = parse_link(
        f"https://t.me/proxy?server=Proxy.Example.org&port=8443&secret=dd{KEY.hex()}"
    )
    assert (padded.server, padded.kind, padded.key) == ("proxy.example.org", PADDED, KEY)
    fake = parse_link(link("127.0.0.1", 443, secret_for(FAKE_TLS), web=True))
    assert (fake.kind, fake.key, fake.domain) == (FAKE_TLS, KEY, DOMAIN)
    raw = b"\xee" + KEY + DOMAIN.encode()
    for encoded in (
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        base64.b64encode(raw).decode(),
    ):
        assert parse_link(f"t.me/proxy?server=::1&port=1&secret={encoded}").domain == DOMAIN
    assert parse_link(f"tg://proxy?server=[::1]&port=1&secret={KEY.hex()}").described() == "[::1]:1"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (f"tg://socks?server=1.2.3.4&port=1&secret={KEY.hex()}", "SOCKS5"),
        (f"https://example.org/proxy?server=h&port=1&secret={KEY.hex()}", "not an MTProxy link"),
        (f"tg://proxy?port=1&secret={KEY.hex()}", "no server="),
        (f"tg://proxy?server=h&port=70000&secret={KEY.hex()}", "port"),
        (f"tg://proxy?server=h_h&port=1&secret={KEY.hex()}", "server"),
        (f"tg://proxy?server=h&port=1&secret={KEY.hex()[:-2]}", "15 bytes"),
        (f"tg://proxy?server=h&port=1&secret=ee{KEY.hex()}", "no domain"),
        (f"tg://proxy?server=h&port=1&secret=ee{KEY.hex()}{b'1.2.3.4'.hex()}", "host name"),
        (f"tg://proxy?server=h&port=1&secret=ab{KEY.hex()}", "17 bytes"),
        ("tg://proxy?server=h&port=1&secret=%%%", "neither hex nor base64"),
    ],
)
def test_bad_links_are_named_without_the_secret(text: str, problem: str) -> None:
    with pytest.raises(LinkError) as caught:
        parse_link(text)
    assert problem in str(caught.value)
    assert KEY.hex() not in str(caught.value) and KEY.hex()[:10] not in str(caught.value)


def test_the_key_is_not_in_the_links_repr() -> None:
    proxy = parse_link(link("127.0.0.1", 443, secret_for(FAKE_TLS)))
    assert KEY.hex() not in repr(proxy) and str(KEY) not in repr(proxy)


# --- fake-TLS and obfuscated2, against the test server's independent code -------------------


def test_client_hello_is_browser_sized_and_signed_with_the_secret() -> None:
    now = int(time.time())
    hello, random = client_hello(DOMAIN, KEY, now)
    assert len(hello) == HELLO_WIRE_LENGTH
    assert hello[:11] == bytes.fromhex("1603010200010001fc0303")
    assert hello[11:43] == random and hello[43] == 32
    assert _sni(hello) == DOMAIN
    assert check_client_hello(hello, KEY, DOMAIN, now) is None
    assert check_client_hello(hello, secrets.token_bytes(16), DOMAIN, now) is not None
    assert check_client_hello(hello, KEY, "other.example", now) is not None
    assert "timestamp" in (check_client_hello(hello, KEY, DOMAIN, now + 3600) or "")


def test_long_domains_still_make_a_valid_hello() -> None:
    domain = ".".join(["a" * 60] * 4)
    hello, _ = client_hello(domain, KEY, 0)
    assert len(hello) > HELLO_WIRE_LENGTH and _sni(hello) == domain
    assert struct.unpack(">H", hello[3:5])[0] == len(hello) - 5


def test_server_hello_check_accepts_only_the_secrets_signature() -> None:
    hello, random = client_hello(DOMAIN, KEY, int(time.time()))
    assert server_hello_matches(_server_hello(hello, KEY, sign=True), random, KEY)
    assert not server_hello_matches(_server_hello(hello, KEY, sign=False), random, KEY)
    other = secrets.token_bytes(16)
    assert not server_hello_matches(_server_hello(hello, other, sign=True), random, KEY)


def test_obfuscation_header_keys_follow_the_secret() -> None:
    header = bytes(range(1, 65))
    wire, encryptor, _ = proxy_header(KEY, b"\xdd\xdd\xdd\xdd", 2, header)
    assert wire[:56] == header[:56]
    import hashlib

    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = hashlib.sha256(header[8:40] + KEY).digest()
    reference = Cipher(algorithms.AES(key), modes.CTR(header[40:56])).encryptor()
    plain = bytearray(header)
    plain[56:60] = b"\xdd\xdd\xdd\xdd"
    plain[60:62] = struct.pack("<h", 2)
    assert wire[56:] == reference.update(bytes(plain))[56:]
    assert encryptor.update(b"abc") == reference.update(b"abc")


# --- through a real proxy to the fake DC ------------------------------------------------------


@pytest.mark.parametrize("kind", [PLAIN, PADDED, FAKE_TLS])
async def test_each_kind_gets_a_resPQ_through_the_proxy(kind: str) -> None:
    async with (
        FakeDC(ports=(0,)) as dc,
        MTProxyServer(KEY, upstream=("127.0.0.1", dc.ports[0]), domain=DOMAIN) as proxy,
    ):
        check = await mtproxy_check(
            parse_link(link("127.0.0.1", proxy.port, secret_for(kind))),
            resolver=no_dns(),
            timeout=TIMEOUT,
            dc=4,
        )
    assert check.success and check.failure is None
    attempt = check.attempts[0]
    assert attempt.mtproto is not None and attempt.mtproto.reply == "res_pq"
    assert attempt.mtproto.known_key is True
    assert attempt.fake_tls_verified is (True if kind == FAKE_TLS else None)
    # the proxy read our tag and DC id with the secret; the DC got a well-formed request
    assert proxy.connections[0].kind == ("fake_tls" if kind == FAKE_TLS else "obfuscated2")
    assert proxy.connections[0].tag == (b"\xee" * 4 if kind == PLAIN else b"\xdd" * 4)
    assert proxy.connections[0].dc == 4
    assert [(c.dc, c.rejected) for c in dc.connections] == [(4, None)]
    assert dc.connections[0].nonce is not None


async def test_a_transport_error_from_the_dc_counts_as_getting_through() -> None:
    async with (
        FakeDC(ports=(0,), mode="error_404") as dc,
        MTProxyServer(KEY, upstream=("127.0.0.1", dc.ports[0]), domain=DOMAIN) as proxy,
    ):
        check = await mtproxy_check(
            parse_link(link("127.0.0.1", proxy.port, secret_for(PADDED))),
            resolver=no_dns(),
            timeout=TIMEOUT,
        )
    assert check.success
    assert check.attempts[0].mtproto is not None
    assert check.attempts[0].mtproto.error_code == -404


HOSTILE = [
    # (proxy mode, link kind, failure, failed_operation)
    ("wrong_hmac", FAKE_TLS, failures.MTPROXY_FAKE_TLS_MISMATCH, failures.MTPROXY_FAKE_TLS),
    ("silent", FAKE_TLS, failures.GENERIC_TIMEOUT, failures.MTPROXY_FAKE_TLS),
    ("silent", PADDED, failures.GENERIC_TIMEOUT, failures.MTPROTO_HANDSHAKE),
    ("reset", FAKE_TLS, failures.CONNECTION_RESET, failures.MTPROXY_FAKE_TLS),
    ("reset", PLAIN, failures.CONNECTION_RESET, failures.MTPROTO_HANDSHAKE),
    ("garbage", FAKE_TLS, failures.MTPROTO_FOREIGN_REPLY, failures.MTPROXY_FAKE_TLS),
    ("garbage", PADDED, failures.MTPROTO_FOREIGN_REPLY, failures.MTPROTO_HANDSHAKE),
    ("http", PLAIN, failures.MTPROTO_FOREIGN_REPLY, failures.MTPROTO_HANDSHAKE),
    ("http", FAKE_TLS, failures.MTPROTO_FOREIGN_REPLY, failures.MTPROXY_FAKE_TLS),
]


@pytest.mark.parametrize(("mode", "kind", "failure", "operation"), HOSTILE)
async def test_hostile_proxies_are_failures_not_hangs(
    mode: str, kind: str, failure: str, operation: str
) -> None:
    async with (
        FakeDC(ports=(0,)) as dc,
        MTProxyServer(KEY, upstream=("127.0.0.1", dc.ports[0]), domain=DOMAIN, mode=mode) as proxy,
    ):
        started = time.monotonic()
        check = await mtproxy_check(
            parse_link(link("127.0.0.1", proxy.port, secret_for(kind))),
            resolver=no_dns(),
            timeout=TIMEOUT,
        )
        assert time.monotonic() - started < HANG_BOUND
    attempt = check.attempts[0]
    assert (check.success, attempt.failure, attempt.failed_operation) == (False, failure, operation)
    if mode == "http":
        assert attempt.first_bytes is not None
        assert bytes.fromhex(attempt.first_bytes).startswith(b"HTTP/1.1 403")
    assert dc.connections == []  # nothing reached the DC


@pytest.mark.parametrize("kind", [PLAIN, PADDED, FAKE_TLS])
async def test_a_wrong_secret_does_not_get_through(kind: str) -> None:
    async with (
        FakeDC(ports=(0,)) as dc,
        MTProxyServer(KEY, upstream=("127.0.0.1", dc.ports[0]), domain=DOMAIN) as proxy,
    ):
        wrong = secret_for(kind, key=secrets.token_bytes(16))
        check = await mtproxy_check(
            parse_link(link("127.0.0.1", proxy.port, wrong)), resolver=no_dns(), timeout=TIMEOUT
        )
    assert not check.success
    assert check.failure in (failures.EOF_ERROR, failures.CONNECTION_RESET)
    assert proxy.connections[0].rejected is not None and dc.connections == []


async def test_a_tls_only_proxy_refuses_plain_obfuscated2() -> None:
    async with (
        FakeDC(ports=(0,)) as dc,
        MTProxyServer(
            KEY, upstream=("127.0.0.1", dc.ports[0]), domain=DOMAIN, tls_only=True
        ) as proxy,
    ):
        checks = [
            await mtproxy_check(
                parse_link(link("127.0.0.1", proxy.port, secret_for(kind))),
                resolver=no_dns(),
                timeout=TIMEOUT,
            )
            for kind in (FAKE_TLS, PADDED)
        ]
    assert [c.success for c in checks] == [True, False]
    verdicts = proxy_verdicts(checks)
    assert [v.status for v in verdicts] == [WORKS, KIND_FILTERED]
    assert kinds_summary(verdicts) == ([FAKE_TLS], [PADDED])


async def test_a_closed_port_is_a_connect_failure() -> None:
    import socket

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    check = await mtproxy_check(
        parse_link(link("127.0.0.1", port, secret_for(PLAIN))), resolver=no_dns(), timeout=TIMEOUT
    )
    assert check.attempts[0].failure == failures.CONNECTION_REFUSED
    assert check.attempts[0].failed_operation == failures.CONNECT
    [verdict] = proxy_verdicts([check])
    assert verdict.status == FAILS and "no connection" in verdict.reason.english()


# --- verdicts from hand-built observations ------------------------------------------------------


def _check(
    kind: str, success: bool, failure: str | None = None, op: str | None = None
) -> MTProxyCheck:
    attempt = MTProxyAttempt("198.51.100.1:443", success, failure, op)
    return MTProxyCheck("proxy.example.org:443", kind, attempts=[attempt])


def test_verdicts_in_plain_words() -> None:
    checks = [
        _check(FAKE_TLS, False, failures.GENERIC_TIMEOUT, failures.MTPROXY_FAKE_TLS),
        _check(PADDED, True),
        _check(PLAIN, False, failures.MTPROXY_FAKE_TLS_MISMATCH, failures.MTPROXY_FAKE_TLS),
    ]
    fake, padded, plain = proxy_verdicts(checks)
    assert fake.status == KIND_FILTERED
    assert "disguised TLS hello got no answer" in fake.reason.english()
    assert "padded (dd secret) to the same proxy got through" in fake.reason.english()
    assert padded.status == WORKS
    assert "signature" in plain.reason.english()
    # no kind works: each fails alone, none is called filtered
    alone = proxy_verdicts([checks[0], checks[2]])
    assert [v.status for v in alone] == [FAILS, FAILS]
    assert kinds_summary(alone) == ([], [FAKE_TLS, PLAIN])


# --- the command: plain words, JSON, and the secret nowhere ------------------------------------


async def _probe(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    env = {**os.environ, "PROBE_ACCEPT_RISKS": "1", "HOME": "/nonexistent-home"}
    env.pop("PROBE_CONFIG", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "probe", "--lang", "en", "proxy", "check", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=REPO, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(stdin), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def _secret_spellings(secret_hex: str) -> list[str]:
    raw = bytes.fromhex(secret_hex)
    return [
        secret_hex,
        secret_hex.upper(),
        KEY.hex(),
        KEY.hex()[:16],
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        base64.b64encode(KEY).decode().rstrip("="),
    ]


async def test_the_command_names_kinds_and_never_shows_the_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with (
        FakeDC(ports=(0,)) as dc,
        MTProxyServer(
            KEY, upstream=("127.0.0.1", dc.ports[0]), domain=DOMAIN, tls_only=True
        ) as proxy,
    ):
        links = [link("127.0.0.1", proxy.port, secret_for(k)) for k in (FAKE_TLS, PADDED)]
        status, out, err = await _probe("--timeout", "1", *links)
        json_status, json_out, json_err = await _probe(
            "--json", "--timeout", "1", "-", stdin="\n".join(links).encode()
        )
    assert status == 0 and json_status == 0, err + json_err
    assert "works" in out and "does not work from here" in out
    assert "Proxy kinds that got through: fake-TLS (ee secret)." in out
    assert "Proxy kinds that did not: padded (dd secret)." in out
    records = [json.loads(line) for line in json_out.splitlines()]
    assert [(r["kind"], r["success"], r["verdict"]["status"]) for r in records] == [
        (FAKE_TLS, True, WORKS),
        (PADDED, False, KIND_FILTERED),
    ]
    assert records[0]["attempts"][0]["mtproto"]["reply"] == "res_pq"
    everything = out + err + json_out + json_err + caplog.text
    for secret in (secret_for(FAKE_TLS), secret_for(PADDED)):
        for spelling in _secret_spellings(secret):
            assert spelling not in everything
    assert "secret=" not in everything


async def test_a_bad_link_is_one_line_exit_2_without_the_secret() -> None:
    good = link("127.0.0.1", 9, secret_for(PLAIN))
    bad = f"tg://proxy?server=127.0.0.1&port=9&secret=ab{KEY.hex()}"
    status, out, err = await _probe(good, bad)
    assert status == 2 and out == ""
    assert err.strip().count("\n") == 0 and "link 2:" in err
    assert KEY.hex() not in err


async def test_a_proxy_named_by_host_is_resolved_with_the_runs_resolver() -> None:
    from tests.servers.dns_server import DNSServer

    zone = {"proxy.test": {"A": ["127.0.0.1"], "ttl": 60}}
    async with (
        DNSServer(zone) as resolver_server,
        FakeDC(ports=(0,)) as dc,
        MTProxyServer(KEY, upstream=("127.0.0.1", dc.ports[0]), domain=DOMAIN) as proxy,
    ):
        check = await mtproxy_check(
            parse_link(link("proxy.test", proxy.port, secret_for(FAKE_TLS))),
            resolver=Resolver(resolver_server.address, pool=None),
            timeout=TIMEOUT,
        )
        missing = await mtproxy_check(
            parse_link(link("nowhere.test", proxy.port, secret_for(FAKE_TLS))),
            resolver=Resolver(resolver_server.address, pool=None),
            timeout=TIMEOUT,
        )
    assert check.success and check.proxy == f"proxy.test:{proxy.port}"
    assert [q.hostname for q in check.queries] == ["proxy.test", "proxy.test"]
    assert missing.attempts == [] and missing.failure == failures.DNS_NXDOMAIN
    [verdict] = proxy_verdicts([missing])
    assert "did not resolve" in verdict.reason.english()
