"""QUIC evidence: what a target's QUIC handshakes (`quic_handshakes`, targets with
``quic = true``) add to its verdict. Pure, like the rest of the analysis.

The rule (docs/verdicts.md, "QUIC"): QUIC never changes a target's status by itself — browsers
and apps fall back to TCP, so a target reachable over TCP/TLS stays `ok`. What QUIC adds is
*evidence*, in `verdict.x_quic` and a sentence after the reason:

- ``quic``: every QUIC handshake of the target failed here while TLS over TCP to it worked, and
  QUIC is not simply unsupported: the control completed a QUIC handshake with it, or (without a
  control) the failure is one censorship produces (silence until our deadline, a reset).
- ``udp-443``: the same, and the round's neutral QUIC endpoint (run by the control,
  ``x_vantage.neutral_quic_ok`` false) failed too: UDP 443 / QUIC looks blocked as a whole
  on this network, not just to this host. Only a neutral endpoint can say this.
- none: QUIC works here, or fails at the control too (the server does not speak QUIC), or
  TLS over TCP fails as well (the TCP verdict already says how).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from probe import failures
from probe.i18n.message import M, Msg
from probe.observations import Observations

QUIC = "quic"
UDP_443 = "udp-443"
#: failures a censor's QUIC blocking produces (silence; some inject resets); others prove less
CENSOR_LIKE = frozenset({failures.GENERIC_TIMEOUT, failures.TIMED_OUT, failures.CONNECTION_RESET})


@dataclass(frozen=True, slots=True)
class QuicFinding:
    status: str  # ok | failing | unsupported
    evidence: str | None  # quic | udp-443 | None
    failure: str | None
    note: Msg | None

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "evidence": self.evidence, "failure": self.failure}


def neutral_quic_ok(x_vantage: Mapping[str, Any]) -> bool | None:
    value = x_vantage.get("neutral_quic_ok")
    return value if isinstance(value, bool) else None


def judge_quic(
    probe: Observations, control: Observations | None, neutral_ok: bool | None
) -> QuicFinding | None:
    """The QUIC finding of one target, or None when it made no QUIC handshake."""
    handshakes = probe.quic_handshakes
    if not handshakes:
        return None
    if any(h.failure is None for h in handshakes):
        return QuicFinding("ok", None, None, None)
    failure = handshakes[0].failure or failures.GENERIC_TIMEOUT
    control_quic = control.quic_handshakes if control is not None else []
    if control_quic and all(h.failure is not None for h in control_quic):
        note = M("QUIC fails at the control too ({failure}): the server does not speak QUIC",
                 failure=control_quic[0].failure or "")  # fmt: skip
        return QuicFinding("unsupported", None, failure, note)
    tls_works = any(h.failure is None and h.x_purpose is None for h in probe.tls_handshakes)
    control_proves = any(h.failure is None for h in control_quic)
    if not tls_works or not (control_proves or failure in CENSOR_LIKE):
        note = M("QUIC (UDP) fails here too ({failure})", failure=failure)
        return QuicFinding("failing", None, failure, note)
    if neutral_ok is False:
        note = M(
            "QUIC to it fails ({failure}) while TLS over TCP works, and QUIC to a neutral "
            "endpoint fails too: UDP 443 / QUIC looks blocked as a whole on this network",
            failure=failure,
        )
        return QuicFinding("failing", UDP_443, failure, note)
    note = M(
        "QUIC to it fails ({failure}) while TLS over TCP works: QUIC to this host is "
        "interfered with (apps fall back to TCP)",
        failure=failure,
    )
    return QuicFinding("failing", QUIC, failure, note)
