"""The probe's client for the control server: it sends the round's targets in their wire format
(`Target.to_wire(MEASURE_KEYS)`, a CA file as PEM text), tries the control URLs in order, and
keeps from a reply only what it asked about, within the control's limits. What the control cut
from a result (`x_truncated`) or left unfinished at its deadline (`x_deadline`) is kept with
the reply, so that a record can say so."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from probe import failures
from probe.control.limits import MAX_CA_PEM_BYTES, MAX_REPLY_BYTES_BASE, MAX_REPLY_BYTES_PER_TARGET
from probe.observations import Observations, Trace
from probe.steps import dns
from probe.steps.tcp import ByteCounter
from probe.targets import MEASURE_KEYS, Target

log = logging.getLogger("probe.control")

#: what a control's `x_truncated` marker may hold: a reason, counts, counts per list
_MAX_MARKS = 16
_MAX_MARK_CHARS = 64
#: a control's failure for one target longer than this is not repeated
_MAX_FAILURE_CHARS = 320


@dataclass(frozen=True, slots=True)
class EchoInfo:
    """What the control saw of us. `ip` is kept in memory only, for scrubbing."""

    ip: str | None
    asn: int | None
    cc: str | None
    network_name: str | None


@dataclass(slots=True)
class ControlObservations(Observations):
    """The control's observations for one target, with what the control cut from them to fit
    its reply (its `x_truncated`; None when nothing was): `to_dict` (a record's `control`)
    carries both."""

    truncated: dict[str, Any] | None = None

    @classmethod
    def of(
        cls, observations: Observations, truncated: dict[str, Any] | None
    ) -> ControlObservations:
        parts = {f.name: getattr(observations, f.name) for f in dataclasses.fields(Observations)}
        return cls(**parts, truncated=truncated)

    def to_dict(self) -> dict[str, Any]:
        d = Observations.to_dict(self)
        if self.truncated is not None:
            d["x_truncated"] = self.truncated
        return d


@dataclass(slots=True)
class ControlReply:
    observations: dict[str, Observations] = field(default_factory=dict)
    failure: str | None = None
    url: str | None = None
    client: EchoInfo | None = None
    #: per asked target, what the control cut from its result (`x_truncated`: counts of what
    #: went; ``{"reason": "reply_cap", ...}`` for a result dropped whole to fit the reply)
    truncated: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: per asked target the control returned without observations, the failure it gave
    #: (`generic_timeout_error` for a target its request deadline cut short)
    failures: dict[str, str] = field(default_factory=dict)
    #: the control's request deadline cut some targets short (its `x_deadline`)
    deadline: bool = False
    #: UDP port of the control's neutral QUIC endpoint (its `x_neutral_quic_port`), if any
    neutral_quic_port: int | None = None

    def target_failure(self, target_id: str) -> str | None:
        """Why there are no control observations for `target_id`: the control's own failure
        for it, else the reply's (None: the control answered for it, or never was asked)."""
        return self.failures.get(target_id, self.failure)


class _RunResolver(AbstractResolver):
    """aiohttp resolves the control's host name through the run's resolver (`--resolver`)."""

    def __init__(self, resolver: dns.Resolver, timeout: float) -> None:
        self.resolver = resolver
        self.timeout = timeout

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        trace = Trace(0.0, 0)
        resolution = await self.resolver.resolve(host, trace=trace, timeout=self.timeout)
        results: list[ResolveResult] = []
        for ip in resolution.addresses:
            fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
            if family not in (socket.AF_UNSPEC, fam):
                continue
            results.append(
                {
                    "hostname": host,
                    "host": ip,
                    "port": port,
                    "family": fam,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST,
                }
            )
        if not results:
            raise OSError(f"cannot resolve the control server's name {host}")
        return results

    async def close(self) -> None:
        return None


def target_to_request(target: Target) -> dict[str, Any]:
    """What the control needs to measure `target`: its wire format's MEASURE_KEYS, and its CA
    file's certificates as PEM text (`x_ca_pem`)."""
    d = target.to_wire(MEASURE_KEYS)
    if target.ca:
        try:
            with open(target.ca) as handle:
                d["x_ca_pem"] = handle.read(MAX_CA_PEM_BYTES + 1)
        except OSError:
            pass
    return d


class ControlClient:
    """Asks the control server(s) to measure the round's targets; tries the URLs in order."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        token: str | None,
        timeout: float,
        resolver: dns.Resolver,
        source_address: str | None = None,
        counter: ByteCounter | None = None,
    ) -> None:
        self.urls = list(urls)
        self.token = token
        self.timeout = timeout
        self.resolver = resolver
        self.source_address = source_address
        self.counter = counter
        self._asked: set[str] = set()

    async def measure(self, targets: Sequence[Target]) -> ControlReply:
        payload = {"targets": [target_to_request(t) for t in targets]}
        self._asked = {t.id for t in targets}
        failure: str | None = failures.CONTROL_UNREACHABLE
        for url in self.urls:
            try:
                reply = await self._post(url, payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failure = failures.classify(exc)
                log.debug("control %s failed: %s", url, failure)
                continue
            return reply
        return ControlReply(failure=failure)

    async def _post(self, base_url: str, payload: dict[str, Any]) -> ControlReply:
        connector = aiohttp.TCPConnector(
            resolver=_RunResolver(self.resolver, min(self.timeout, 10.0)),
            local_addr=(self.source_address, 0) if self.source_address else None,
            limit=1,
        )
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        url = base_url.rstrip("/") + "/v1/measure"
        body = json.dumps(payload).encode()
        limit = MAX_REPLY_BYTES_BASE + MAX_REPLY_BYTES_PER_TARGET * len(payload["targets"])
        raw = bytearray()
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            async with asyncio.timeout(self.timeout):
                async with session.post(url, data=body, headers=headers) as response:
                    async for chunk in response.content.iter_chunked(64 * 1024):
                        raw += chunk
                        if len(raw) > limit:
                            raise failures.ProbeFailure(
                                failures.CONTROL_HTTP_ERROR, "control reply too large"
                            )
                    if self.counter is not None:
                        self.counter.sent += len(body)
                        self.counter.received += len(raw)
                    if response.status != 200:
                        raise failures.ProbeFailure(
                            failures.CONTROL_HTTP_ERROR, f"control answered {response.status}"
                        )
        return parse_reply(raw, base_url, self._asked)


def parse_reply(raw: bytes | bytearray, url: str, asked: set[str]) -> ControlReply:
    """The control's answer, keeping only results for targets we asked about (a hostile or
    broken control must not fill our memory or our records with others)."""
    try:
        doc = json.loads(raw)
    except ValueError:
        raise failures.ProbeFailure(
            failures.CONTROL_HTTP_ERROR, "control reply is not JSON"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        raise failures.ProbeFailure(failures.CONTROL_HTTP_ERROR, "control reply has no results")
    reply = ControlReply(
        url=url, client=_echo(doc.get("client")), deadline=isinstance(doc.get("x_deadline"), dict)
    )
    port = doc.get("x_neutral_quic_port")
    if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
        reply.neutral_quic_port = port
    for item in doc["results"]:
        if isinstance(item, dict) and item.get("id") in asked:
            _take_result(reply, item["id"], item)
    return reply


def _take_result(reply: ControlReply, target_id: str, item: dict[str, Any]) -> None:
    """One result for an asked target into `reply`: its observations, what was cut from them,
    or the failure the control gave instead."""
    marks = _marks(item.get("x_truncated"))
    if marks is not None:
        reply.truncated[target_id] = marks
    observations = item.get("observations")
    if isinstance(observations, dict):
        reply.observations[target_id] = ControlObservations.of(
            Observations.from_dict(observations), marks
        )
        return
    failure = item.get("failure")
    if isinstance(failure, str) and failure:
        if len(failure) > _MAX_FAILURE_CHARS or not failure.isprintable():
            failure = failures.CONTROL_HTTP_ERROR
        reply.failures[target_id] = failure


def _marks(value: Any) -> dict[str, Any] | None:
    """A result's `x_truncated` reduced to what the control writes there (a reason, counts, and
    counts per list): nothing else from a control reaches our records this way."""
    if not isinstance(value, dict):
        return None
    marks: dict[str, Any] = {}
    for key, item in list(value.items())[:_MAX_MARKS]:
        if not _mark_name(key):
            continue
        if _count(item) or (key == "reason" and _mark_name(item)):
            marks[key] = item
        elif isinstance(item, dict):
            items = list(item.items())[:_MAX_MARKS]
            marks[key] = {k: v for k, v in items if _mark_name(k) and _count(v)}
    return marks


def _mark_name(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= _MAX_MARK_CHARS and value.isprintable()


def _count(value: Any) -> bool:
    return type(value) is int and 0 <= value < 2**63


def _echo(value: Any) -> EchoInfo:
    """What the control saw of us, each field only when it has the right type."""
    client: dict[str, Any] = value if isinstance(value, dict) else {}
    ip, asn, cc, name = (client.get(k) for k in ("ip", "asn", "cc", "network_name"))
    return EchoInfo(
        ip=ip if isinstance(ip, str) else None,
        asn=asn if isinstance(asn, int) else None,
        cc=cc if isinstance(cc, str) else None,
        network_name=name if isinstance(name, str) else None,
    )
