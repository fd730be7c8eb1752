"""How a TLS handshake was blocked, and for how long: the SNI swap and residual blocking read
back from the extra handshakes (`x_purpose`, probe/round/measure/sni_swap.py). Pure.

- `x_evidence` (on a verdict blocked at `tls`): `sni-filter` when a benign name to the same
  address completed (any time: the swap or a residual sample), or when the target's name
  failed at the neutral server while a benign name completed there; `ip-filter` when the
  benign name to the same address failed too and nothing shows the name is filtered (the
  target's name completed at the neutral server, or none was tried). Nothing else is
  concluded (e.g. the neutral server unreachable altogether).
- `x_residual` (whenever residual samples were taken): how long the benign flow to the
  blocked address kept failing after the trigger (the target's failed handshake).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from probe import failures
from probe.analysis.common import norm_ip, sentence, split_address
from probe.analysis.vocabulary import (
    BLOCKED,
    CERTIFICATE_FAILURES,
    INCONCLUSIVE,
    TLS,
    EndpointOutcome,
    Verdict,
)
from probe.i18n.message import Clauses, M, Msg, Raw
from probe.observations import Observations, format_address
from probe.observations.connections import (
    NEUTRAL_CONTROL,
    RESIDUAL,
    RESIDUAL_NEUTRAL,
    SNI_NEUTRAL,
    SNI_SWAP,
)

SNI_FILTER = "sni-filter"
IP_FILTER = "ip-filter"


@dataclass(frozen=True, slots=True)
class Extra:
    """One extra connection: its purpose, where, whether the handshake completed, when."""

    purpose: str
    ip: str
    port: int
    server_name: str
    ok: bool
    failure: str | None
    t0: float

    @property
    def where(self) -> tuple[str, int]:
        return (self.ip, self.port)


def extras_of(obs: Observations) -> list[Extra]:
    """The extra connections of a target's observations, in the order they started."""
    connects = {c.transaction_id: c for c in obs.tcp_connect if c.x_purpose is not None}
    handshakes = {h.transaction_id: h for h in obs.tls_handshakes if h.x_purpose is not None}
    found = []
    for tid, connect in connects.items():
        handshake = handshakes.get(tid)
        if handshake is not None and handshake.x_purpose != connect.x_purpose:
            handshake = None
        failure = connect.failure if handshake is None else handshake.failure
        found.append(
            Extra(
                purpose=str(connect.x_purpose),
                ip=connect.ip,
                port=connect.port,
                server_name=handshake.server_name if handshake is not None else "",
                ok=handshake is not None and handshake.failure is None and connect.success,
                failure=failure,
                t0=connect.t0,
            )
        )
    found.sort(key=lambda e: e.t0)
    return found


def _triggers(obs: Observations) -> dict[tuple[str, int], float]:
    """The target's own failed handshakes: (ip, port) -> when the first one ended. A
    certificate that did not verify is no trigger: the handshake itself went through (a man
    in the middle is named by the certificate, not by the swap)."""
    out: dict[tuple[str, int], float] = {}
    for h in obs.tls_handshakes:
        if h.x_purpose is not None or h.failure is None or h.failure in CERTIFICATE_FAILURES:
            continue
        where = split_address(h.address)
        if where is not None:
            key = (norm_ip(where[0]), where[1])
            out[key] = min(out.get(key, h.t), h.t)
    return out


def evidence(obs: Observations) -> str | None:
    """`sni-filter`, `ip-filter` or None (see the module's docstring)."""
    return _evidence(obs)[0]


#: what showed the evidence
SAME_ADDRESS = "same-address"
NEUTRAL_SERVER = "neutral-server"


def _evidence(obs: Observations) -> tuple[str | None, str]:
    """The evidence and what showed it (SAME_ADDRESS or NEUTRAL_SERVER)."""
    triggers = _triggers(obs)
    extras = extras_of(obs)
    if not triggers or not extras:
        return None, ""
    same = [
        e
        for e in extras
        if e.purpose in (SNI_SWAP, RESIDUAL) and (norm_ip(e.ip), e.port) in triggers
    ]
    neutral_ok = any(e.ok for e in extras if e.purpose in (NEUTRAL_CONTROL, RESIDUAL_NEUTRAL))
    named = [e for e in extras if e.purpose == SNI_NEUTRAL]
    if any(e.ok for e in same):
        return SNI_FILTER, SAME_ADDRESS
    if named and not any(e.ok for e in named) and neutral_ok:
        return SNI_FILTER, NEUTRAL_SERVER
    if same and (not named or any(e.ok for e in named)):
        return IP_FILTER, NEUTRAL_SERVER if named else SAME_ADDRESS
    return None, ""


def residual(obs: Observations) -> dict[str, Any] | None:
    """How long the benign flow to the blocked address failed after the trigger, from the
    residual samples: `seconds` (the trigger to the first sample that completed; None when
    none did), `at_least` (to the last sample that failed), the counts, and the neutral
    server's samples beside them; None when no sample was taken."""
    triggers = _triggers(obs)
    extras = extras_of(obs)
    samples = [e for e in extras if e.purpose == RESIDUAL]
    if not samples:
        return None
    where = (norm_ip(samples[0].ip), samples[0].port)
    trigger = triggers.get(where)
    if trigger is None:
        return None
    mine = [e for e in samples if (norm_ip(e.ip), e.port) == where]
    first_ok = next((e for e in mine if e.ok), None)
    failed = [e for e in mine if not e.ok and (first_ok is None or e.t0 < first_ok.t0)]
    neutral = [e for e in extras if e.purpose == RESIDUAL_NEUTRAL]
    return {
        "address": format_address(samples[0].ip, samples[0].port),
        "server_name": samples[0].server_name,
        "ended": first_ok is not None,
        "seconds": None if first_ok is None else round(max(first_ok.t0 - trigger, 0.0), 3),
        "at_least": round(max(failed[-1].t0 - trigger, 0.0), 3) if failed else 0.0,
        "samples": len(mine),
        "failed": len(failed),
        "failures": sorted({e.failure for e in failed if e.failure}),
        "neutral_samples": len(neutral),
        "neutral_failed": sum(1 for e in neutral if not e.ok),
    }


#: the failures of a handshake a censor produces (an injected reset or FIN, silence)
CENSOR_FAILURES = frozenset(
    {failures.CONNECTION_RESET, failures.EOF_ERROR, failures.GENERIC_TIMEOUT}
)


def apply_local_evidence(outcomes: list[EndpointOutcome], obs: Observations) -> None:
    """Without a control to compare with, the SNI swap is evidence that stands alone: a
    handshake with the target's name that failed the censor's way (reset, FIN, silence) on
    an address where a benign name completed — or with a name that also fails on a neutral
    server where a benign name completes — is blocked at `tls` (unconfirmed)."""
    found, basis = _evidence(obs)
    if found != SNI_FILTER:
        return
    triggers = _triggers(obs)
    benign_ok = {
        (norm_ip(e.ip), e.port)
        for e in extras_of(obs)
        if e.ok and e.purpose in (SNI_SWAP, RESIDUAL)
    }
    for o in outcomes:
        key = (norm_ip(o.address), o.port)
        if (
            o.outcome != INCONCLUSIVE
            or o.unexplained_layer != TLS
            or o.failure not in CENSOR_FAILURES
            or key not in triggers
            or (basis == SAME_ADDRESS and key not in benign_ok)
        ):
            continue
        o.outcome, o.blocking, o.confirmed = BLOCKED, TLS, False
        o.why = Clauses(
            (
                o.unexplained_what or Raw(""),
                M(
                    "the SNI swap shows the name is filtered, not the address or the server "
                    "(local evidence only: no control to compare with)"
                ),
            )
        )


def annotate(verdict: Verdict, obs: Observations) -> Verdict:
    """The verdict with `x_evidence` (when blocked at `tls`) and `x_residual` (when sampled),
    each named in the reason too; unchanged when the target made no extra connection."""
    if not any(c.x_purpose is not None for c in obs.tcp_connect):
        return verdict
    found, basis = _evidence(obs) if verdict.blocking == TLS else (None, "")
    lasted = residual(obs)
    clauses: list[Msg] = []
    if found is not None:
        clauses.append(_EVIDENCE_CLAUSES[(found, basis)])
    if lasted is not None and lasted["failed"]:
        clauses.append(_residual_clause(lasted))
    if found is None and lasted is None:
        return verdict
    return replace(
        verdict, message=sentence(verdict.message, *clauses), evidence=found, residual=lasted
    )


_EVIDENCE_CLAUSES: dict[tuple[str, str], Msg] = {
    (SNI_FILTER, SAME_ADDRESS): M(
        "SNI filtering: a handshake with a benign name to the same address completed"
    ),
    (SNI_FILTER, NEUTRAL_SERVER): M(
        "SNI filtering: the name fails on a neutral server too, where a benign name completes"
    ),
    (IP_FILTER, SAME_ADDRESS): M(
        "address filtering: a handshake with a benign name to the same address failed too"
    ),
    (IP_FILTER, NEUTRAL_SERVER): M(
        "address filtering: a handshake with a benign name to the same address failed too, "
        "and the name completes on a neutral server"
    ),
}


def _residual_clause(lasted: dict[str, Any]) -> Msg:
    if lasted["ended"]:
        return M(
            "residual blocking: a benign handshake to {address} kept failing for about "
            "{seconds} s after the trigger",
            address=lasted["address"],
            seconds=round(lasted["seconds"]),
        )
    # never ended: residual blocking, or an address that is blocked for good
    return M(
        "a benign handshake to {address} still failed {seconds} s after the trigger (when "
        "the probe stopped trying)",
        address=lasted["address"],
        seconds=round(lasted["at_least"]),
    )
