"""Shutdowns and allowlists (issue 19 item 5): when the international baselines and the control
fail but a domestic baseline answers, the vantage is cut off from abroad — "international
connectivity down", not "offline" — and nothing is called blocked. Hand-built records (the
analysis is pure), the round's vantage facts, the domestic lists and the summary's words."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from probe import failures as F
from probe.analysis import VantageFacts, analyze
from probe.cli.summary import print_rows
from probe.i18n import set_language
from probe.observations import HTTPTransaction, Observations, TCPConnect
from probe.targets import load_lists, parse_list_text, validate_paths
from probe.targets.domestic import as_domestic, domestic_list_path
from probe.vantage.facts import Vantage, VantageState
from probe.vantage.geoip import GeoIP
from probe.vantage.scrub import Scrubber
from tests.test_analysis import DC2, DC2_IP, dc_control, obs, record, tcp

REPO = Path(__file__).resolve().parents[1]


def vantage(ok: int, domestic_ok: int, *, domestic_total: int = 3, control: bool = False) -> dict:
    return {
        "baseline_ok": ok,
        "baseline_total": 4,
        "control_reachable": control,
        "ipv6_ok": None,
        "domestic_ok": domestic_ok,
        "domestic_total": domestic_total,
    }


def dc_timeout(x_vantage: dict, control: object = None) -> dict:
    return record(
        DC2,
        obs(tcp(DC2_IP, failure=F.GENERIC_TIMEOUT)),
        control,
        control_failure=None if control is not None else F.GENERIC_TIMEOUT,
        vantage=x_vantage,
    )


# --- the rule -------------------------------------------------------------------------------


def test_domestic_works_international_fails_is_a_shutdown_not_offline() -> None:
    verdict = analyze(dc_timeout(vantage(0, 2))).verdict
    assert (verdict.status, verdict.blocking) == ("inconclusive", None)
    assert "nternational connectivity looks down" in verdict.reason
    assert "shutdown or an allowlisted network" in verdict.reason
    assert "2 of 3 domestic sites answered" in verdict.reason
    assert "offline" not in verdict.reason


def test_nothing_works_at_all_is_offline_not_shutdown() -> None:
    verdict = analyze(dc_timeout(vantage(0, 0))).verdict
    assert verdict.status == "inconclusive"
    assert "offline" in verdict.reason and "nternational" not in verdict.reason


def test_without_domestic_baselines_it_stays_offline() -> None:
    verdict = analyze(dc_timeout(vantage(0, 0, domestic_total=0))).verdict
    assert "offline" in verdict.reason


def test_all_works_no_shutdown_and_blocking_is_named() -> None:
    """Quiet: the baselines work (domestic ones too), the control reaches the DC: blocked."""
    verdict = analyze(dc_timeout(vantage(3, 3, control=True), dc_control("obfuscated2"))).verdict
    assert (verdict.status, verdict.blocking) == ("blocked", "tcp")
    assert "nternational" not in verdict.reason


def test_a_reachable_control_means_the_way_out_works() -> None:
    facts = VantageFacts.from_wire(vantage(0, 3, control=True))
    assert facts.connectivity() == "online"
    assert not facts.shutdown() and not facts.offline()


def test_a_target_that_worked_during_a_shutdown_is_still_ok() -> None:
    """A domestic site itself (or anything allowlisted) answered: ok, with the shutdown named."""
    target = {"id": "baseline/ir-x", "service": "baseline", "check": "tcp", "host": "192.0.2.7",
              "ports": [443], "tags": ["domestic"]}  # fmt: skip
    verdict = analyze(record(target, obs(tcp("192.0.2.7")), None, vantage=vantage(0, 1))).verdict
    assert verdict.status == "ok"
    assert "nternational connectivity looks down" in verdict.reason


def test_a_fingerprinted_answer_during_a_shutdown_is_named_not_blocked() -> None:
    from tests.test_analysis import WEB, WEB_HOST, q

    rec = record(
        WEB,
        obs(q(WEB_HOST, "10.10.34.36"), tcp("10.10.34.36", failure=F.GENERIC_TIMEOUT)),
        None,
        vantage=vantage(0, 2),
    )
    verdict = analyze(rec).verdict
    assert verdict.status == "inconclusive"
    assert "nternational connectivity" in verdict.reason and "10.10.34.36" in verdict.reason


@pytest.mark.parametrize(
    ("x_vantage", "expected"),
    [
        ({}, "online"),  # nothing recorded: no baselines, nothing to say
        ({"baseline_ok": 0, "baseline_total": 2, "control_reachable": False}, "offline"),
        ({"baseline_ok": 0, "baseline_total": 2, "domestic_ok": 1}, "shutdown"),
        ({"baseline_ok": 1, "baseline_total": 2, "domestic_ok": 0}, "online"),
        ({"baseline_ok": 0, "baseline_total": 2, "domestic_ok": "x"}, "error"),
    ],
)
def test_connectivity_from_stored_facts(x_vantage: dict, expected: str) -> None:
    if expected == "error":
        with pytest.raises(ValueError):
            VantageFacts.from_wire(x_vantage)
        return
    assert VantageFacts.from_wire(x_vantage).connectivity() == expected


def test_a_malformed_domestic_count_is_an_inconclusive_record_not_a_traceback() -> None:
    rec = dc_timeout(vantage(0, 2))
    rec["test_keys"]["x_vantage"]["domestic_ok"] = "lots"
    verdict = analyze(rec).verdict
    assert verdict.status == "inconclusive" and "could not be analysed" in verdict.reason


# --- the round's facts ----------------------------------------------------------------------

LIST = """\
[list]
name = "mixed"
updated = 2026-12-01

[[targets]]
id = "baseline/abroad"
service = "baseline"
check = "https"
url = "https://abroad.example/"

[[targets]]
id = "baseline/home"
service = "baseline"
check = "https"
url = "https://home.example/"
tags = ["domestic"]
"""


def fetched(url: str, ok: bool) -> Observations:
    o = Observations()
    o.tcp_connect.append(TCPConnect("198.18.0.9", 443, ok, None if ok else F.GENERIC_TIMEOUT))
    if ok:
        o.requests.append(HTTPTransaction(url, address="198.18.0.9:443", response_code=200))
    return o


def test_the_round_counts_domestic_baselines_apart() -> None:
    targets = parse_list_text(LIST).targets
    abroad, home = targets
    assert not abroad.is_domestic and home.is_domestic and home.is_baseline
    state = VantageState(Vantage(), Scrubber(), GeoIP(()))
    state.baselines_measured(
        [(abroad, fetched("https://abroad.example/", False)),
         (home, fetched("https://home.example/", True))]
    )  # fmt: skip
    x = state.x_vantage()
    assert (x["baseline_ok"], x["baseline_total"]) == (0, 1)
    assert (x["domestic_ok"], x["domestic_total"]) == (1, 1)
    assert VantageFacts.from_wire(x).shutdown()


# --- the lists ------------------------------------------------------------------------------


def test_the_bundled_iranian_list_is_valid_and_domestic() -> None:
    path = domestic_list_path("ir")
    assert path is not None and Path(path).name == "ir.toml"
    assert validate_paths([path]) == []
    text = Path(path).read_text(encoding="utf-8")
    assert "need checking by a maintainer" in text or "needs checking by a maintainer" in text
    loaded = load_lists([path])
    assert loaded.targets and all(t.is_domestic for t in loaded.targets)
    assert domestic_list_path("it") is None and domestic_list_path("../x") is None


def test_domestic_lists_are_not_measured_by_default() -> None:
    from probe.targets import bundled_list_paths

    assert not any("domestic" in p for p in bundled_list_paths())


def test_a_hand_given_list_gets_the_tag_and_refuses_other_services() -> None:
    text = LIST.replace('tags = ["domestic"]\n', "") + (
        '\n[[targets]]\nid = "telegram/x"\nservice = "telegram"\ncheck = "https"\n'
        'url = "https://x.example/"\n'
    )
    targets = parse_list_text(text, "mine.toml").targets
    found, others = as_domestic(targets)
    assert [t.id for t in found] == ["baseline/abroad", "baseline/home"]
    assert all(t.is_domestic and "domestic" in t.to_wire()["tags"] for t in found)
    assert others == ["telegram/x"]


@pytest.mark.parametrize(
    ("domestic", "named"),
    [
        ("missing.toml", "missing.toml:1: no such file or directory"),
        ("other.toml", 'other.toml: telegram/x: a domestic baseline needs service = "baseline"'),
    ],
)
async def test_a_bad_domestic_list_is_exit_2_in_one_line(
    tmp_path: Path, domestic: str, named: str
) -> None:
    from tests.loopback_world import run_probe

    lst = tmp_path / "t.toml"
    lst.write_text(LIST)
    (tmp_path / "other.toml").write_text(
        '[list]\nname = "other"\nupdated = 2026-12-01\n\n[[targets]]\nid = "telegram/x"\n'
        'service = "telegram"\ncheck = "tcp"\nhost = "127.0.0.1"\nports = [9]\n'
    )
    result = await run_probe(
        ["run", str(lst), "--resolver", "127.0.0.1:9", "--no-ip-discovery", "--no-control",
         "--domestic-baselines", str(tmp_path / domestic), "--out", str(tmp_path / "r")],
        limit=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and named in lines[0], result.stderr
    assert not (tmp_path / "r").exists()


# --- what the volunteer reads ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "words"), [("en", "International connectivity looks down"), ("fa", "قطع")]
)
def test_the_summary_says_it_in_plain_words(language: str, words: str) -> None:
    set_language(language)
    try:
        out = io.StringIO()
        print_rows([], Console(file=out, width=200), offline=False, shutdown=True)
    finally:
        set_language("en")
    assert words in out.getvalue()
    assert "offline" not in out.getvalue()


def _round_file(out: Path, start: str, cc: str, *, vpn: bool = False) -> None:
    day = out / f"{start[:4]}-{start[4:6]}-{start[6:8]}"
    day.mkdir(parents=True, exist_ok=True)
    record = {
        "software_name": "probe",
        "test_name": "telegram",
        "input": "telegram/web",
        "probe_asn": "AS58224",
        "probe_cc": cc,
        "annotations": {"network_type": "vpn"} if vpn else {},
        "test_keys": {"verdict": {"status": "ok", "blocking": None, "reason": "fine"}},
    }
    (day / f"{start}_{'ab' * 8}.jsonl").write_text(json.dumps(record) + "\n")


def test_the_country_of_the_latest_rounds_chooses_the_domestic_list(tmp_path: Path) -> None:
    """A volunteer on a schedule: the rounds before the shutdown knew the country (GeoIP),
    the round during it cannot learn it, and still measures the domestic sites."""
    from probe.cli.domestic_options import last_known_country

    assert last_known_country(str(tmp_path / "none")) is None
    _round_file(tmp_path, "20261201T100000Z", "IR")
    _round_file(tmp_path, "20261202T100000Z", "ZZ")  # the shutdown's round: no country
    assert last_known_country(str(tmp_path)) == "IR"
    _round_file(tmp_path, "20261203T100000Z", "DE", vpn=True)  # through a VPN: not here
    assert last_known_country(str(tmp_path)) == "IR"
    _round_file(tmp_path, "20261204T100000Z", "IT")
    assert last_known_country(str(tmp_path)) == "IT"


def test_round_countries_says_what_the_round_summaries_say(tmp_path: Path) -> None:
    """`probe run` reads only each round's first record of this probe for its country: the
    same answer as reading the whole file, whatever comes before that record."""
    from probe.localdata import list_rounds, round_countries

    _round_file(tmp_path, "20261201T100000Z", "IR")
    _round_file(tmp_path, "20261202T100000Z", "DE", vpn=True)
    _round_file(tmp_path, "20261203T100000Z", "ir")  # not a country code: ZZ
    junk = tmp_path / "2026-12-04" / f"20261204T100000Z_{'cd' * 8}.jsonl"
    junk.parent.mkdir()
    first = {"software_name": "other", "probe_cc": "FR"}  # not a record of this probe
    junk.write_text("not json\n" + json.dumps(first) + "\n\n")
    _round_file(tmp_path, "20261205T100000Z", "IT")
    with (tmp_path / "2026-12-05" / f"20261205T100000Z_{'ab' * 8}.jsonl").open("a") as more:
        more.write(json.dumps({"software_name": "probe", "probe_cc": "US"}) + "\n")
    for last in (0, 1, 3, 5, 9):
        expected = [(s.probe_cc, s.network_type) for s in list_rounds(tmp_path, last=last)]
        assert round_countries(tmp_path, last) == expected
    assert round_countries(tmp_path, 5) == [
        ("IR", None), ("DE", "vpn"), ("ZZ", None), ("ZZ", None), ("IT", None)
    ]  # fmt: skip


def test_the_country_adds_domestic_sites_only_where_they_tell_something() -> None:
    """Next to international baselines of a public round, yes; to a loopback or lab list (no
    third party contacted of its own accord) or a list without baselines, no."""
    from probe.cli.domestic_options import domestic_if_useful

    path = domestic_list_path("IR")
    assert path is not None
    domestic = load_lists([path]).lists[0]

    def round_of(text: str) -> tuple[list, list]:
        own = parse_list_text(text, "own.toml").lists[0]
        lists = [own, domestic]
        return lists, [*own.targets, *domestic.targets]

    public = LIST.replace('tags = ["domestic"]\n', "")
    lists, targets = domestic_if_useful(*round_of(public), path)
    assert len(lists) == 2 and sum(t.is_domestic for t in targets) == len(domestic.targets)
    private = public.replace("https://abroad.example/", "https://127.0.0.1:9/").replace(
        "https://home.example/", "https://127.0.0.2:9/"
    )
    lists, targets = domestic_if_useful(*round_of(private), path)
    assert lists == [lists[0]] and not any(t.is_domestic for t in targets) and len(targets) == 2
    no_baseline = public.replace('service = "baseline"', 'service = "web"').replace(
        "baseline/", "web/"
    )
    lists, targets = domestic_if_useful(*round_of(no_baseline), path)
    assert len(lists) == 1 and not any(t.is_domestic for t in targets)
