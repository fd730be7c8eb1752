"""The verdict rules, as a table of hand-built records (no network: analysis is pure).

Each case builds a record from observation dataclasses with the small builders below and states
the verdict a researcher should read: status, blocking layer, confirmed, and one word the reason
must contain (so the reason names the evidence, not just the outcome).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

import pytest

from probe import failures as F
from probe.analysis import analyze, http_differences
from probe.analysis.fingerprints import default_db
from probe.observations import (
    DNSAnswer,
    DNSQuery,
    HTTPTransaction,
    MTProtoHandshake,
    Observations,
    TCPConnect,
    TLSHandshake,
    format_address,
)

# --- builders -------------------------------------------------------------------------------

IRAN_BLOCKPAGE = (
    '<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1256">'
    "<title>M1-6\n</title></head><body><iframe "
    'src="http://10.10.34.36/?type=Invalid Keyword&policy=MainPolicy " style="width: 100%; '
    'height: 100%" scrolling="no" marginwidth="0" marginheight="0" frameborder="0" vspace="0" '
    'hspace="0"></iframe></body></html>'
)
PAGE = "<html><head><title>Telegram Web Application</title></head><body>" + "x" * 4000 + "</body>"


def q(
    host: str,
    *ips: str,
    engine: str = "getaddrinfo",
    failure: str | None = None,
    asn: int | None = None,
    qtype: str = "ANY",
    duplicate: bool = False,
) -> DNSQuery:
    answers = [
        DNSAnswer("AAAA" if ":" in ip else "A", **{("ipv6" if ":" in ip else "ipv4"): ip}, asn=asn)
        for ip in ips
    ]
    return DNSQuery(host, qtype, engine, "", answers, failure=failure, x_duplicate=duplicate)


def tcp(ip: str, port: int = 443, failure: str | None = None, tid: int = 1) -> TCPConnect:
    return TCPConnect(ip, port, failure is None, failure, transaction_id=tid)


def tls(
    ip: str, name: str, port: int = 443, failure: str | None = None, tid: int = 1
) -> TLSHandshake:
    return TLSHandshake(
        format_address(ip, port),
        name,
        failure=failure,
        failed_operation=F.TLS_HANDSHAKE if failure else None,
        transaction_id=tid,
    )


def http(
    url: str,
    ip: str,
    port: int = 443,
    code: int | None = 200,
    body: str | None = PAGE,
    failure: str | None = None,
    tid: int = 1,
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "text/html"),),
) -> HTTPTransaction:
    return HTTPTransaction(
        url,
        address=format_address(ip, port),
        response_code=None if failure else code,
        response_headers=list(headers),
        body=None if failure else body,
        body_length=None if failure or body is None else len(body),
        failure=failure,
        failed_operation=F.HTTP_ROUND_TRIP if failure else None,
        transaction_id=tid,
    )


def control_http(
    url: str, ip: str, port: int = 443, code: int = 200, body: str = PAGE, tid: int = 1
):
    """The control never sends bodies: only length, title and headers."""
    t = http(url, ip, port, code, body, tid=tid)
    t.body = None
    t.title = "Telegram Web Application" if body == PAGE else None
    return t


def mt(
    ip: str, transport: str, port: int = 443, failure: str | None = None, tid: int = 1
) -> MTProtoHandshake:
    return MTProtoHandshake(
        format_address(ip, port),
        transport,
        success=failure is None,
        failure=failure,
        failed_operation=F.MTPROTO_HANDSHAKE if failure else None,
        reply="res_pq" if failure is None else None,
        transaction_id=tid,
    )


def obs(*items: Any) -> Observations:
    o = Observations()
    for item in items:
        {
            DNSQuery: o.queries,
            TCPConnect: o.tcp_connect,
            TLSHandshake: o.tls_handshakes,
            HTTPTransaction: o.requests,
            MTProtoHandshake: o.mtproto,
        }[type(item)].append(item)
    return o


NO_CONTROL = object()


def record(
    target: dict[str, Any],
    probe: Observations,
    control: Observations | object | None = NO_CONTROL,
    *,
    control_failure: str | None = None,
    vantage: dict[str, Any] | None = None,
    doh: list[DNSQuery] | None = None,
    probe_cc: str = "IR",
) -> dict[str, Any]:
    control_dict = None if control is NO_CONTROL or control is None else control.to_dict()  # type: ignore[union-attr]
    test_keys = {
        "target": target,
        **probe.to_dict(),
        "control": control_dict,
        "control_failure": control_failure,
        "x_vantage": vantage
        or {
            "baseline_ok": 3,
            "baseline_total": 4,
            "control_reachable": control_dict is not None,
            "ipv6_ok": True,
        },
    }
    if doh is not None:
        test_keys["x_doh"] = [d.to_dict() for d in doh]
    return {
        "software_name": "probe",
        "test_name": target["service"],
        "input": target["id"],
        "probe_cc": probe_cc,
        "probe_asn": "AS58224",
        "test_keys": test_keys,
    }


WEB = {
    "id": "telegram/web",
    "service": "telegram",
    "check": "https",
    "url": "https://web.telegram.org/",
}
WEB_URL = WEB["url"]
WEB_HOST = "web.telegram.org"
WEB_IP = "149.154.167.99"
DC2 = {
    "id": "telegram/dc2",
    "service": "telegram",
    "check": "mtproto",
    "host": "149.154.167.51",
    "ports": [443],
    "transports": ["obfuscated2", "intermediate"],
}
DC2_IP = "149.154.167.51"
DC_ALL_PORTS = {**DC2, "ports": [443, 80, 5222]}
DC2_V6 = {**DC2, "id": "telegram/dc2-v6", "host": "2001:67c:4e8:f002::a"}
DC2_V6_IP = "2001:67c:4e8:f002::a"
DC_HTTP = {  # how OONI measures a data centre: HTTP POST to the IP
    "id": "telegram/dc2",
    "service": "telegram",
    "check": "tcp",
    "host": DC2_IP,
    "ports": [80],
}
FB = {
    "id": "facebook_messenger/b-api",
    "service": "facebook_messenger",
    "check": "tcp",
    "host": "b-api.facebook.com",
    "ports": [443],
    "expect_asn": [32934],
}
STUN = {
    "id": "facebook_messenger/stun",
    "service": "facebook_messenger",
    "check": "dns",
    "host": "stun.fbsbx.com",
    "expect_asn": [32934],
}
TCP_TARGET_NAMED = {
    "id": "itest/svc",
    "service": "itest",
    "check": "tcp",
    "host": "svc.example",
    "ports": [443],
}
SITE = {"id": "web/site", "service": "web", "check": "http", "url": "http://example.org/"}
SITE_IP = "93.184.216.34"
WA = {
    "id": "whatsapp/e1",
    "service": "whatsapp",
    "check": "tcp",
    "host": "e1.whatsapp.net",
    "ports": [443],
}


def web_ok(ip: str = WEB_IP, tid: int = 1) -> list[Any]:
    """A clean HTTPS fetch of web.telegram.org on `ip`."""
    return [tcp(ip, tid=tid), tls(ip, WEB_HOST, tid=tid), http(WEB_URL, ip, tid=tid)]


def web_control(ip: str = WEB_IP) -> Observations:
    return obs(
        q(WEB_HOST, ip, asn=62041, engine="udp"),
        tcp(ip),
        tls(ip, WEB_HOST),
        control_http(WEB_URL, ip),
    )


def dc_control(*transports: str, ip: str = DC2_IP) -> Observations:
    return obs(tcp(ip), *[mt(ip, t) for t in transports])


# --- the table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    record: dict[str, Any]
    status: str
    blocking: str | None
    confirmed: bool
    word: str


CASES = [
    # --- DNS -----------------------------------------------------------------------------
    Case(
        "dns: Iran's injected 10.10.34.36 (national fingerprint)",
        record(
            WEB,
            obs(q(WEB_HOST, "10.10.34.36"), tcp("10.10.34.36", failure=F.GENERIC_TIMEOUT)),
            web_control(),
        ),
        "blocked",
        "dns",
        True,
        "10.10.34.36",
    ),
    Case(
        "dns: Iran's IPv6 injection 2001:4188:2:600:10:10:34:36 (project fingerprint file)",
        record(WEB, obs(q(WEB_HOST, "2001:4188:2:600:10:10:34:36", qtype="AAAA")), web_control()),
        "blocked",
        "dns",
        True,
        "probe.ir_ipv6_36",
    ),
    Case(
        "dns: Iran's d0::11, written in full",
        record(WEB, obs(q(WEB_HOST, "d0:0:0:0:0:0:0:11", qtype="AAAA")), web_control()),
        "blocked",
        "dns",
        True,
        "d0::11",
    ),
    Case(
        "dns: an injected duplicate reply racing the genuine one",
        record(
            WEB,
            obs(
                q(WEB_HOST, WEB_IP, engine="udp", qtype="A"),
                q(WEB_HOST, "10.10.34.35", engine="udp", qtype="A", duplicate=True),
                *web_ok(),
            ),
            web_control(),
        ),
        "blocked",
        "dns",
        True,
        "10.10.34.35",
    ),
    Case(
        "dns: a bogon the control does not return",
        record(
            WEB,
            obs(q(WEB_HOST, "100.64.1.1"), tcp("100.64.1.1", failure=F.CONNECTION_REFUSED)),
            web_control(),
        ),
        "blocked",
        "dns",
        False,
        "private or reserved",
    ),
    Case(
        "dns: a bogon the control returns too is just how the name resolves",
        record(
            WEB,
            obs(q(WEB_HOST, "198.18.0.5"), *web_ok("198.18.0.5")),
            obs(
                q(WEB_HOST, "198.18.0.5"),
                tcp("198.18.0.5"),
                tls("198.18.0.5", WEB_HOST),
                control_http(WEB_URL, "198.18.0.5"),
            ),
        ),
        "ok",
        None,
        False,
        "verified",
    ),
    Case(
        "dns: a bogon without any control is only suspicious",
        record(STUN, obs(q("stun.fbsbx.com", "127.0.0.1")), None),
        "inconclusive",
        None,
        False,
        "no control",
    ),
    Case(
        "dns: a bogon without control, and the connection to it fails: doubt, not blocking",
        record(
            TCP_TARGET_NAMED,
            obs(q("svc.example", "127.0.0.1"), tcp("127.0.0.1", failure=F.CONNECTION_REFUSED)),
            None,
        ),
        "inconclusive",
        None,
        False,
        "DNS for svc.example answered 127.0.0.1",
    ),
    Case(
        "dns: NXDOMAIN here, a good answer at the control",
        record(WEB, obs(q(WEB_HOST, failure=F.DNS_NXDOMAIN)), web_control()),
        "blocked",
        "dns",
        False,
        "dns_nxdomain_error",
    ),
    Case(
        "dns: timeout here, a good answer at the control",
        record(WEB, obs(q(WEB_HOST, failure=F.GENERIC_TIMEOUT)), web_control()),
        "blocked",
        "dns",
        False,
        "generic_timeout_error",
    ),
    Case(
        "dns: no answer here (the system resolver) while UDP answered and the control resolved",
        record(
            WEB,
            obs(
                q(WEB_HOST, failure=F.DNS_NO_ANSWER),
                q(WEB_HOST, WEB_IP, engine="udp", qtype="A"),
                *web_ok(),
            ),
            web_control(),
        ),
        "blocked",
        "dns",
        False,
        "system resolver",
    ),
    Case(
        "dns: NXDOMAIN here and at the control → down",
        record(
            WEB, obs(q(WEB_HOST, failure=F.DNS_NXDOMAIN)), obs(q(WEB_HOST, failure=F.DNS_NXDOMAIN))
        ),
        "down",
        None,
        False,
        "does not resolve",
    ),
    Case(
        "dns: an answer for a name that does not exist at the control (ghost DNS)",
        record(
            WEB,
            obs(q(WEB_HOST, "83.224.65.41"), tcp("83.224.65.41", failure=F.CONNECTION_REFUSED)),
            obs(q(WEB_HOST, failure=F.DNS_NXDOMAIN)),
        ),
        "blocked",
        "dns",
        False,
        "does not exist",
    ),
    Case(
        "dns: no shared address and no shared network with the control",
        record(
            WEB,
            obs(
                q(WEB_HOST, "1.2.3.5", asn=1111),
                tcp("1.2.3.5"),
                tls("1.2.3.5", WEB_HOST, failure=F.SSL_UNKNOWN_AUTHORITY),
            ),
            web_control(),
        ),
        "blocked",
        "dns",
        False,
        "no network",
    ),
    Case(
        "dns: another address in the same network is fine (CDNs)",
        record(
            WEB,
            obs(q(WEB_HOST, "149.154.167.98", asn=62041), *web_ok("149.154.167.98")),
            web_control(),
        ),
        "ok",
        None,
        False,
        "verified",
    ),
    Case(
        "dns: unknown ASNs never count as a mismatch",
        record(
            WA,
            obs(q("e1.whatsapp.net", "5.6.7.8"), tcp("5.6.7.8")),
            obs(q("e1.whatsapp.net", "9.9.9.9"), tcp("9.9.9.9")),
        ),
        "ok",
        None,
        False,
        "succeeded",
    ),
    Case(
        "dns: a known ASN outside expect_asn (no control needed)",
        record(FB, obs(q("b-api.facebook.com", "5.5.5.5", asn=12880), tcp("5.5.5.5")), None),
        "blocked",
        "dns",
        False,
        "AS12880",
    ),
    Case(
        "dns: an unknown ASN is ignored by expect_asn",
        record(
            FB,
            obs(q("b-api.facebook.com", "31.13.72.36"), tcp("31.13.72.36")),
            obs(q("b-api.facebook.com", "31.13.72.36"), tcp("31.13.72.36")),
        ),
        "ok",
        None,
        False,
        "succeeded",
    ),
    Case(
        "dns: rehabilitation: a certificate verified for the name on the answered address",
        record(WEB, obs(q(WEB_HOST, "1.2.3.5", asn=1111), *web_ok("1.2.3.5")), web_control()),
        "ok",
        None,
        False,
        "verified",
    ),
    Case(
        "dns: disagreement with DNS over HTTPS when no control answered",
        record(
            WEB,
            obs(q(WEB_HOST, "5.5.5.5", asn=4444), tcp("5.5.5.5", failure=F.GENERIC_TIMEOUT)),
            None,
            control_failure=F.GENERIC_TIMEOUT,
            doh=[q(WEB_HOST, WEB_IP, engine="doh", asn=62041, qtype="A")],
        ),
        "blocked",
        "dns",
        False,
        "DNS over HTTPS",
    ),
    Case(
        "dns: a DNS-only target consistent with the control",
        record(
            STUN, obs(q("stun.fbsbx.com", "157.240.1.1")), obs(q("stun.fbsbx.com", "157.240.1.1"))
        ),
        "ok",
        None,
        False,
        "consistent",
    ),
    # --- TCP -----------------------------------------------------------------------------
    Case(
        "tcp: timeout here, the control connects",
        record(
            DC2,
            obs(tcp(DC2_IP, failure=F.GENERIC_TIMEOUT)),
            dc_control("obfuscated2", "intermediate"),
        ),
        "blocked",
        "tcp",
        False,
        "generic_timeout_error",
    ),
    Case(
        "tcp: refused here, the control connects",
        record(DC2, obs(tcp(DC2_IP, failure=F.CONNECTION_REFUSED)), dc_control("obfuscated2")),
        "blocked",
        "tcp",
        False,
        "connection_refused",
    ),
    Case(
        "tcp: reset here, the control connects",
        record(DC2, obs(tcp(DC2_IP, failure=F.CONNECTION_RESET)), dc_control("obfuscated2")),
        "blocked",
        "tcp",
        False,
        "connection_reset",
    ),
    Case(
        "tcp: a stale address the control cannot reach either → down (OONI false positive)",
        record(
            DC2,
            obs(tcp(DC2_IP, failure=F.GENERIC_TIMEOUT)),
            obs(tcp(DC2_IP, failure=F.GENERIC_TIMEOUT)),
        ),
        "down",
        None,
        False,
        "control too",
    ),
    Case(
        "tcp: a failure without a control proves nothing",
        record(DC2, obs(tcp(DC2_IP, failure=F.GENERIC_TIMEOUT)), None),
        "inconclusive",
        None,
        False,
        "no control",
    ),
    Case(
        "tcp: one endpoint among many failing at the control too is down, the target ok "
        "(OONI false positive)",
        record(
            DC_ALL_PORTS,
            obs(
                tcp(DC2_IP, 443, F.GENERIC_TIMEOUT, tid=1),
                tcp(DC2_IP, 80, tid=2),
                mt(DC2_IP, "obfuscated2", 80, tid=2),
                tcp(DC2_IP, 5222, tid=3),
                mt(DC2_IP, "obfuscated2", 5222, tid=3),
            ),
            obs(
                tcp(DC2_IP, 443, F.GENERIC_TIMEOUT, tid=1),
                tcp(DC2_IP, 80, tid=2),
                mt(DC2_IP, "obfuscated2", 80, tid=2),
                tcp(DC2_IP, 5222, tid=3),
                mt(DC2_IP, "obfuscated2", 5222, tid=3),
            ),
        ),
        "ok",
        None,
        False,
        "down, not blocked",
    ),
    Case(
        "tcp: an IPv6 endpoint on a vantage without IPv6",
        record(
            DC2_V6,
            obs(tcp(DC2_V6_IP, failure=F.NETWORK_UNREACHABLE)),
            dc_control("obfuscated2", ip=DC2_V6_IP),
            vantage={
                "baseline_ok": 2,
                "baseline_total": 4,
                "control_reachable": True,
                "ipv6_ok": False,
            },
        ),
        "inconclusive",
        None,
        False,
        "IPv6",
    ),
    Case(
        "tcp: the same IPv6 failure on a vantage with IPv6 is blocking",
        record(
            DC2_V6,
            obs(tcp(DC2_V6_IP, failure=F.GENERIC_TIMEOUT)),
            dc_control("obfuscated2", ip=DC2_V6_IP),
        ),
        "blocked",
        "tcp",
        False,
        "generic_timeout_error",
    ),
    Case(
        "vantage offline: baselines and control all unreachable → never blocked",
        record(
            DC2,
            obs(tcp(DC2_IP, failure=F.GENERIC_TIMEOUT)),
            None,
            control_failure=F.GENERIC_TIMEOUT,
            vantage={
                "baseline_ok": 0,
                "baseline_total": 4,
                "control_reachable": False,
                "ipv6_ok": None,
            },
        ),
        "inconclusive",
        None,
        False,
        "offline",
    ),
    Case(
        "vantage offline: even a fingerprinted DNS answer is not called blocked",
        record(
            WEB,
            obs(q(WEB_HOST, "10.10.34.36"), tcp("10.10.34.36", failure=F.GENERIC_TIMEOUT)),
            None,
            vantage={
                "baseline_ok": 0,
                "baseline_total": 4,
                "control_reachable": False,
                "ipv6_ok": None,
            },
        ),
        "inconclusive",
        None,
        False,
        "offline",
    ),
    # --- TLS -----------------------------------------------------------------------------
    Case(
        "tls: reset during the handshake, the control completes it",
        record(
            WEB,
            obs(
                q(WEB_HOST, WEB_IP), tcp(WEB_IP), tls(WEB_IP, WEB_HOST, failure=F.CONNECTION_RESET)
            ),
            web_control(),
        ),
        "blocked",
        "tls",
        False,
        "connection_reset",
    ),
    Case(
        "tls: silence during the handshake, the control completes it",
        record(
            WEB,
            obs(q(WEB_HOST, WEB_IP), tcp(WEB_IP), tls(WEB_IP, WEB_HOST, failure=F.GENERIC_TIMEOUT)),
            web_control(),
        ),
        "blocked",
        "tls",
        False,
        "TLS handshake",
    ),
    Case(
        "tls: EOF during the handshake, the control completes it",
        record(
            WEB,
            obs(q(WEB_HOST, WEB_IP), tcp(WEB_IP), tls(WEB_IP, WEB_HOST, failure=F.EOF_ERROR)),
            web_control(),
        ),
        "blocked",
        "tls",
        False,
        "eof_error",
    ),
    Case(
        "tls: a certificate that fails here but verifies at the control (man in the middle)",
        record(
            WEB,
            obs(
                q(WEB_HOST, WEB_IP),
                tcp(WEB_IP),
                tls(WEB_IP, WEB_HOST, failure=F.SSL_UNKNOWN_AUTHORITY),
            ),
            web_control(),
        ),
        "blocked",
        "tls",
        False,
        "man in the middle",
    ),
    Case(
        "tls: a bad certificate at the control too → down (misconfigured service)",
        record(
            WEB,
            obs(
                q(WEB_HOST, WEB_IP),
                tcp(WEB_IP),
                tls(WEB_IP, WEB_HOST, failure=F.SSL_INVALID_CERTIFICATE),
            ),
            obs(
                q(WEB_HOST, WEB_IP),
                tcp(WEB_IP),
                tls(WEB_IP, WEB_HOST, failure=F.SSL_INVALID_CERTIFICATE),
            ),
        ),
        "down",
        None,
        False,
        "ssl_invalid_certificate",
    ),
    Case(
        "tls: a reset without a control is inconclusive",
        record(
            WEB,
            obs(
                q(WEB_HOST, WEB_IP), tcp(WEB_IP), tls(WEB_IP, WEB_HOST, failure=F.CONNECTION_RESET)
            ),
            None,
        ),
        "inconclusive",
        None,
        False,
        "no control",
    ),
    Case(
        "tls: a verified handshake needs no control",
        record(
            WEB, obs(q(WEB_HOST, WEB_IP), *web_ok()), None, control_failure=F.CONNECTION_REFUSED
        ),
        "ok",
        None,
        False,
        "verified",
    ),
    # --- HTTP ----------------------------------------------------------------------------
    Case(
        "http-failure: reset after a good handshake, the control fetched the page",
        record(
            WEB,
            obs(
                q(WEB_HOST, WEB_IP),
                tcp(WEB_IP),
                tls(WEB_IP, WEB_HOST),
                http(WEB_URL, WEB_IP, failure=F.CONNECTION_RESET),
            ),
            web_control(),
        ),
        "blocked",
        "http-failure",
        False,
        "connection_reset",
    ),
    Case(
        "http-failure: the fetch fails at the control too → down",
        record(
            WEB,
            obs(
                q(WEB_HOST, WEB_IP),
                tcp(WEB_IP),
                tls(WEB_IP, WEB_HOST),
                http(WEB_URL, WEB_IP, failure=F.GENERIC_TIMEOUT),
            ),
            obs(
                q(WEB_HOST, WEB_IP),
                tcp(WEB_IP),
                tls(WEB_IP, WEB_HOST),
                http(WEB_URL, WEB_IP, failure=F.GENERIC_TIMEOUT),
            ),
        ),
        "down",
        None,
        False,
        "control too",
    ),
    Case(
        "http-diff: Iran's 403 iframe blockpage",
        record(
            SITE,
            obs(
                q("example.org", SITE_IP),
                tcp(SITE_IP, 80),
                http(SITE["url"], SITE_IP, 80, 403, IRAN_BLOCKPAGE),
            ),
            obs(
                q("example.org", SITE_IP), tcp(SITE_IP, 80), control_http(SITE["url"], SITE_IP, 80)
            ),
        ),
        "blocked",
        "http-diff",
        True,
        "blockpage",
    ),
    Case(
        "http-diff: a blockpage fingerprint stands without a control",
        record(
            SITE,
            obs(
                q("example.org", SITE_IP),
                tcp(SITE_IP, 80),
                http(SITE["url"], SITE_IP, 80, 403, IRAN_BLOCKPAGE),
            ),
            None,
        ),
        "blocked",
        "http-diff",
        True,
        "fingerprint",
    ),
    Case(
        "http-diff: another page than the control's (status, body, title)",
        record(
            SITE,
            obs(
                q("example.org", SITE_IP),
                tcp(SITE_IP, 80),
                http(SITE["url"], SITE_IP, 80, 200, "<title>Forbidden by policy</title>tiny"),
            ),
            obs(
                q("example.org", SITE_IP), tcp(SITE_IP, 80), control_http(SITE["url"], SITE_IP, 80)
            ),
        ),
        "blocked",
        "http-diff",
        False,
        "title",
    ),
    Case(
        "http: the same page as the control",
        record(
            SITE,
            obs(q("example.org", SITE_IP), tcp(SITE_IP, 80), http(SITE["url"], SITE_IP, 80)),
            obs(
                q("example.org", SITE_IP), tcp(SITE_IP, 80), control_http(SITE["url"], SITE_IP, 80)
            ),
        ),
        "ok",
        None,
        False,
        "same page",
    ),
    Case(
        "http: a known false-positive page (scope fp) is not a blockpage",
        record(
            DC_HTTP,
            obs(
                tcp(DC2_IP, 80),
                http(
                    "http://149.154.167.51/",
                    DC2_IP,
                    80,
                    200,
                    "<p><em>Thank you for using nginx.</em></p>",
                ),
            ),
            None,
        ),
        "ok",
        None,
        False,
        "reachable",
    ),
    Case(
        "http: a Telegram DC answering 501 to OONI's POST is reachable (OONI false positive)",
        record(
            DC_HTTP,
            obs(
                tcp(DC2_IP, 80),
                http(
                    "http://149.154.167.51/",
                    DC2_IP,
                    80,
                    501,
                    "<html><head><title>501 Not Implemented</title></head></html>",
                ),
            ),
            None,
        ),
        "ok",
        None,
        False,
        "501",
    ),
    Case(
        "http: a Telegram DC answering 411 here and at the control",
        record(
            DC_HTTP,
            obs(
                tcp(DC2_IP, 80),
                http(
                    "http://149.154.167.51/",
                    DC2_IP,
                    80,
                    411,
                    "<html><head><title>411 Length Required</title></head></html>",
                ),
            ),
            obs(
                tcp(DC2_IP, 80),
                control_http(
                    "http://149.154.167.51/",
                    DC2_IP,
                    80,
                    411,
                    "<html><head><title>411 Length Required</title></head></html>",
                ),
            ),
        ),
        "ok",
        None,
        False,
        "same page",
    ),
    Case(
        "http: a 403 over TLS verified for the name is the service's own answer",
        record(
            WEB,
            obs(
                q(WEB_HOST, WEB_IP),
                tcp(WEB_IP),
                tls(WEB_IP, WEB_HOST),
                http(WEB_URL, WEB_IP, code=403, body=IRAN_BLOCKPAGE),
            ),
            web_control(),
        ),
        "ok",
        None,
        False,
        "verified",
    ),
    # --- MTProto -------------------------------------------------------------------------
    Case(
        "mtproto: a genuine resPQ",
        record(DC2, obs(tcp(DC2_IP), mt(DC2_IP, "obfuscated2")), None),
        "ok",
        None,
        False,
        "resPQ",
    ),
    Case(
        "mtproto: a transport error code (-404) proves the peer is Telegram",
        record(
            DC2,
            obs(
                tcp(DC2_IP),
                MTProtoHandshake(
                    format_address(DC2_IP, 443),
                    "intermediate",
                    success=True,
                    reply="transport_error",
                    error_code=-404,
                    transaction_id=1,
                ),
            ),
            None,
        ),
        "ok",
        None,
        False,
        "transport error",
    ),
    Case(
        "mtproto: TCP fine but the handshake is cut off; the control gets replies",
        record(
            DC2,
            obs(
                tcp(DC2_IP),
                mt(DC2_IP, "obfuscated2", failure=F.CONNECTION_RESET),
                tcp(DC2_IP),
                mt(DC2_IP, "intermediate", failure=F.CONNECTION_RESET),
            ),
            dc_control("obfuscated2", "intermediate"),
        ),
        "blocked",
        "protocol",
        False,
        "connection_reset",
    ),
    Case(
        "mtproto: plain transports interfered with, obfuscated2 gets through (no control)",
        record(
            DC2,
            obs(
                tcp(DC2_IP),
                mt(DC2_IP, "obfuscated2"),
                tcp(DC2_IP),
                mt(DC2_IP, "intermediate", failure=F.GENERIC_TIMEOUT),
            ),
            None,
        ),
        "blocked",
        "protocol",
        False,
        "obfuscated proxies",
    ),
    Case(
        "mtproto: plain transports interfered with, obfuscated2 gets through (control agrees)",
        record(
            DC2,
            obs(
                tcp(DC2_IP),
                mt(DC2_IP, "obfuscated2"),
                tcp(DC2_IP),
                mt(DC2_IP, "intermediate", failure=F.CONNECTION_RESET),
            ),
            dc_control("obfuscated2", "intermediate"),
        ),
        "blocked",
        "protocol",
        False,
        "obfuscated2",
    ),
    Case(
        "mtproto: a forged reply (HTML from a middlebox) needs no control",
        record(
            DC2, obs(tcp(DC2_IP), mt(DC2_IP, "intermediate", failure=F.MTPROTO_FOREIGN_REPLY)), None
        ),
        "blocked",
        "protocol",
        False,
        "forged",
    ),
    Case(
        "mtproto: the handshake fails at the control too → down",
        record(
            DC2,
            obs(tcp(DC2_IP), mt(DC2_IP, "obfuscated2", failure=F.EOF_ERROR)),
            obs(tcp(DC2_IP), mt(DC2_IP, "obfuscated2", failure=F.EOF_ERROR)),
        ),
        "down",
        None,
        False,
        "control too",
    ),
    Case(
        "mtproto: silence without a control is inconclusive",
        record(DC2, obs(tcp(DC2_IP), mt(DC2_IP, "obfuscated2", failure=F.GENERIC_TIMEOUT)), None),
        "inconclusive",
        None,
        False,
        "no control",
    ),
    # --- target level --------------------------------------------------------------------
    Case(
        "target: the first failed layer names the blocking (tcp before tls)",
        record(
            WEB,
            obs(
                q(WEB_HOST, WEB_IP, "149.154.167.98", asn=62041),
                tcp(WEB_IP, tid=1),
                tls(WEB_IP, WEB_HOST, failure=F.CONNECTION_RESET, tid=1),
                tcp("149.154.167.98", failure=F.GENERIC_TIMEOUT, tid=2),
            ),
            obs(
                q(WEB_HOST, WEB_IP, "149.154.167.98", asn=62041),
                tcp(WEB_IP, tid=1),
                tls(WEB_IP, WEB_HOST, tid=1),
                tcp("149.154.167.98", tid=2),
                tls("149.154.167.98", WEB_HOST, tid=2),
            ),
        ),
        "blocked",
        "tcp",
        False,
        "2 of 2",
    ),
    Case(
        "target: blocked on one address, the reason says which still work",
        record(
            WEB,
            obs(
                q(WEB_HOST, WEB_IP, "149.154.167.98", asn=62041),
                *web_ok(WEB_IP, tid=1),
                tcp("149.154.167.98", failure=F.CONNECTION_RESET, tid=2),
            ),
            obs(
                q(WEB_HOST, WEB_IP, "149.154.167.98", asn=62041),
                tcp(WEB_IP, tid=1),
                tcp("149.154.167.98", tid=2),
            ),
        ),
        "blocked",
        "tcp",
        False,
        "still working",
    ),
    Case(
        "target: an interrupted flow is inconclusive",
        record(DC2, obs(tcp(DC2_IP, failure=F.INTERRUPTED)), dc_control("obfuscated2")),
        "inconclusive",
        None,
        False,
        "interrupted",
    ),
    Case(
        "target: nothing measured",
        record(DC2, obs(), None),
        "inconclusive",
        None,
        False,
        "nothing",
    ),
]


# --- issue 13: classes of error found re-analysing real OONI measurements --------------------

WEB_IP6 = "2001:67c:4e8:1033:2:100:0:a"
WEB_IP_B = "149.154.167.98"
V6_UNPROVEN = {"baseline_ok": 3, "baseline_total": 4, "control_reachable": True, "ipv6_ok": None}
V6_UNKNOWN = {"baseline_ok": 3, "baseline_total": 4, "control_reachable": True}  # no ipv6_ok
CHALLENGE_PAGE = (
    "<html><head><title>Just a moment...</title></head><body><h1>Checking your browser before "
    "accessing example.org.</h1><p>This process is automatic.</p></body></html>"
)
STATUS_HOST = {
    "id": "itest/status",
    "service": "itest",
    "check": "dns",
    "host": "uptime.example",
}


def web_control_dual() -> Observations:
    """The control fetched web.telegram.org on IPv4 and completed TLS on IPv6."""
    return obs(
        q(WEB_HOST, WEB_IP, WEB_IP6, asn=62041, engine="udp"),
        tcp(WEB_IP, tid=1),
        tls(WEB_IP, WEB_HOST, tid=1),
        control_http(WEB_URL, WEB_IP, tid=1),
        tcp(WEB_IP6, tid=2),
        tls(WEB_IP6, WEB_HOST, tid=2),
        control_http(WEB_URL, WEB_IP6, tid=2),
    )


ISSUE13_CASES = [
    # 1. one failing IPv6 endpoint does not accuse a target whose IPv4 works
    Case(
        "ipv6: an IPv6 timeout while IPv4 fetched the page (IPv6 unproven, control fine on IPv6)",
        record(
            WEB,
            obs(
                q(WEB_HOST, WEB_IP, WEB_IP6, asn=62041),
                *web_ok(WEB_IP, tid=1),
                tcp(WEB_IP6, failure=F.GENERIC_TIMEOUT, tid=2),
            ),
            web_control_dual(),
            vantage=V6_UNPROVEN,
        ),
        "ok",
        None,
        False,
        "IPv6 is not proven",
    ),
    Case(
        "ipv6: an IPv6 TLS reset while IPv4 works, ipv6_ok absent from x_vantage",
        record(
            WEB,
            obs(
                q(WEB_HOST, WEB_IP, WEB_IP6, asn=62041),
                *web_ok(WEB_IP, tid=1),
                tcp(WEB_IP6, tid=2),
                tls(WEB_IP6, WEB_HOST, failure=F.CONNECTION_RESET, tid=2),
            ),
            web_control_dual(),
            vantage=V6_UNKNOWN,
        ),
        "ok",
        None,
        False,
        "inconclusive",
    ),
    Case(
        "ipv6: an IPv6-only target timing out on a vantage whose IPv6 is unproven",
        record(
            DC2_V6,
            obs(tcp(DC2_V6_IP, failure=F.GENERIC_TIMEOUT)),
            dc_control("obfuscated2", ip=DC2_V6_IP),
            vantage=V6_UNPROVEN,
        ),
        "inconclusive",
        None,
        False,
        "IPv6",
    ),
    Case(
        "ipv6: the same IPv6 timeout on a vantage with proven IPv6 is still blocking",
        record(
            WEB,
            obs(
                q(WEB_HOST, WEB_IP, WEB_IP6, asn=62041),
                *web_ok(WEB_IP, tid=1),
                tcp(WEB_IP6, failure=F.GENERIC_TIMEOUT, tid=2),
            ),
            web_control_dual(),
        ),
        "blocked",
        "tcp",
        False,
        "still working",
    ),
    Case(
        "ipv6: when IPv4 fails too, IPv6 is not the only family failing: blocked",
        record(
            WEB,
            obs(
                q(WEB_HOST, WEB_IP, WEB_IP6, asn=62041),
                tcp(WEB_IP, failure=F.GENERIC_TIMEOUT, tid=1),
                tcp(WEB_IP6, failure=F.GENERIC_TIMEOUT, tid=2),
            ),
            web_control_dual(),
            vantage=V6_UNPROVEN,
        ),
        "blocked",
        "tcp",
        False,
        "generic_timeout_error",
    ),
    # 2. DNS over HTTPS / TLS queries of the probe's own are observations, not a control
    Case(
        "dns: the probe's own DNS-over-HTTPS query is judged (OONI engine doh)",
        record(WEB, obs(q(WEB_HOST, "10.10.34.36", engine="doh", qtype="A")), None),
        "blocked",
        "dns",
        True,
        "10.10.34.36",
    ),
    Case(
        "dns: the probe's own DNS-over-TLS query is judged (OONI engine dot)",
        record(STATUS_HOST, obs(q("uptime.example", "93.184.216.34", engine="dot")), None),
        "inconclusive",
        None,
        False,
        "uptime.example resolved to 93.184.216.34",
    ),
    Case(
        "dns: without a control, the probe's own DoH answers check the system resolver's",
        record(
            WEB,
            obs(
                q(WEB_HOST, "100.64.1.1"),
                q(WEB_HOST, WEB_IP, engine="doh", qtype="A"),
                tcp("100.64.1.1", failure=F.CONNECTION_REFUSED),
            ),
            None,
        ),
        "blocked",
        "dns",
        False,
        "DNS over HTTPS",
    ),
    Case(
        "dns: each engine is compared with the control (a good DoH answer does not cover a lie)",
        record(
            WEB,
            obs(
                q(WEB_HOST, "1.2.3.5", asn=1111),
                q(WEB_HOST, WEB_IP, engine="doh", asn=62041, qtype="A"),
                tcp("1.2.3.5", failure=F.GENERIC_TIMEOUT),
            ),
            web_control(),
        ),
        "blocked",
        "dns",
        False,
        "no network",
    ),
    # 3. a known look-alike page (scope fp) is not http-diff through the comparison either
    Case(
        "http: a CDN challenge page (fingerprint scope fp) differing from the control's page",
        record(
            SITE,
            obs(
                q("example.org", SITE_IP),
                tcp(SITE_IP, 80),
                http(SITE["url"], SITE_IP, 80, 503, CHALLENGE_PAGE),
            ),
            obs(
                q("example.org", SITE_IP), tcp(SITE_IP, 80), control_http(SITE["url"], SITE_IP, 80)
            ),
        ),
        "inconclusive",
        None,
        False,
        "cp.fp_x_cloudflare_check",
    ),
    # 4. a failed attempt does not hide a success on the same endpoint
    Case(
        "attempts: a TLS handshake retried on the same connection flow succeeds",
        record(
            WEB,
            obs(
                q(WEB_HOST, WEB_IP),
                tcp(WEB_IP),
                tls(WEB_IP, WEB_HOST, failure=F.CONNECTION_RESET),
                tcp(WEB_IP),
                tls(WEB_IP, WEB_HOST),
                http(WEB_URL, WEB_IP),
            ),
            web_control(),
        ),
        "ok",
        None,
        False,
        "verified",
    ),
    Case(
        "attempts: a request retried on the same flow succeeds",
        record(
            WEB,
            obs(
                q(WEB_HOST, WEB_IP),
                tcp(WEB_IP),
                tls(WEB_IP, WEB_HOST),
                http(WEB_URL, WEB_IP, failure=F.CONNECTION_RESET),
                http(WEB_URL, WEB_IP),
            ),
            web_control(),
        ),
        "ok",
        None,
        False,
        "verified",
    ),
    Case(
        "attempts: several requests to one address in separate flows (OONI), one succeeds",
        record(
            WEB,
            obs(
                q(WEB_HOST, WEB_IP),
                tcp(WEB_IP, tid=1),
                tls(WEB_IP, WEB_HOST, tid=1),
                http(WEB_URL, WEB_IP, failure=F.GENERIC_TIMEOUT, tid=1),
                *web_ok(WEB_IP, tid=2),
            ),
            web_control(),
        ),
        "ok",
        None,
        False,
        "verified",
    ),
    Case(
        "attempts: a TCP connect retried in another flow succeeds and MTProto answers",
        record(
            DC2,
            obs(
                tcp(DC2_IP, failure=F.GENERIC_TIMEOUT, tid=1),
                tcp(DC2_IP, tid=2),
                mt(DC2_IP, "obfuscated2", tid=2),
            ),
            dc_control("obfuscated2"),
        ),
        "ok",
        None,
        False,
        "resPQ",
    ),
    Case(
        "attempts: an MTProto handshake retried over the same transport succeeds",
        record(
            DC2,
            obs(
                tcp(DC2_IP),
                mt(DC2_IP, "obfuscated2", failure=F.GENERIC_TIMEOUT),
                tcp(DC2_IP),
                mt(DC2_IP, "obfuscated2"),
            ),
            dc_control("obfuscated2"),
        ),
        "ok",
        None,
        False,
        "resPQ",
    ),
    Case(
        "attempts: a success that stopped before the failed step hides nothing",
        record(
            WEB,
            obs(
                q(WEB_HOST, WEB_IP),
                tcp(WEB_IP, tid=1),
                tls(WEB_IP, WEB_HOST, tid=1),
                tcp(WEB_IP, tid=2),
                tls(WEB_IP, WEB_HOST, tid=2),
                http(WEB_URL, WEB_IP, failure=F.CONNECTION_RESET, tid=2),
            ),
            web_control(),
        ),
        "blocked",
        "http-failure",
        False,
        "connection_reset",
    ),
    # 5. ok needs the evidence the docs promise
    Case(
        "evidence: a connect-only success while the fetch failed (no control) is not ok",
        record(
            WEB,
            obs(
                q(WEB_HOST, WEB_IP, WEB_IP_B, asn=62041),
                tcp(WEB_IP, tid=1),
                tcp(WEB_IP_B, tid=2),
                tls(WEB_IP_B, WEB_HOST, tid=2),
                http(WEB_URL, WEB_IP_B, failure=F.CONNECTION_RESET, tid=2),
            ),
            None,
        ),
        "inconclusive",
        None,
        False,
        "connection_reset",
    ),
    Case(
        "evidence: a connect-only success while the fetch fails at the control too is down",
        record(
            WEB,
            obs(
                q(WEB_HOST, WEB_IP, WEB_IP_B, asn=62041),
                tcp(WEB_IP, tid=1),
                tcp(WEB_IP_B, tid=2),
                tls(WEB_IP_B, WEB_HOST, tid=2),
                http(WEB_URL, WEB_IP_B, failure=F.GENERIC_TIMEOUT, tid=2),
            ),
            obs(
                q(WEB_HOST, WEB_IP, WEB_IP_B, asn=62041),
                tcp(WEB_IP_B),
                tls(WEB_IP_B, WEB_HOST),
                http(WEB_URL, WEB_IP_B, failure=F.GENERIC_TIMEOUT),
            ),
        ),
        "down",
        None,
        False,
        "control too",
    ),
    Case(
        "evidence: DNS alone, nothing connected, is not ok for an https target",
        record(WEB, obs(q(WEB_HOST, WEB_IP, asn=62041)), web_control()),
        "inconclusive",
        None,
        False,
        "nothing was fetched",
    ),
    Case(
        "evidence: DNS alone is ok for a DNS target",
        record(
            STUN, obs(q("stun.fbsbx.com", "157.240.1.1")), obs(q("stun.fbsbx.com", "157.240.1.1"))
        ),
        "ok",
        None,
        False,
        "consistent",
    ),
    # 6. loopback answers and other countries' fingerprints
    Case(
        "dns: a loopback answer without a control is not called a known blocking address",
        record(STATUS_HOST, obs(q("uptime.example", "127.0.0.1")), None),
        "inconclusive",
        None,
        False,
        "loopback",
    ),
    Case(
        "dns: a loopback answer the control does not return is still dns blocking",
        record(
            WEB,
            obs(q(WEB_HOST, "127.0.0.1"), tcp("127.0.0.1", failure=F.CONNECTION_REFUSED)),
            web_control(),
        ),
        "blocked",
        "dns",
        False,
        "loopback",
    ),
    Case(
        "dns: Iran's national fingerprint seen by a probe in Italy is not confirmed",
        record(
            WEB,
            obs(q(WEB_HOST, "10.10.34.36"), tcp("10.10.34.36", failure=F.GENERIC_TIMEOUT)),
            web_control(),
            probe_cc="IT",
        ),
        "blocked",
        "dns",
        False,
        "IR",
    ),
    Case(
        "dns: another country's fingerprint without a control proves nothing alone",
        record(WEB, obs(q(WEB_HOST, "10.10.34.36")), None, probe_cc="IT"),
        "inconclusive",
        None,
        False,
        "ooni.ir_10dot10_ipv4_1",
    ),
    Case(
        "dns: a national fingerprint with the probe's country unknown (ZZ) still confirms",
        record(WEB, obs(q(WEB_HOST, "10.10.34.36")), web_control(), probe_cc="ZZ"),
        "blocked",
        "dns",
        True,
        "10.10.34.36",
    ),
]
CASES += ISSUE13_CASES


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_verdict_table(case: Case) -> None:
    verdict = analyze(case.record).verdict
    assert (verdict.status, verdict.blocking, verdict.confirmed) == (
        case.status,
        case.blocking,
        case.confirmed,
    ), verdict.reason
    assert case.word.lower() in verdict.reason.lower(), verdict.reason
    assert verdict.reason.endswith(".") and "\n" not in verdict.reason


def test_table_is_big_enough() -> None:
    assert len(CASES) >= 40


def test_analysis_is_pure_and_repeatable() -> None:
    """Same record, same verdict; the record is not modified; the output is JSON."""
    for case in CASES:
        before = copy.deepcopy(case.record)
        first = analyze(case.record)
        second = analyze(json.loads(json.dumps(case.record)))
        assert case.record == before
        assert first.verdict == second.verdict
        json.dumps(first.verdict.to_dict())
        json.dumps([e.to_dict() for e in first.endpoints])


def test_endpoint_outcomes_name_each_flow() -> None:
    case = next(
        c
        for c in CASES
        if c.name.startswith(
            "mtproto: plain transports interfered with, obfuscated2 gets through (no"
        )
    )
    endpoints = [e.to_dict() for e in analyze(case.record).endpoints]
    assert [(e["transport"], e["outcome"], e["blocking"]) for e in endpoints] == [
        ("obfuscated2", "ok", None),
        ("intermediate", "blocked", "protocol"),
    ]
    assert endpoints[1]["failure"] == F.GENERIC_TIMEOUT
    assert endpoints[1]["failed_operation"] == F.MTPROTO_HANDSHAKE
    assert set(endpoints[0]) == {
        "address",
        "port",
        "transport",
        "outcome",
        "blocking",
        "failure",
        "failed_operation",
    }


def test_fingerprint_names_in_the_verdict() -> None:
    case = CASES[0]
    verdict = analyze(case.record).verdict
    assert verdict.fingerprints == ["ooni.ir_10dot10_ipv4_1"]
    assert "national" in verdict.reason and "149.154.167.99" in verdict.reason


def test_extra_fingerprints_change_the_verdict(tmp_path) -> None:
    """A user's own fingerprint file turns an unknown page into a confirmed blockpage."""
    from probe.analysis.fingerprints import FingerprintDB

    extra = tmp_path / "mine.csv"
    extra.write_text(
        "name,scope,other_names,location_found,pattern_type,pattern,confidence_no_fp,"
        "expected_countries,source,exp_url,notes\n"
        "mine.ir_1,isp,,body,contains,Sorry from the ISP,5,IR,me,,\n",
        encoding="utf-8",
    )
    rec = record(
        SITE,
        obs(
            q("example.org", SITE_IP),
            tcp(SITE_IP, 80),
            http(SITE["url"], SITE_IP, 80, 200, "Sorry from the ISP"),
        ),
        None,
    )
    assert analyze(rec, default_db()).verdict.status == "inconclusive"
    verdict = analyze(rec, FingerprintDB.load([extra])).verdict
    assert (verdict.status, verdict.blocking, verdict.confirmed) == ("blocked", "http-diff", True)
    assert verdict.fingerprints == ["mine.ir_1"]


def test_a_page_over_verified_tls_is_matched_against_no_fingerprint() -> None:
    """Over TLS verified for the name no fingerprint can change the outcome (a blockpage is
    the service's own answer there): the analysis does not match the body at all, and the
    verdict is what it was when it did."""

    class NoHTTPMatching:
        def __init__(self) -> None:
            self.db = default_db()

        def match_dns(self, ip: str, *, probe_cc: str | None = None) -> Any:
            return self.db.match_dns(ip, probe_cc=probe_cc)

        def match_http(self, transaction: Any, *, probe_cc: str | None = None) -> Any:
            raise AssertionError("a page over verified TLS was matched")

    case = next(c for c in CASES if c.name.startswith("http: a 403 over TLS verified"))
    verdict = analyze(case.record, NoHTTPMatching()).verdict  # type: ignore[arg-type]
    assert verdict == analyze(case.record).verdict
    assert (verdict.status, verdict.blocking) == ("ok", None)


def test_http_differences_follow_ooni_rules() -> None:
    a = HTTPTransaction(
        "http://x/", response_code=200, body="<title>Hello lovely world</title>" + "a" * 1000
    )
    same = HTTPTransaction(
        "http://x/", response_code=200, body_length=1040, title="Hello lovely world"
    )
    assert http_differences(a, same) == []
    shorter = HTTPTransaction("http://x/", response_code=200, body_length=100, title="Other")
    assert any("body" in d for d in http_differences(a, shorter))
    # the control's 5xx says nothing about the status, the title still matches
    flaky = HTTPTransaction(
        "http://x/", response_code=503, body_length=1040, title="Hello lovely world"
    )
    assert http_differences(a, flaky) == []
    moved = HTTPTransaction(
        "http://x/", response_code=404, body_length=1040, title="Hello lovely world"
    )
    assert http_differences(a, moved) == ["status 200 here but 404 at the control"]


# --- issue 13: details the table cannot show ------------------------------------------------


def _case(prefix: str) -> Case:
    return next(c for c in ISSUE13_CASES if c.name.startswith(prefix))


def test_a_failing_ipv6_endpoint_is_named_inconclusive_when_ipv4_works() -> None:
    analysis = analyze(_case("ipv6: an IPv6 timeout while IPv4").record)
    outcomes = {(e.address, e.port): e for e in analysis.endpoints}
    assert outcomes[(WEB_IP, 443)].outcome == "ok"
    v6 = outcomes[(WEB_IP6, 443)]
    assert (v6.outcome, v6.blocking, v6.unexplained_layer) == ("inconclusive", None, None)
    reason = analysis.verdict.reason
    assert f"[{WEB_IP6}]:443 inconclusive" in reason and "IPv4 works" in reason


def test_a_retried_endpoint_is_one_outcome() -> None:
    for prefix in ("attempts: several requests", "attempts: a TCP connect retried"):
        endpoints = analyze(_case(prefix).record).endpoints
        assert [e.outcome for e in endpoints] == ["ok"], prefix
        assert "failed attempt" in endpoints[0].evidence, prefix


def test_a_connect_only_success_stays_visible_but_does_not_make_ok() -> None:
    analysis = analyze(_case("evidence: a connect-only success while the fetch failed").record)
    assert analysis.verdict.status == "inconclusive"
    assert f"the TCP connect to {WEB_IP}:443 succeeded" in analysis.verdict.reason
    only_dns = analyze(_case("evidence: DNS alone, nothing connected").record).verdict
    assert "consistent with the control" in only_dns.reason


def test_a_confirmed_loopback_fingerprint_does_not_confirm_a_loopback_answer(tmp_path) -> None:
    """A status host that publishes 127.0.0.1 on purpose, and a national fingerprint row for
    127.0.0.1: loopback is too common to identify a censor."""
    from probe.analysis.fingerprints import FingerprintDB

    extra = tmp_path / "loopback.csv"
    extra.write_text(
        "name,scope,other_names,location_found,pattern_type,pattern,confidence_no_fp,"
        "expected_countries,source,exp_url,notes\n"
        "mine.ir_loopback,nat,,dns,full,127.0.0.1,5,IR,me,,\n",
        encoding="utf-8",
    )
    db = FingerprintDB.load([extra])
    verdict = analyze(_case("dns: a loopback answer without a control").record, db).verdict
    assert (verdict.status, verdict.confirmed) == ("inconclusive", False), verdict.reason
    assert "known" not in verdict.reason and "blocking address" not in verdict.reason
    # the control resolving the name elsewhere still makes the loopback answer a lie
    lie = analyze(_case("dns: a loopback answer the control does not return").record, db).verdict
    assert (lie.status, lie.blocking, lie.confirmed) == ("blocked", "dns", False), lie.reason
    assert "known" not in lie.reason


def test_another_countrys_blockpage_is_blocking_but_not_confirmed() -> None:
    rec = record(
        SITE,
        obs(
            q("example.org", SITE_IP),
            tcp(SITE_IP, 80),
            http(SITE["url"], SITE_IP, 80, 403, IRAN_BLOCKPAGE),
        ),
        None,
        probe_cc="IT",
    )
    verdict = analyze(rec).verdict
    assert (verdict.status, verdict.blocking, verdict.confirmed) == ("blocked", "http-diff", False)
    assert "IR" in verdict.reason and verdict.fingerprints
