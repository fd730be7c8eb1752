"""The scale benchmarks' own helpers (bench/memory.py, bench/data_usage.py): 100,000 targets
fit in lists the loader accepts, on distinct addresses; the data-usage world gives every party
of the default round (DoH, STUN, echo pages) a loopback stand-in under its real name. The
benchmarks themselves are not run here (they need root; see bench/README.md)."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import data_usage
import memory

from probe.steps import dns
from probe.targets import load_lists
from probe.targets.schema import MAX_LIST_BYTES
from probe.vantage import publicip


def test_memory_lists_load_cleanly_and_stay_under_the_size_limit(tmp_path: Path) -> None:
    paths = memory.https_lists(tmp_path, 12_000)
    assert len(paths) == 3
    assert all(Path(p).stat().st_size < MAX_LIST_BYTES for p in paths)
    loaded = load_lists(paths)
    assert loaded.problems == []
    assert [t.id for t in loaded.targets] == [f"bench/h{i}" for i in range(12_000)]


def test_memory_addresses_are_distinct_loopback_addresses_up_to_100000() -> None:
    addresses = [memory.site_address(i) for i in range(100_000)]
    assert len(set(addresses)) == 100_000
    assert all(ipaddress.ip_address(a).is_loopback for a in addresses[::997] + addresses[-3:])


def test_the_fitted_growth_is_the_slope_through_the_later_points() -> None:
    rows = [
        {"targets": 2_500, "peak_rss_mib": 500.0},  # before the fit's range: ignored
        {"targets": 10_000, "peak_rss_mib": 100.0},
        {"targets": 50_000, "peak_rss_mib": 120.0},
        {"targets": 100_000, "peak_rss_mib": 145.0},
    ]
    slope = memory.fitted_growth(rows)
    assert slope is not None and 0.49 < slope < 0.51
    assert memory.growth(rows[1], rows[3]) == 0.5
    assert memory.fitted_growth(rows[:2]) is None


def test_every_other_party_of_the_default_round_has_a_stand_in() -> None:
    others = data_usage.others()
    doh_hosts = {u.split("/")[2] for u in dns.PUBLIC_DOH_URLS}
    stun_hosts = {h for h, _ in publicip.DEFAULT_STUN_SERVERS}
    echo_hosts = {u.split("/")[2] for u in publicip.DEFAULT_ECHO_URLS} - {"api6.ipify.org"}
    assert set(others) == doh_hosts | stun_hosts | echo_hosts
    for other in others.values():
        address = ipaddress.ip_address(other["address"])
        assert address.is_loopback and address in ipaddress.ip_network("127.5.0.0/16")
    assert len({o["address"] for o in others.values()}) == len(others)


def test_the_probe_runs_with_its_own_resolv_conf_naming_the_world_dns(tmp_path: Path) -> None:
    argv = data_usage.in_own_etc(tmp_path, ["probe", "run"])
    assert argv[:2] == ["unshare", "--mount"] and argv[-2:] == ["probe", "run"]
    assert (tmp_path / "resolv.conf").read_text().startswith("nameserver 127.0.0.1\n")
