"""Verdicts without a control (probe.service): a whole service failing while the baseline sites
work is blocking, one address failing is not — and the two answers a volunteer reads per
service, *usable?* and *interfered?*. Hand-built records, like tests/test_analysis.py."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from probe import failures as F
from probe.analysis import analyze, judge_service
from probe.analysis.service_rules import (
    EndpointFact,
    TargetVerdict,
    local_evidence,
    network_of,
    service_facts,
    usable_and_interfered,
)
from tests.test_analysis import dc_control, mt, obs, record, tcp

# Five data centres in three /24 networks, as Telegram's are.
DCS = {
    "telegram/dc1": "149.154.175.50",
    "telegram/dc2": "149.154.167.51",
    "telegram/dc3": "149.154.175.100",
    "telegram/dc4": "149.154.167.91",
    "telegram/dc5": "91.108.56.130",
}
ONLINE = {"baseline_ok": 3, "baseline_total": 3, "control_reachable": False, "ipv6_ok": None}
OFFLINE = {"baseline_ok": 0, "baseline_total": 3, "control_reachable": False, "ipv6_ok": None}
MOSTLY_DOWN = {"baseline_ok": 1, "baseline_total": 4, "control_reachable": False, "ipv6_ok": None}
PORTS = (443, 80)
TRANSPORTS = ("obfuscated2", "intermediate")


def dc_target(target_id: str, ip: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": target_id,
        "service": "telegram",
        "check": "mtproto",
        "host": ip,
        "ports": list(PORTS),
        "transports": list(TRANSPORTS),
        **extra,
    }


def dc_connect_fails(ip: str, failure: str) -> list[Any]:
    return [tcp(ip, port, failure, tid=i + 1) for i, port in enumerate(PORTS)]


def dc_handshake_fails(ip: str, failure: str) -> list[Any]:
    items: list[Any] = []
    for i, port in enumerate(PORTS):
        items.append(tcp(ip, port, tid=i + 1))
        items.extend(mt(ip, t, port, failure, tid=i + 1) for t in TRANSPORTS)
    return items


def dc_works(ip: str) -> list[Any]:
    items: list[Any] = []
    for i, port in enumerate(PORTS):
        items.append(tcp(ip, port, tid=i + 1))
        items.extend(mt(ip, t, port, tid=i + 1) for t in TRANSPORTS)
    return items


def round_of(
    per_dc: dict[str, list[Any]],
    vantage: dict[str, Any] = ONLINE,
    control: dict[str, Any] | None = None,
    targets: dict[str, dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """One round's records for the data centres, through both analysis passes."""
    held = []
    for target_id, items in per_dc.items():
        target = (targets or {}).get(target_id) or dc_target(target_id, DCS[target_id])
        ctl = (control or {}).get(target_id)
        rec = record(
            target,
            obs(*items),
            ctl if ctl is not None else None,
            control_failure=None if ctl is not None else F.CONTROL_UNREACHABLE,
            vantage=dict(vantage),
        )
        first = analyze(rec)
        rec["test_keys"]["verdict"] = first.verdict.to_dict()
        rec["test_keys"]["x_endpoints"] = [e.to_dict() for e in first.endpoints]
        held.append((rec, first))
    judge_service("telegram", held)
    return {rec["input"]: rec for rec, _ in held}


def verdict(rec: dict[str, Any]) -> dict[str, Any]:
    return rec["test_keys"]["verdict"]


def test_every_data_centre_blackholed_while_baselines_work_is_blocked_unconfirmed() -> None:
    records = round_of({t: dc_connect_fails(ip, F.GENERIC_TIMEOUT) for t, ip in DCS.items()})
    for target_id, rec in records.items():
        v = verdict(rec)
        assert (v["status"], v["blocking"], v["confirmed"]) == ("blocked", "tcp", False), target_id
        assert "local evidence only" in v["reason"], v["reason"]
        assert "baseline sites work" in v["reason"]
        assert "every data centre address of Telegram" in v["reason"]
    facts = records["telegram/dc1"]["test_keys"]["x_service"]
    assert facts["usable"] is False and facts["interfered"] is True
    assert facts["kinds"]["mtproto"]["addresses_failed"] == 5


def test_every_data_centre_reset_is_blocked_too() -> None:
    records = round_of({t: dc_connect_fails(ip, F.CONNECTION_RESET) for t, ip in DCS.items()})
    assert {verdict(r)["status"] for r in records.values()} == {"blocked"}


def test_protocol_filter_on_every_data_centre_is_blocked_protocol() -> None:
    records = round_of({t: dc_handshake_fails(ip, F.GENERIC_TIMEOUT) for t, ip in DCS.items()})
    for rec in records.values():
        assert (verdict(rec)["status"], verdict(rec)["blocking"]) == ("blocked", "protocol")


def test_the_stored_record_reproduces_its_verdict() -> None:
    """`probe analyze` on one stored record gives the same verdict: the facts are in it."""
    records = round_of({t: dc_connect_fails(ip, F.GENERIC_TIMEOUT) for t, ip in DCS.items()})
    for rec in records.values():
        stored = copy.deepcopy(rec)
        assert analyze(stored).verdict.to_dict() == verdict(rec)


def test_offline_vantage_stays_inconclusive() -> None:
    records = round_of(
        {t: dc_connect_fails(ip, F.GENERIC_TIMEOUT) for t, ip in DCS.items()}, vantage=OFFLINE
    )
    for rec in records.values():
        assert verdict(rec)["status"] == "inconclusive"
        assert "offline" in verdict(rec)["reason"]
    assert records["telegram/dc1"]["test_keys"]["x_service"]["usable"] is None


def test_mostly_failing_baselines_are_not_a_working_connection() -> None:
    records = round_of(
        {t: dc_connect_fails(ip, F.GENERIC_TIMEOUT) for t, ip in DCS.items()},
        vantage=MOSTLY_DOWN,
    )
    assert {verdict(r)["status"] for r in records.values()} == {"inconclusive"}


def test_one_data_centre_timing_out_is_not_blocking() -> None:
    per_dc = {t: dc_works(ip) for t, ip in DCS.items()}
    per_dc["telegram/dc3"] = dc_connect_fails(DCS["telegram/dc3"], F.GENERIC_TIMEOUT)
    records = round_of(per_dc)
    assert verdict(records["telegram/dc3"])["status"] == "inconclusive"
    assert "no control to compare with" in verdict(records["telegram/dc3"])["reason"]
    facts = records["telegram/dc1"]["test_keys"]["x_service"]
    assert facts["usable"] is True and facts["interfered"] is None


def test_two_data_centres_timing_out_while_others_work_is_not_blocking() -> None:
    per_dc = {t: dc_works(ip) for t, ip in DCS.items()}
    for t in ("telegram/dc1", "telegram/dc5"):
        per_dc[t] = dc_connect_fails(DCS[t], F.GENERIC_TIMEOUT)
    records = round_of(per_dc)
    assert verdict(records["telegram/dc1"])["status"] == "inconclusive"
    assert verdict(records["telegram/dc5"])["status"] == "inconclusive"


def test_refused_everywhere_in_separate_networks_is_blocked() -> None:
    """Refused is what an outage gives too: blocked only when several independent addresses
    (three, in two networks or more) fail the same way."""
    records = round_of({t: dc_connect_fails(ip, F.CONNECTION_REFUSED) for t, ip in DCS.items()})
    for rec in records.values():
        v = verdict(rec)
        assert (v["status"], v["blocking"], v["confirmed"]) == ("blocked", "tcp", False)
        assert "separate networks" in v["reason"]


def test_refused_on_addresses_of_one_network_stays_inconclusive() -> None:
    one_net = {t: f"198.51.100.{i + 10}" for i, t in enumerate(DCS)}
    targets = {t: dc_target(t, ip) for t, ip in one_net.items()}
    records = round_of(
        {t: dc_connect_fails(ip, F.CONNECTION_REFUSED) for t, ip in one_net.items()},
        targets=targets,
    )
    assert {verdict(r)["status"] for r in records.values()} == {"inconclusive"}


def test_blackhole_of_addresses_in_one_network_is_still_every_address() -> None:
    """Rule A counts addresses: five data centres all silent is not one outage."""
    one_net = {t: f"198.51.100.{i + 10}" for i, t in enumerate(DCS)}
    targets = {t: dc_target(t, ip) for t, ip in one_net.items()}
    records = round_of(
        {t: dc_connect_fails(ip, F.GENERIC_TIMEOUT) for t, ip in one_net.items()},
        targets=targets,
    )
    assert {verdict(r)["status"] for r in records.values()} == {"blocked"}


def test_refused_on_two_addresses_only_stays_inconclusive() -> None:
    per = {
        t: dc_connect_fails(DCS[t], F.CONNECTION_REFUSED) for t in ("telegram/dc1", "telegram/dc5")
    }
    records = round_of(per)
    assert {verdict(r)["status"] for r in records.values()} == {"inconclusive"}


def test_a_single_target_service_is_never_blocked_by_its_own_failure() -> None:
    records = round_of({"telegram/dc2": dc_connect_fails(DCS["telegram/dc2"], F.GENERIC_TIMEOUT)})
    assert verdict(records["telegram/dc2"])["status"] == "inconclusive"


def test_with_a_control_the_control_decides() -> None:
    """The control saw the same silence: the service is down, not blocked."""
    control = {t: obs(tcp(ip, 443, F.GENERIC_TIMEOUT, tid=1)) for t, ip in DCS.items()}
    records = round_of(
        {t: dc_connect_fails(ip, F.GENERIC_TIMEOUT) for t, ip in DCS.items()},
        vantage={**ONLINE, "control_reachable": True},
        control=control,
    )
    assert {verdict(r)["status"] for r in records.values()} <= {"down", "inconclusive"}
    assert "blocked" not in {verdict(r)["status"] for r in records.values()}


def test_control_that_works_still_gives_confirmed_false_blocking() -> None:
    control = {t: dc_control(*TRANSPORTS, ip=ip) for t, ip in DCS.items()}
    records = round_of(
        {t: dc_connect_fails(ip, F.GENERIC_TIMEOUT) for t, ip in DCS.items()},
        vantage={**ONLINE, "control_reachable": True},
        control=control,
    )
    for rec in records.values():
        assert verdict(rec)["status"] == "blocked"
        assert "local evidence" not in verdict(rec)["reason"]


def test_ipv6_without_a_proven_route_is_not_evidence() -> None:
    v6 = {
        "telegram/dc1-v6": "2001:b28:f23d:f001::a",
        "telegram/dc2-v6": "2001:67c:4e8:f002::a",
        "telegram/dc3-v6": "2001:b28:f23d:f003::a",
    }
    targets = {t: dc_target(t, ip) for t, ip in v6.items()}
    records = round_of(
        {t: dc_connect_fails(ip, F.NETWORK_UNREACHABLE) for t, ip in v6.items()},
        targets=targets,
    )
    for rec in records.values():
        assert verdict(rec)["status"] == "inconclusive"
        assert "IPv6" in verdict(rec)["reason"]


def test_mixed_failures_are_not_rule_a() -> None:
    """Silence on some, refusal on others: not every address fails in a censorship-typical
    way, and no single failure reaches three addresses in two networks."""
    per_dc = {t: dc_connect_fails(ip, F.GENERIC_TIMEOUT) for t, ip in DCS.items()}
    per_dc["telegram/dc2"] = dc_connect_fails(DCS["telegram/dc2"], F.CONNECTION_REFUSED)
    per_dc["telegram/dc4"] = dc_connect_fails(DCS["telegram/dc4"], F.CONNECTION_REFUSED)
    per_dc["telegram/dc5"] = dc_connect_fails(DCS["telegram/dc5"], F.CONNECTION_REFUSED)
    records = round_of(per_dc)
    # refusal: dc2, dc4 (149.154.167/24) and dc5 (91.108.56/24): three addresses, two networks
    assert verdict(records["telegram/dc5"])["status"] == "blocked"
    # silence: dc1 and dc3 only, in one network
    assert verdict(records["telegram/dc1"])["status"] == "inconclusive"


# --- the pure pieces ----------------------------------------------------------------------


def test_network_of_groups_by_24_and_48() -> None:
    assert network_of("149.154.167.51") == network_of("149.154.167.91") == "149.154.167.0/24"
    assert network_of("::ffff:149.154.167.51") == "149.154.167.0/24"
    assert network_of("2001:67c:4e8:f002::a") == network_of("2001:67c:4e8:f004::a")
    assert network_of("not an address") == "not an address"


def test_local_evidence_tolerates_hostile_facts() -> None:
    for facts in (
        None,
        {},
        {"kinds": "x"},
        {"kinds": {"mtproto": {"all_fail_typically": 1}}},
        {"same_failure": [1, None, {"layer": "tcp"}]},
        {
            "same_failure": [
                {
                    "layer": "tcp",
                    "failure": "connection_refused",
                    "addresses": "9",
                    "networks": True,
                }
            ]
        },
    ):
        assert local_evidence(facts, "mtproto", "tcp", F.CONNECTION_REFUSED) is None  # type: ignore[arg-type]


def test_service_facts_skip_skipped_endpoints() -> None:
    facts = service_facts(
        "telegram",
        [
            EndpointFact("telegram/dc1", "mtproto", "149.154.175.50", "skipped"),
            EndpointFact(
                "telegram/dc1",
                "mtproto",
                "149.154.175.50",
                "inconclusive",
                "tcp",
                F.GENERIC_TIMEOUT,
            ),
        ],
        1,
    )
    assert facts["kinds"]["mtproto"]["endpoints"] == 1


def tv(target_id: str, check: str, status: str, *tags: str) -> TargetVerdict:
    return TargetVerdict(target_id, check, tags, status)


@pytest.mark.parametrize(
    ("targets", "usable", "interfered"),
    [
        # one blocked port of one data centre: interference, not unusability
        ([tv("t/dc1", "mtproto", "blocked"), tv("t/dc2", "mtproto", "ok")], True, True),
        ([tv("t/dc1", "mtproto", "blocked"), tv("t/dc2", "mtproto", "blocked")], False, True),
        # the website is not the app
        ([tv("t/dc1", "mtproto", "ok"), tv("t/web", "https", "blocked")], True, True),
        ([tv("t/dc1", "mtproto", "inconclusive"), tv("t/web", "https", "ok")], None, None),
        # every IPv4 DC blocked, the IPv6 ones inconclusive (no IPv6 here): not usable
        (
            [tv("t/dc1", "mtproto", "blocked"), tv("t/dc1-v6", "mtproto", "inconclusive")],
            False,
            True,
        ),
        ([tv("t/dc1", "mtproto", "down"), tv("t/dc2", "mtproto", "ok")], True, False),
        # Signal: no protocol endpoints, its HTTPS API is the app
        ([tv("s/chat", "https", "ok"), tv("s/cdsi", "https", "blocked")], True, True),
        # tags name what the app needs: chat must work, whatever else does
        (
            [tv("s/chat", "https", "blocked", "app:chat"), tv("s/cdsi", "https", "ok")],
            False,
            True,
        ),
        # every needed kind: WhatsApp chat servers and registration
        (
            [
                tv("w/e1", "tcp", "ok", "app:chat"),
                tv("w/reg", "https", "blocked", "app:register"),
            ],
            False,
            True,
        ),
        ([], None, None),
        ([tv("x/dns", "dns", "ok")], None, False),
    ],
)
def test_usable_and_interfered(
    targets: list[TargetVerdict], usable: bool | None, interfered: bool | None
) -> None:
    assert usable_and_interfered(targets) == (usable, interfered)
