"""The target: its endpoints and its DNS judged together into one `Verdict`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from probe import failures
from probe.addresses import is_ipv6
from probe.analysis import sni_swap
from probe.analysis.attempts import apply_ipv6, merge_attempts
from probe.analysis.case import Case, case_from_record
from probe.analysis.common import name_list, sentence
from probe.analysis.context import Context, context_of
from probe.analysis.dns import DNSResult, judge_dns
from probe.analysis.endpoint import judge_flow
from probe.analysis.fingerprints import FingerprintDB, default_db
from probe.analysis.flows import flows_of
from probe.analysis.mtproto import transport_note
from probe.analysis.quic import judge_quic
from probe.analysis.service_rules import local_evidence
from probe.analysis.stun import apply_stun
from probe.analysis.vocabulary import (
    BLOCKED,
    CONNECTING_CHECKS,
    DNS,
    DOWN,
    INCONCLUSIVE,
    INTERRUPTED_MESSAGE,
    LAYERS,
    OK,
    PAGE_CHECKS,
    PROTOCOL,
    REACHED_TCP,
    SKIPPED,
    Analysis,
    EndpointOutcome,
    Status,
    Verdict,
)
from probe.i18n.message import Clauses, M, Msg, Raw, Text

# --- the target -----------------------------------------------------------------------------


def _apply_vantage(ctx: Context, outcomes: list[EndpointOutcome]) -> None:
    """On an offline vantage a failure proves nothing: never blocked, never down."""
    if not ctx.offline:
        return
    for o in outcomes:
        if o.outcome in (BLOCKED, DOWN):
            o.outcome, o.blocking, o.confirmed = INCONCLUSIVE, None, False


def _apply_local_evidence(ctx: Context, outcomes: list[EndpointOutcome]) -> None:
    """Without a control, a failure the whole service shares while the baselines work is
    blocking (unconfirmed): probe.service's rules A and B, over the round's `x_service`."""
    if ctx.control is not None or ctx.offline or not ctx.baselines_work or ctx.service is None:
        return
    check = ctx.check
    for o in outcomes:
        if o.outcome != INCONCLUSIVE or o.unexplained_layer is None or o.failure is None:
            continue
        found = local_evidence(ctx.service, check, o.unexplained_layer, o.failure)
        if found is None:
            continue
        o.outcome, o.blocking, o.confirmed = BLOCKED, o.unexplained_layer, False
        o.why = Clauses(
            (
                o.unexplained_what or Raw(""),
                M(
                    "{evidence}, while the baseline sites work, so your connection is fine "
                    "(local evidence only: no control to compare with)",
                    evidence=found.phrase,
                ),
            )
        )


def _needs(check: str) -> Msg:
    if check in PAGE_CHECKS:
        return M("the {check} check needs an HTTP answer or a TLS handshake", check=check)
    return M("the {check} check needs a connection", check=check)


@dataclass(slots=True)
class _Tally:
    """The target's endpoint outcomes sorted by status. `ok` needs the evidence the check
    promises: for a web target a bare TCP connect (OONI connects to every address it resolved)
    says the address is reachable, not the service; such endpoints are `connect_only`."""

    measured: list[EndpointOutcome]
    connect_only: list[EndpointOutcome]
    #: what the connect-only endpoints showed, and what the check needs
    partial: Msg | None
    #: `measured` by outcome, in order (sorted once: the verdict asks up to five times)
    by_outcome: dict[Status, list[EndpointOutcome]]

    def of(self, status: Status) -> list[EndpointOutcome]:
        return self.by_outcome.get(status) or []


def _tally(ctx: Context, outcomes: list[EndpointOutcome]) -> _Tally:
    measured = [o for o in outcomes if o.outcome != SKIPPED]
    connect_only = [
        o
        for o in measured
        if ctx.check in PAGE_CHECKS
        and o.outcome == OK
        and o.reached <= REACHED_TCP
        and o.transport is None
    ]
    partial = (
        M(
            "the TCP connect to {addresses} succeeded, but {needs}",
            addresses=name_list([o.label for o in connect_only]),
            needs=_needs(ctx.check),
        )
        if connect_only
        else None
    )
    if connect_only:
        measured = [o for o in measured if all(o is not c for c in connect_only)]
    by_outcome: dict[Status, list[EndpointOutcome]] = {}
    for o in measured:
        by_outcome.setdefault(o.outcome, []).append(o)
    return _Tally(measured, connect_only, partial, by_outcome)


def _verdict(ctx: Context, dns: DNSResult, outcomes: list[EndpointOutcome]) -> Verdict:
    tally = _tally(ctx, outcomes)
    if ctx.offline:
        return _offline_verdict(ctx, dns, tally)
    if dns.status == BLOCKED:
        return Verdict(BLOCKED, DNS, dns.confirmed, dns.fingerprints, sentence(dns.reason))
    if tally.of(BLOCKED):
        return _blocked_verdict(tally)
    if dns.status == DOWN:
        return Verdict(DOWN, None, False, [], sentence(dns.reason))
    if tally.of(OK):
        return _ok_verdict(tally)
    return _unclear_verdict(ctx, dns, tally)


def _offline_verdict(ctx: Context, dns: DNSResult, tally: _Tally) -> Verdict:
    """On an offline vantage nothing is blocked; a target that worked still did."""
    ok = tally.of(OK)
    if ok:
        return Verdict(OK, None, False, [], sentence(ok[0].why or Raw(""), ctx.offline_reason))
    evidence = (
        M("seen anyway: {reason}", reason=dns.reason or "") if dns.status == BLOCKED else None
    )
    return Verdict(
        INCONCLUSIVE, None, False, dns.fingerprints, sentence(ctx.offline_reason, evidence)
    )


def _blocked_verdict(tally: _Tally) -> Verdict:
    blocked, measured, ok = tally.of(BLOCKED), tally.measured, tally.of(OK)
    layer = min((o.blocking or PROTOCOL for o in blocked), key=LAYERS.index)
    first = next(o for o in blocked if o.blocking == layer)
    confirmed = any(o.confirmed for o in blocked)
    prints = list(dict.fromkeys(f for o in blocked for f in o.fingerprints))
    count = (
        M("{blocked} of {measured} endpoints blocked", blocked=len(blocked), measured=len(measured))
        if len(measured) > 1
        else None
    )
    still = (
        M("still working: {addresses}", addresses=name_list([o.label for o in ok])) if ok else None
    )
    note = transport_note(measured)
    family = _family_note(blocked, ok)
    return Verdict(
        BLOCKED, layer, confirmed, prints, sentence(first.why, count, family, note or still)
    )


def _family_note(blocked: list[EndpointOutcome], ok: list[EndpointOutcome]) -> Msg | None:
    """When every blocked endpoint is of one address family and only the other family works:
    the censor blocks one family (IPv6 left open, or blocked alone), which says which way the
    app still gets through."""
    blocked_v6 = {is_ipv6(o.address) for o in blocked}
    ok_v6 = {is_ipv6(o.address) for o in ok}
    if len(blocked_v6) != 1 or ok_v6 != {not next(iter(blocked_v6))}:
        return None
    if blocked_v6 == {True}:
        return M("only IPv6 is blocked: IPv4 still works")
    return M("only IPv4 is blocked: IPv6 still works")


def _ok_verdict(tally: _Tally) -> Verdict:
    ok, down, unclear = tally.of(OK), tally.of(DOWN), tally.of(INCONCLUSIVE)
    summary: Text | None
    if len(tally.measured) == 1:
        summary = ok[0].why
    else:
        summary = M(
            "{ok} of {measured} endpoints work ({evidence})",
            ok=len(ok),
            measured=len(tally.measured),
            evidence=ok[0].why or "",
        )
    extra = None
    if down:
        extra = M(
            "{addresses} fail at the control too (down, not blocked)",
            addresses=name_list([o.label for o in down]),
        )
    elif unclear:
        extra = M(
            "{addresses} inconclusive ({evidence})",
            addresses=name_list([o.label for o in unclear]),
            evidence=unclear[0].why or "",
        )
    return Verdict(OK, None, False, [], sentence(summary, extra))


def _unclear_verdict(ctx: Context, dns: DNSResult, tally: _Tally) -> Verdict:
    """Nothing blocked and nothing worked: down, or inconclusive with the first reason."""
    measured, partial = tally.measured, tally.partial
    down, unclear = tally.of(DOWN), tally.of(INCONCLUSIVE)
    if not measured and dns.status in (OK, INCONCLUSIVE):
        if ctx.check in CONNECTING_CHECKS and (dns.status == OK or tally.connect_only):
            why = partial or (
                M("nothing was fetched, and {needs}", needs=_needs(ctx.check))
                if ctx.check in PAGE_CHECKS
                else M("nothing connected, and {needs}", needs=_needs(ctx.check))
            )
            return Verdict(INCONCLUSIVE, None, False, [], sentence(dns.reason, why))
        return Verdict(dns.status or INCONCLUSIVE, None, False, [], sentence(dns.reason))
    v6_only_unclear = all(is_ipv6(o.address) and ctx.ipv6_ok is False for o in unclear)
    if down and v6_only_unclear:
        why = M("the service is down, not censored")
        return Verdict(DOWN, None, False, [], sentence(down[0].why, why, partial))
    if unclear:
        doubt = dns.reason if dns.status == INCONCLUSIVE else None
        return Verdict(INCONCLUSIVE, None, False, [], sentence(unclear[0].why, partial, doubt))
    if not measured and partial:
        return Verdict(INCONCLUSIVE, None, False, [], sentence(partial))
    if not measured:
        target_name = ctx.hostname or ctx.target.name
        nothing = (
            M("nothing was measured for {target}", target=target_name)
            if target_name
            else M("nothing was measured for this target")
        )
        return Verdict(INCONCLUSIVE, None, False, [], sentence(nothing))
    return Verdict(INCONCLUSIVE, None, False, [], sentence(measured[0].why))


def judge(case: Case, fingerprints: FingerprintDB | None = None) -> Analysis:
    """The verdict for one case, and the outcome of each endpoint flow. Pure: no I/O (once the
    fingerprint database is loaded), no clock.

    Whatever shape the observations have (they come from hostile servers, or from files and
    peers we do not control), the verdict is inconclusive with the reason saying so, never an
    exception."""
    try:
        return _judge(case, fingerprints)
    except _MALFORMED as exc:
        return _unanalysable(exc)


def analyze(record: dict[str, Any], fingerprints: FingerprintDB | None = None) -> Analysis:
    """`judge` of the case a stored record describes (`case_from_record`): what `probe
    analyze` and `probe report` give, and what the runner wrote."""
    test_keys = record.get("test_keys") if isinstance(record, dict) else None
    if isinstance(test_keys, dict) and test_keys.get("failure") == failures.INTERRUPTED:
        return Analysis(Verdict(INCONCLUSIVE, None, False, [], INTERRUPTED_MESSAGE), [])
    try:
        case = case_from_record(record)
    except _MALFORMED as exc:
        return _unanalysable(exc)
    from probe.analysis.followups import amend  # the follow-up checks' clauses, if any

    analysis = judge(case, fingerprints)
    return amend(analysis, dict(test_keys)) if isinstance(test_keys, dict) else analysis


#: What a field of an unexpected form raises on its way through the rules.
_MALFORMED = (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError)


def _unanalysable(exc: BaseException) -> Analysis:
    reason = M(
        "The record could not be analysed: one of its fields has an unexpected form ({error}).",
        error=type(exc).__name__,
    )
    return Analysis(Verdict(INCONCLUSIVE, None, False, [], reason), [])


def _judge(case: Case, fingerprints: FingerprintDB | None) -> Analysis:
    if case.interrupted:
        return Analysis(Verdict(INCONCLUSIVE, None, False, [], INTERRUPTED_MESSAGE), [])
    ctx = context_of(case, fingerprints if fingerprints is not None else default_db())
    attempts: list[EndpointOutcome] = []
    for flow in flows_of(ctx.probe):
        attempts.extend(judge_flow(ctx, flow))
    proven = {o.address for o in attempts if o.proves_address}
    outcomes = merge_attempts(attempts)
    apply_ipv6(ctx, outcomes)
    dns = judge_dns(ctx, proven)
    _apply_dns(dns, outcomes)
    _apply_vantage(ctx, outcomes)
    _apply_local_evidence(ctx, outcomes)
    if not ctx.offline:
        sni_swap.apply_local_evidence(outcomes, case.probe)
    verdict = sni_swap.annotate(_verdict(ctx, dns, outcomes), case.probe)
    finding = judge_quic(case.probe, case.control, case.vantage.neutral_quic_ok)
    if finding is not None:
        message = verdict.message
        if finding.note is not None:
            message = M("{verdict} {quic}", verdict=message, quic=sentence(finding.note))
        verdict = replace(verdict, message=message, quic=finding.to_dict())
    verdict = apply_stun(verdict, case.probe, case.control, case.vantage.ipv6_ok)
    return Analysis(verdict, outcomes)


def _apply_dns(dns: DNSResult, outcomes: list[EndpointOutcome]) -> None:
    """Endpoints on a lying DNS answer reach the censor, not the service: blocked by DNS,
    whatever happened on them. Endpoints on a doubtful answer prove little."""
    for o in outcomes:
        if dns.status == BLOCKED and o.address in dns.suspicious and o.outcome != SKIPPED:
            o.outcome, o.blocking = BLOCKED, DNS
            o.confirmed = dns.confirmed
            o.fingerprints = list(dns.fingerprints)
            o.why = dns.reason
    for o in outcomes:
        if o.address in dns.doubtful and o.outcome == OK and not o.proves_address:
            o.outcome = INCONCLUSIVE
            o.why = dns.reason
