"""One endpoint flow judged at the first step that failed (TCP connect, TLS handshake), handing
over to the HTTP and MTProto rules when the connection worked."""

from __future__ import annotations

from probe import failures
from probe.analysis.common import was_measured
from probe.analysis.context import Context, fail_outcome
from probe.analysis.flows import Flow
from probe.analysis.http import control_fetched, judge_http
from probe.analysis.mtproto import judge_mtproto
from probe.analysis.vocabulary import (
    CERTIFICATE_FAILURES,
    INCONCLUSIVE,
    OK,
    REACHED_TCP,
    REACHED_TLS,
    SKIPPED,
    TCP,
    TLS,
    EndpointOutcome,
)
from probe.i18n.message import M
from probe.observations import TLSHandshake


def judge_flow(ctx: Context, flow: Flow) -> list[EndpointOutcome]:
    """One endpoint flow judged at the first step that failed; MTProto and HTTP take over
    once the connection (and the handshake) worked."""
    tcp = flow.origin_tcp()
    if tcp is not None and not tcp.success:
        return [_tcp_failed(ctx, flow, tcp.failure)]
    tls = flow.origin_tls()
    if tls is not None and tls.failure:
        return [_tls_failed(ctx, flow, tls)]
    verified = tls is not None and not tls.no_tls_verify
    if flow.mtproto:
        return [judge_mtproto(ctx, flow, m, flow.mtproto) for m in flow.mtproto]
    if flow.requests:
        outcomes = judge_http(ctx, flow, verified)
        if (
            verified
            and tls is not None
            and ctx.hostname
            and tls.server_name.lower() == ctx.hostname
        ):
            for outcome in outcomes:
                outcome.proves_address = True
        return outcomes
    ip, port = flow.origin or ("", 0)
    outcome = EndpointOutcome(ip, port, None, OK)
    if tls is not None:
        if verified and tls.server_name.lower() == (ctx.hostname or tls.server_name.lower()):
            outcome.proves_address = True
        outcome.why = (
            M(
                "the TLS handshake for {server_name} on {label} verified",
                server_name=tls.server_name,
                label=outcome.label,
            )
            if verified
            else M(
                "the TLS handshake for {server_name} on {label} completed (unverified)",
                server_name=tls.server_name,
                label=outcome.label,
            )
        )
        outcome.reached = REACHED_TLS
    elif tcp is not None:
        outcome.why = M("the TCP connect to {label} succeeded", label=outcome.label)
        outcome.reached = REACHED_TCP
    else:
        outcome.outcome = INCONCLUSIVE
        outcome.why = M("{label} has no usable observation", label=outcome.label)
    return [outcome]


def _tcp_failed(ctx: Context, flow: Flow, failure: str | None) -> EndpointOutcome:
    if not was_measured(failure):
        ip, port = flow.origin or ("", 0)
        return EndpointOutcome(ip, port, None, SKIPPED, failure, failures.CONNECT)
    control = ctx.control
    ok, exact = control.tcp_ok(flow.origin) if control else (None, True)
    if ok is None and control is not None:
        ok, exact = control_fetched(ctx), False
    what = M("the TCP connect")
    return fail_outcome(ctx, flow, None, TCP, failure, failures.CONNECT, what, ok, exact)


def _tls_failed(ctx: Context, flow: Flow, tls: TLSHandshake) -> EndpointOutcome:
    control = ctx.control
    ok, exact = control.tls_ok(flow.origin, tls.server_name) if control else (None, True)
    if ok is None and control is not None:
        ok, exact = control_fetched(ctx), False
    what = M("the TLS handshake for {server_name}", server_name=tls.server_name)
    if tls.failure in CERTIFICATE_FAILURES:
        what = M("certificate verification for {server_name}", server_name=tls.server_name)
    outcome = fail_outcome(
        ctx, flow, None, TLS, tls.failure, failures.TLS_HANDSHAKE, what, ok, exact
    )
    if tls.failure in CERTIFICATE_FAILURES and ok is True and outcome.why is not None:
        outcome.why = M("{evidence} (a man in the middle)", evidence=outcome.why)
    return outcome
