"""Web Connectivity's control: the test helper's reply (`test_keys.control`) as our control
observations, so the analysis compares the probe with it as with our own control."""

from __future__ import annotations

from typing import Any

from probe import failures
from probe.addresses import is_ipv6, parse_ip
from probe.observations import (
    DNSAnswer,
    DNSQuery,
    HTTPTransaction,
    Observations,
    TCPConnect,
    TLSHandshake,
)
from probe.report.ooni.normalise import _failure, _host_of, _split


def control_from_test_helper(reply: dict[str, Any], url: str) -> Observations:
    """The test helper's reply (dns, tcp_connect, tls_handshake, http_request, ip_info) as our
    control observations for `url`."""
    obs = Observations()
    host = _host_of(url)
    ip_info = reply.get("ip_info") if isinstance(reply.get("ip_info"), dict) else {}
    assert isinstance(ip_info, dict)
    dns = reply.get("dns")
    if isinstance(dns, dict) and host and parse_ip(host) is None:
        obs.queries.append(_dns(dns, host, ip_info))
    tids: dict[str, int] = {}
    tcp = reply.get("tcp_connect")
    for address, result in tcp.items() if isinstance(tcp, dict) else []:
        split = _split(str(address))
        if split is None or not isinstance(result, dict):
            continue
        tids[str(address)] = len(tids) + 1
        failure = _failure(result.get("failure"))
        obs.tcp_connect.append(
            TCPConnect(
                split[0],
                split[1],
                bool(result.get("status")) and failure is None,
                failure,
                transaction_id=tids[str(address)],
            )
        )
    tls = reply.get("tls_handshake")
    for address, result in tls.items() if isinstance(tls, dict) else []:
        if isinstance(result, dict):
            obs.tls_handshakes.append(_tls(str(address), result, host, tids))
    http = reply.get("http_request")
    if isinstance(http, dict):
        obs.requests.append(_http(http, url))
    return obs


def _asn_of(ip_info: dict[str, Any], ip: str) -> int | None:
    info = ip_info.get(ip)
    asn = info.get("asn") if isinstance(info, dict) else None
    return int(asn) if isinstance(asn, int) and asn > 0 else None


def _dns(dns: dict[str, Any], host: str, ip_info: dict[str, Any]) -> DNSQuery:
    """The helper's lookup of `host` (`addrs`, older `ips`) as one query of both families."""
    addrs = dns.get("addrs") or dns.get("ips") or []
    answers = []
    for a in addrs if isinstance(addrs, list) else []:
        ip = str(a)
        if parse_ip(ip) is None:
            continue
        kind = "AAAA" if is_ipv6(ip) else "A"
        answers.append(
            DNSAnswer(
                kind,
                ipv4=None if kind == "AAAA" else ip,
                ipv6=ip if kind == "AAAA" else None,
                asn=_asn_of(ip_info, ip),
            )
        )
    return DNSQuery(
        hostname=host,
        query_type="ANY",
        engine="control",
        resolver_address="",
        answers=answers,
        failure=_failure(dns.get("failure")) or (None if answers else failures.DNS_NO_ANSWER),
    )


def _tls(address: str, result: dict[str, Any], host: str, tids: dict[str, int]) -> TLSHandshake:
    failure = _failure(result.get("failure"))
    return TLSHandshake(
        address=address,
        server_name=str(result.get("server_name") or host),
        failure=failure,
        failed_operation=failures.TLS_HANDSHAKE if failure else None,
        transaction_id=tids.get(address, 0),
    )


def _http(http: dict[str, Any], url: str) -> HTTPTransaction:
    failure = _failure(http.get("failure"))
    code = http.get("status_code")
    headers = http.get("headers") if isinstance(http.get("headers"), dict) else {}
    assert isinstance(headers, dict)
    return HTTPTransaction(
        url=url,
        response_code=int(code) if isinstance(code, int) and code > 0 else None,
        response_headers=[(str(k), str(v)) for k, v in headers.items()],
        body_length=http.get("body_length")
        if isinstance(http.get("body_length"), int) and http["body_length"] >= 0
        else None,
        title=http.get("title") or None,
        failure=failure,
        failed_operation=failures.HTTP_ROUND_TRIP if failure else None,
    )
