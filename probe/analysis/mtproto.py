"""MTProto: each transport's handshake judged, and which transports still get through."""

from __future__ import annotations

from collections.abc import Sequence

from probe.analysis.common import is_interrupted, name_list, was_measured
from probe.analysis.context import Context, fail_outcome
from probe.analysis.flows import Flow
from probe.analysis.vocabulary import (
    BLOCKED,
    FORGED_MTPROTO,
    OK,
    PROTOCOL,
    REACHED_RESPONSE,
    REACHED_TLS,
    SKIPPED,
    EndpointOutcome,
)
from probe.i18n.message import M, Msg
from probe.observations import MTProtoHandshake


def judge_mtproto(
    ctx: Context, flow: Flow, m: MTProtoHandshake, siblings: Sequence[MTProtoHandshake]
) -> EndpointOutcome:
    ip, port = flow.origin or ("", 0)
    outcome = EndpointOutcome(ip, port, m.transport, OK, m.failure, m.failed_operation)
    outcome.reached = REACHED_TLS  # connected; the handshake is what failed (if it did)
    if m.success:
        outcome.why = (
            M("{label} answered MTProto with a transport error code", label=outcome.label)
            if m.reply == "transport_error"
            else M("{label} answered MTProto with a genuine resPQ", label=outcome.label)
        )
        outcome.proves_address = True
        outcome.reached = REACHED_RESPONSE
        return outcome
    if not was_measured(m.failure):
        outcome.outcome = SKIPPED
        outcome.why = M("{label} was not measured", label=outcome.label)
        return outcome
    control_ok = ctx.control.mtproto_ok(flow.origin, m.transport) if ctx.control else None
    working = [s.transport for s in siblings if s.success]
    what = M("the MTProto handshake over {transport}", transport=str(m.transport))
    if control_ok is None and not is_interrupted(m.failure):
        if m.failure in FORGED_MTPROTO:
            outcome.outcome, outcome.blocking = BLOCKED, PROTOCOL
            outcome.why = M(
                "{label} connected but the MTProto reply was forged ({failure}): "
                "something other than Telegram answered",
                label=outcome.label,
                failure=str(m.failure),
            )
            return outcome
        if working:
            outcome.outcome, outcome.blocking = BLOCKED, PROTOCOL
            outcome.why = M(
                "{what} to {label} failed ({failure}) while {transports} got genuine replies "
                "from the same address",
                what=what,
                label=outcome.label,
                failure=str(m.failure),
                transports=name_list(working),
            )
            return outcome
    return fail_outcome(
        ctx, flow, m.transport, PROTOCOL, m.failure, m.failed_operation, what, control_ok, True
    )


def transport_note(outcomes: Sequence[EndpointOutcome]) -> Msg | None:
    """For MTProto: which transports get through, which do not (obfuscated proxies...)."""
    by_transport: dict[str, set[str]] = {}
    for o in outcomes:
        if o.transport:
            by_transport.setdefault(o.transport, set()).add(o.outcome)
    working = [t for t, s in by_transport.items() if OK in s]
    blocked = [t for t, s in by_transport.items() if BLOCKED in s]
    if working and blocked:
        if "obfuscated2" in working:
            return M(
                "{working} still get through while {blocked} are interfered with "
                "(obfuscated proxies work)",
                working=name_list(working, 4),
                blocked=name_list(blocked, 4),
            )
        return M(
            "{working} still get through while {blocked} are interfered with",
            working=name_list(working, 4),
            blocked=name_list(blocked, 4),
        )
    return None
