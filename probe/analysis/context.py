"""The case as the rules see it (`Context`): built once per judged case."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from probe.addresses import is_ipv6
from probe.analysis.case import Case, TargetFacts
from probe.analysis.common import is_interrupted, norm_ip
from probe.analysis.fingerprints import FingerprintDB
from probe.analysis.flows import ControlView, Flow
from probe.analysis.vocabulary import (
    BLOCKED,
    DOWN,
    INCONCLUSIVE,
    NO_ROUTE,
    REACHED_BEFORE,
    REACHED_NOTHING,
    Blocking,
    EndpointOutcome,
)
from probe.i18n.message import M, Msg
from probe.observations import DNSQuery, Observations


@dataclass(slots=True)
class Context:
    """A `Case` prepared for judging: the control's flows found, and the lookups every rule
    needs (the fingerprint database, which addresses and names are trusted)."""

    case: Case
    target: TargetFacts
    hostname: str | None  # the name resolved; None for an IP-literal target
    server_name: str
    expect_asn: frozenset[int]
    probe: Observations
    control: ControlView | None
    control_failure: str | None
    doh: Sequence[DNSQuery]
    offline: bool
    ipv6_ok: bool | None
    db: FingerprintDB
    probe_cc: str | None
    #: the target's check (dns, tcp, tls, http, https, mtproto; "" when the record says none)
    check: str
    #: the baseline sites answered: this connection works
    baselines_work: bool
    #: the round's facts about the whole service (`x_service`), when it recorded them
    service: Mapping[str, Any] | None
    #: address -> ASN, from every DNS answer of the case (probe, control, DoH)
    asn_of: dict[str, int] = field(default_factory=dict)
    trusted_ips: set[str] = field(default_factory=set)
    trusted_names: set[str] = field(default_factory=set)

    @property
    def offline_reason(self) -> Msg:
        """Why `offline` (read only when it is: most records never need the message)."""
        return self.case.vantage.unusable_reason(control_answered=self.control is not None)


def context_of(case: Case, db: FingerprintDB) -> Context:
    target = case.target
    control = ControlView.build(case.control) if case.control is not None else None
    ctx = Context(
        case=case,
        target=target,
        hostname=target.hostname,
        server_name=target.server_name,
        expect_asn=target.expect_asn,
        # the extra connections of an SNI swap are not attempts on the endpoint
        probe=case.probe.without_extras(),
        control=control,
        control_failure=case.control_failure,
        doh=case.doh,
        # offline or cut off from abroad (a shutdown): no failure proves anything
        offline=case.vantage.unusable(control_answered=control is not None),
        ipv6_ok=case.vantage.ipv6_ok,
        db=db,
        probe_cc=case.probe_cc,
        check=target.check,
        baselines_work=case.vantage.baselines_work,
        service=case.service,
    )
    _note_trust(ctx)
    return ctx


def _note_trust(ctx: Context) -> None:
    """Which network each answered address is in, and which addresses and names need no
    doubt: an IP-literal target, answers inside the target's `expect_asn`."""
    control_queries = ctx.control.obs.queries if ctx.control else []
    for queries in (ctx.probe.queries, ctx.doh, control_queries):
        for query in queries:
            for answer in query.answers:
                if answer.ip and answer.asn:
                    ctx.asn_of.setdefault(norm_ip(answer.ip), int(answer.asn))
    if ctx.hostname is None and ctx.target.host:
        ctx.trusted_ips.add(norm_ip(ctx.target.host))  # an IP-literal target: no DNS to doubt
    if not ctx.expect_asn:
        return
    for query in ctx.probe.queries:
        for answer in query.answers:
            if answer.ip and answer.asn and int(answer.asn) in ctx.expect_asn:
                ctx.trusted_ips.add(norm_ip(answer.ip))
                ctx.trusted_names.add(query.hostname.lower().rstrip("."))


def no_control_phrase(ctx: Context) -> Msg:
    if ctx.control_failure:
        return M(
            "no control to compare with (the control failed: {failure})",
            failure=ctx.control_failure,
        )
    return M("no control to compare with")


def fail_outcome(
    ctx: Context,
    flow: Flow,
    transport: str | None,
    layer: Blocking,
    failure: str | None,
    operation: str | None,
    what: Msg,
    control_ok: bool | None,
    exact: bool,
    reached: int | None = None,
) -> EndpointOutcome:
    """A step failed here: compare with the control's view of the same step. `what` names the
    step ("the TCP connect")."""
    ip, port = flow.origin or ("", 0)
    outcome = EndpointOutcome(ip, port, transport, INCONCLUSIVE, failure, operation)
    outcome.reached = REACHED_BEFORE.get(layer, REACHED_NOTHING) if reached is None else reached
    where = M("the control") if exact else M("the control (on its own addresses)")
    label, failed = outcome.label, str(failure)
    if is_interrupted(failure):
        outcome.why = M("{label} was interrupted before {what} finished", label=label, what=what)
    elif ctx.ipv6_ok is False and is_ipv6(ip):
        outcome.why = M("{label} is IPv6 and this vantage has no IPv6", label=label)
    elif ctx.ipv6_ok is not True and is_ipv6(ip) and failure in NO_ROUTE:
        outcome.why = M("{label} is IPv6 and this vantage seems to have no IPv6 route", label=label)
    elif control_ok is True:
        outcome.outcome, outcome.blocking = BLOCKED, layer
        outcome.why = M(
            "{what} to {label} failed here ({failure}) but worked at {where}",
            what=what,
            label=label,
            failure=failed,
            where=where,
        )
    elif control_ok is False:
        outcome.outcome = DOWN
        outcome.why = M(
            "{what} to {label} failed here ({failure}) and at {where} too",
            what=what,
            label=label,
            failure=failed,
            where=where,
        )
    else:
        outcome.unexplained_layer = layer
        outcome.unexplained_what = M(
            "{what} to {label} failed ({failure})", what=what, label=label, failure=failed
        )
        outcome.why = M(
            "{what} to {label} failed ({failure}), {no_control}",
            what=what,
            label=label,
            failure=failed,
            no_control=no_control_phrase(ctx),
        )
    return outcome
