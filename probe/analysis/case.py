"""The analysis's input, typed: one target's `Case`, and how a stored record becomes one.

The runner builds a `Case` from what it holds in memory (the observations it just made, the
control's, the round's vantage facts); `probe analyze` and `probe report` parse it from a stored
record with `case_from_record`. Both then go through the same `judge`, so a record analysed
again gives the verdict it was written with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from probe import failures
from probe.addresses import parse_ip
from probe.analysis.common import url_endpoint
from probe.analysis.quic import neutral_quic_ok
from probe.analysis.vocabulary import PAGE_CHECKS
from probe.i18n.message import M, Msg
from probe.observations import DNSQuery, Observations


@dataclass(frozen=True, slots=True)
class TargetFacts:
    """What the analysis needs of a target, read from its wire form (`test_keys.target`)."""

    #: the host or the URL's host, lower case, without brackets or a final dot ("" if none)
    host: str = ""
    #: the check (dns, tcp, tls, http, https, mtproto); from the URL's scheme when not given
    check: str = ""
    url: str = ""
    #: the name the TLS handshake asks for: the target's `sni`, else its host
    server_name: str = ""
    expect_asn: frozenset[int] = frozenset()
    #: how the target is named in a sentence when it has no host name (an IP literal, a URL)
    name: str = ""

    @property
    def hostname(self) -> str | None:
        """The name that is resolved; None for an IP-literal target (no DNS to judge)."""
        return None if not self.host or parse_ip(self.host) is not None else self.host

    @classmethod
    def from_wire(cls, target: Mapping[str, Any]) -> TargetFacts:
        host = _host(target)
        sni = target.get("sni")
        expect = target.get("expect_asn") or []
        return cls(
            host=host,
            check=_check(target),
            url=str(target.get("url") or ""),
            server_name=(sni if isinstance(sni, str) and sni else host).lower(),
            expect_asn=frozenset(
                int(a) for a in expect if isinstance(a, int | str) and str(a).isdigit()
            ),
            name=str(target.get("host") or target.get("url") or ""),
        )


def _host(target: Mapping[str, Any]) -> str:
    host = target.get("host")
    if isinstance(host, str) and host:
        return host.strip().strip("[]").rstrip(".").lower()
    url = target.get("url")
    if isinstance(url, str):
        endpoint = url_endpoint(url)
        if endpoint:
            return endpoint[0].rstrip(".").lower()
    return ""


def _check(target: Mapping[str, Any]) -> str:
    check = target.get("check")
    if isinstance(check, str) and check:
        return check.lower()
    url = target.get("url")
    if isinstance(url, str) and "://" in url:
        scheme = url.split("://", 1)[0].lower()
        return scheme if scheme in PAGE_CHECKS else ""
    return ""


_NOT_RECORDED = object()


#: `VantageFacts.connectivity`: the baselines (or the control) answered; nothing did; only the
#: domestic baselines did (international connectivity is down: a shutdown or an allowlist)
ONLINE, OFFLINE, SHUTDOWN = "online", "offline", "shutdown"


@dataclass(frozen=True, slots=True)
class VantageFacts:
    """The round's facts about the vantage (`x_vantage`): the one place that says whether the
    probe was offline (or cut off from abroad) and whether its connection works."""

    baseline_ok: int = 0
    baseline_total: int = 0
    #: None when not recorded: then a control that answered counts as reachable
    control_reachable: bool | None = None
    ipv6_ok: bool | None = None
    #: the domestic baselines (sites inside the country, reachable during shutdowns): 0 of 0
    #: when the round measured none
    domestic_ok: int = 0
    domestic_total: int = 0
    #: the round's QUIC handshake to the control's neutral QUIC endpoint (None: not made)
    neutral_quic_ok: bool | None = None

    @classmethod
    def from_wire(cls, x_vantage: Mapping[str, Any]) -> VantageFacts:
        reachable = x_vantage.get("control_reachable", _NOT_RECORDED)
        ipv6_ok = x_vantage.get("ipv6_ok")
        return cls(
            baseline_ok=int(x_vantage.get("baseline_ok") or 0),
            baseline_total=int(x_vantage.get("baseline_total") or 0),
            control_reachable=None if reachable is _NOT_RECORDED else bool(reachable),
            ipv6_ok=ipv6_ok if isinstance(ipv6_ok, bool) else None,
            domestic_ok=int(x_vantage.get("domestic_ok") or 0),
            domestic_total=int(x_vantage.get("domestic_total") or 0),
            neutral_quic_ok=neutral_quic_ok(x_vantage),
        )

    def connectivity(self, control_answered: bool = False) -> str:
        """ONLINE; OFFLINE when no baseline site answered and no control was reachable;
        SHUTDOWN when, in that case, a domestic baseline did answer: the country's own network
        works and the way out does not (a shutdown, or a network that lets through only an
        allowlist). Either way a failure here proves nothing about any target."""
        reachable = control_answered if self.control_reachable is None else self.control_reachable
        if self.baseline_total == 0 or self.baseline_ok > 0 or reachable:
            return ONLINE
        return SHUTDOWN if self.domestic_ok > 0 else OFFLINE

    def offline(self, control_answered: bool = False) -> bool:
        """Nothing answered at all, domestic baselines included (see `connectivity`)."""
        return self.connectivity(control_answered) == OFFLINE

    def shutdown(self, control_answered: bool = False) -> bool:
        """International connectivity is down while domestic sites work (see `connectivity`)."""
        return self.connectivity(control_answered) == SHUTDOWN

    def unusable(self, control_answered: bool = False) -> bool:
        """Offline or shut down: the analysis calls nothing blocked or down."""
        return self.connectivity(control_answered) != ONLINE

    def unusable_reason(self, control_answered: bool = False) -> Msg:
        if self.shutdown(control_answered):
            return self.shutdown_reason
        return self.offline_reason

    @property
    def offline_reason(self) -> Msg:
        return M(
            "this vantage looks offline (0 of {total} baseline sites answered "
            "and no control server was reachable)",
            total=self.baseline_total,
        )

    @property
    def shutdown_reason(self) -> Msg:
        return M(
            "international connectivity looks down here (a shutdown or an allowlisted network): "
            "{ok} of {domestic} domestic sites answered, but 0 of {total} international "
            "baseline sites and no control server",
            ok=self.domestic_ok,
            domestic=self.domestic_total,
            total=self.baseline_total,
        )

    @property
    def baselines_work(self) -> bool:
        """At least half the baseline sites (and at least one) answered: the connection is
        fine."""
        ok, total = self.baseline_ok, self.baseline_total
        return total > 0 and ok >= 1 and 2 * ok >= total


@dataclass(frozen=True, slots=True)
class Case:
    """Everything one target's verdict depends on."""

    target: TargetFacts
    probe: Observations
    #: the control's observations of the same target; None without a control
    control: Observations | None = None
    control_failure: str | None = None
    #: DNS over HTTPS asked as a DNS-only control (`x_doh`)
    doh: Sequence[DNSQuery] = ()
    vantage: VantageFacts = VantageFacts()
    probe_cc: str | None = None
    #: the round's facts about the whole service (`x_service`), once the service is measured
    service: Mapping[str, Any] | None = None
    #: the run was interrupted before this target was measured
    interrupted: bool = False


def case_from_record(record: Mapping[str, Any]) -> Case:
    """The case a stored record describes. Fields of the wrong type become defaults (the
    observation readers do the same); a shape that still does not fit raises TypeError,
    ValueError or the like, which `analyze` turns into an inconclusive verdict."""
    if not isinstance(record, Mapping):
        raise TypeError("a record is a JSON object")
    test_keys = _mapping(record.get("test_keys"))
    control = test_keys.get("control")
    # DNS over HTTPS asked as a control (`x_doh`). The probe's own DoH/DoT lookups in
    # `queries` (OONI's engines doh and dot) are observations, judged like any other.
    doh = test_keys.get("x_doh")
    service = test_keys.get("x_service")
    probe_cc = record.get("probe_cc")
    control_failure = test_keys.get("control_failure")
    return Case(
        target=TargetFacts.from_wire(_mapping(test_keys.get("target"))),
        probe=Observations.from_dict(test_keys),
        control=Observations.from_dict(control) if isinstance(control, dict) else None,
        control_failure=str(control_failure) if control_failure else None,
        doh=tuple(DNSQuery.from_dict(q) for q in doh or [] if isinstance(q, dict)),
        vantage=VantageFacts.from_wire(_mapping(test_keys.get("x_vantage"))),
        probe_cc=probe_cc if isinstance(probe_cc, str) else None,
        service=service if isinstance(service, dict) else None,
        interrupted=test_keys.get("failure") == failures.INTERRUPTED,
    )


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
