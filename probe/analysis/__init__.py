"""The verdict: a pure function of one target's observations (no I/O, no clock).

Input is a `Case` (case.py): the target's definition, the probe's observations, the control's
observations for the same target (or a `control_failure`), DNS-over-HTTPS answers used as a
DNS-only control (`x_doh`), and the round-level facts in `x_vantage`. Output is a `Verdict` for
the target and an `EndpointOutcome` per endpoint flow.

How it decides (docs/verdicts.md says the same in plain words):

1. DNS, for a target named by a host name: an answer matching a blocking fingerprint, a bogon the
   control does not also return, an answer outside `expect_asn`, answers of one engine sharing
   no address and no network with the control, or a failure here while the control resolved
   the name. Every lookup the probe made is judged, DNS over HTTPS/TLS included; without a
   control, the probe's own encrypted answers check its plain ones. A loopback answer is never
   "a known blocking address" (services publish 127.0.0.1 on purpose), and a fingerprint of
   another country than the probe's is named but proves nothing. An answer is rehabilitated
   when the address proved itself: a TLS certificate verified for the name on it, a genuine
   MTProto reply from it, or a plain-HTTP page that matches the control.
2. Each endpoint flow (one address and port; for MTProto one per transport) is judged at the
   first step that failed, compared with the control's flow to the same address (else with the
   control's flows for the target on the same port): it fails here but not there → blocked at
   that layer; it fails at the control too → down; no control → inconclusive unless the
   evidence stands on its own (a fingerprint, a forged MTProto reply, another transport of the
   same address working). Attempts on one endpoint (retries, several requests, separate flows
   to the same address and port) are judged together: a failure is hidden by an attempt that
   got past the step that failed. A page matching a look-alike fingerprint (scope fp) is never
   http-diff. An IPv6 endpoint failing while no IPv4 endpoint fails, on a vantage whose IPv6 is
   not proven, is inconclusive.
3. The target: blocked if DNS or any endpoint is blocked (`blocking` = the first layer in the
   order dns, tcp, tls, http-failure, http-diff, protocol), else ok if any endpoint works with
   the evidence its check promises (an http/https target needs more than a TCP connect; any
   target but a DNS one needs more than DNS), else down or inconclusive. On an offline vantage
   nothing is ever blocked.

The package is split the way the steps are: `dns.py`, `endpoint.py` (TCP and TLS), `http.py`,
`mtproto.py`, then `attempts.py` (attempts on one endpoint, address families) and `target.py`
(the verdict); `service.py` is the second pass over one service's records. `case.py` is the
typed input, `context.py` the case prepared for the rules, `flows.py` the observations grouped
per endpoint, `vocabulary.py` the words and result types.
"""

from __future__ import annotations

from probe.analysis.case import Case, TargetFacts, VantageFacts, case_from_record
from probe.analysis.http import http_differences
from probe.analysis.service import Judged, endpoint_facts, has_unexplained, judge_service, reanalyze
from probe.analysis.target import analyze, judge
from probe.analysis.vocabulary import (
    BLOCKED,
    DOWN,
    INCONCLUSIVE,
    LAYERS,
    OK,
    SKIPPED,
    STATUSES,
    Analysis,
    Blocking,
    EndpointOutcome,
    Status,
    Verdict,
)

__all__ = [
    "BLOCKED",
    "DOWN",
    "INCONCLUSIVE",
    "LAYERS",
    "OK",
    "SKIPPED",
    "STATUSES",
    "Analysis",
    "Blocking",
    "Case",
    "EndpointOutcome",
    "Judged",
    "Status",
    "TargetFacts",
    "VantageFacts",
    "Verdict",
    "analyze",
    "case_from_record",
    "endpoint_facts",
    "has_unexplained",
    "http_differences",
    "judge",
    "judge_service",
    "reanalyze",
]
