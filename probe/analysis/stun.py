"""STUN evidence: what a target's STUN transactions (`x_stun`, targets with `stun_port`) add
to its verdict. Pure, like the rest of the analysis.

The rule (docs/verdicts.md, "STUN"), in `verdict.x_stun` (`{status, evidence, failure}`) and a
sentence after the reason:

- ``ok``: a valid Binding reply with our transaction id came from some address of the host.
- ``unanswered``: every transaction failed here and at the control too: the server does not
  answer STUN on that port (or is down) — no evidence.
- ``failing`` with ``evidence: udp-blocked-here``: every transaction failed here in a way an
  on-path censor produces (silence, an ICMP error, a reset, wrong or invalid datagrams) while
  the control got a valid reply from the same host. Only then does STUN change the status:
  a target whose other checks were `ok` (its DNS) becomes `blocked`, blocking ``protocol``.
- ``failing`` without evidence: no control proof (no control, the control did not measure it,
  or the failure here is the server's own error response).

IPv6 addresses are left out on a vantage known to have no IPv6 (`x_vantage.ipv6_ok` false).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from probe import failures
from probe.addresses import is_ipv6
from probe.analysis.common import sentence
from probe.analysis.vocabulary import BLOCKED, OK, PROTOCOL, Verdict
from probe.i18n.message import M, Msg
from probe.observations import Observations, StunCheck

UDP_BLOCKED_HERE = "udp-blocked-here"
#: failures an on-path censor's UDP blocking produces; an error response is the server's own
CENSOR_LIKE = frozenset({
    failures.GENERIC_TIMEOUT,
    failures.TIMED_OUT,
    failures.CONNECTION_REFUSED,
    failures.CONNECTION_RESET,
    failures.HOST_UNREACHABLE,
    failures.NETWORK_UNREACHABLE,
    failures.STUN_WRONG_TRANSACTION_ID,
    failures.STUN_INVALID_REPLY,
})  # fmt: skip


@dataclass(frozen=True, slots=True)
class StunFinding:
    status: str  # ok | failing | unanswered
    evidence: str | None  # udp-blocked-here | None
    failure: str | None
    note: Msg | None

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "evidence": self.evidence, "failure": self.failure}


def judge_stun(
    probe: Observations, control: Observations | None, ipv6_ok: bool | None = None
) -> StunFinding | None:
    """The STUN finding of one target, or None when it made no STUN transaction."""
    checks = _usable(probe.stun, ipv6_ok)
    if not checks:
        return None
    if any(c.success for c in checks):
        return StunFinding("ok", None, None, None)
    failure = checks[0].failure or failures.GENERIC_TIMEOUT
    # a transaction the control's guard refused proves nothing either way
    refused = failures.CONTROL_REFUSED_DESTINATION
    control_checks = [c for c in control.stun if c.failure != refused] if control else []
    if control_checks and not any(c.success for c in control_checks):
        note = M("STUN fails at the control too ({failure}): the server does not answer STUN",
                 failure=control_checks[0].failure or "")  # fmt: skip
        return StunFinding("unanswered", None, failure, note)
    if any(c.success for c in control_checks) and all(c.failure in CENSOR_LIKE for c in checks):
        note = M(
            "STUN (UDP) to its call server fails here ({failure}) while the control gets "
            "answers: UDP to it is blocked on this network (calls may fail)",
            failure=failure,
        )
        return StunFinding("failing", UDP_BLOCKED_HERE, failure, note)
    note = M("STUN (UDP) fails here ({failure}); no control shows that the server answers",
             failure=failure)  # fmt: skip
    return StunFinding("failing", None, failure, note)


def _usable(checks: list[StunCheck], ipv6_ok: bool | None) -> list[StunCheck]:
    if ipv6_ok is False:
        return [c for c in checks if not is_ipv6(c.address)]
    return checks


def apply_stun(
    verdict: Verdict, probe: Observations, control: Observations | None, ipv6_ok: bool | None
) -> Verdict:
    """`verdict` with the STUN finding: `x_stun`, its sentence after the reason, and `blocked`
    (blocking ``protocol``) for an `ok` target whose STUN the control proves blocked here."""
    finding = judge_stun(probe, control, ipv6_ok)
    if finding is None:
        return verdict
    message = verdict.message
    if finding.note is not None:
        message = M("{verdict} {stun}", verdict=message, stun=sentence(finding.note))
    if finding.evidence == UDP_BLOCKED_HERE and verdict.status == OK:
        return replace(verdict, status=BLOCKED, blocking=PROTOCOL, message=message,
                       stun=finding.to_dict())  # fmt: skip
    return replace(verdict, message=message, stun=finding.to_dict())
