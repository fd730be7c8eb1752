"""One address family blocked, the other open (issue 19 item 8): the verdict names it ("only
IPv6 is blocked: IPv4 still works", and the reverse). Hand-built records; the lab reproduces
both in tests/lab/test_vantage_lab.py."""

from __future__ import annotations

import pytest

from probe import failures as F
from probe.analysis import analyze
from tests.test_analysis import obs, q, record, tcp

HOST = "dual.example"
V4, V6 = "198.18.0.140", "2001:2::140"
TARGET = {"id": "svc/dual", "service": "svc", "check": "tcp", "host": HOST, "ports": [443]}
ONLINE = {"baseline_ok": 2, "baseline_total": 2, "control_reachable": True, "ipv6_ok": True}


def judged(v4_failure: str | None, v6_failure: str | None, *, ipv6_ok: bool | None = True):
    probe = obs(q(HOST, V4, V6), tcp(V4, failure=v4_failure), tcp(V6, failure=v6_failure, tid=2))
    control = obs(q(HOST, V4, V6), tcp(V4), tcp(V6, tid=2))
    return analyze(record(TARGET, probe, control, vantage={**ONLINE, "ipv6_ok": ipv6_ok})).verdict


@pytest.mark.parametrize("failure", [F.GENERIC_TIMEOUT, F.CONNECTION_RESET])
def test_only_ipv6_blocked(failure: str) -> None:
    verdict = judged(None, failure)
    assert (verdict.status, verdict.blocking) == ("blocked", "tcp")
    assert "only IPv6 is blocked: IPv4 still works" in verdict.reason


def test_only_ipv4_blocked() -> None:
    verdict = judged(F.GENERIC_TIMEOUT, None)
    assert (verdict.status, verdict.blocking) == ("blocked", "tcp")
    assert "only IPv4 is blocked: IPv6 still works" in verdict.reason


def test_both_families_blocked_names_no_family() -> None:
    verdict = judged(F.GENERIC_TIMEOUT, F.GENERIC_TIMEOUT)
    assert verdict.status == "blocked" and "only IPv" not in verdict.reason


def test_both_work_quiet() -> None:
    verdict = judged(None, None)
    assert verdict.status == "ok" and "blocked" not in verdict.reason


def test_ipv6_not_proven_stays_inconclusive_not_blocked() -> None:
    """The existing rule wins: an IPv6 timeout on a vantage whose IPv6 is not proven."""
    verdict = judged(None, F.GENERIC_TIMEOUT, ipv6_ok=None)
    assert verdict.status == "ok" and "only IPv6" not in verdict.reason
