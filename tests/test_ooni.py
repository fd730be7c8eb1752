"""OONI measurements → our records → our verdicts, and `probe analyze` over files.

The samples in tests/data/ooni are copies of OONI's published specification examples and of
measurements from OONI's simulated-censorship network (netem_qa, with OONI's own verdict in
each measurement's `test_keys.blocking`). Where our verdict differs from OONI's, the table
below says why.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from probe.analysis import analyze
from probe.cli import cli, main
from probe.ooni import is_measurement, records_from_measurement

DATA = Path(__file__).parent / "data" / "ooni"
SPEC = sorted((DATA / "spec_examples").glob("*.json"))
NETEM = sorted((DATA / "netem_qa").glob("*/measurement.json"))
NOT_MEASUREMENTS = [
    DATA / "README.md",
    DATA / "netem_qa" / "README.md",
    DATA / "netem_qa" / "expected_oonipipeline_wc05_qa.json",
    DATA / "netem_qa" / "dnsBlockingBOGON" / "analysis_classic.json",
]


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def verdicts(path: Path) -> dict[str, tuple[str, str | None]]:
    out = {}
    for record in records_from_measurement(load(path)):
        v = analyze(record).verdict
        out[record["input"]] = (v.status, v.blocking)
    return out


def test_samples_are_present() -> None:
    assert len(SPEC) == 17 and len(NETEM) >= 25
    assert all(p.exists() for p in NOT_MEASUREMENTS)


def test_probe_analyze_prints_a_verdict_for_every_measurement_and_skips_the_rest() -> None:
    files = [str(p) for p in [*SPEC, *NETEM, *NOT_MEASUREMENTS]]
    result = CliRunner().invoke(cli, ["analyze", "--json", *files])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    sources = {line["source"] for line in lines}
    assert sources == {str(p) for p in [*SPEC, *NETEM]}
    for line in lines:
        assert set(line) == {
            "source",
            "line",
            "report_id",
            "input",
            "test_name",
            "measurement_start_time",
            "probe_asn",
            "probe_cc",
            "verdict",
        }
        assert line["verdict"]["status"] in ("ok", "blocked", "down", "inconclusive")
        assert line["verdict"]["reason"].endswith(".")
    for skipped in NOT_MEASUREMENTS:
        assert f"{skipped}: not a measurement file" in result.stderr
    assert "Traceback" not in result.output


def test_text_output_is_one_line_per_record() -> None:
    path = DATA / "netem_qa" / "dnsBlockingBOGON" / "measurement.json"
    result = CliRunner().invoke(cli, ["analyze", str(path)])
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "ooni/web_connectivity/https://www.example.com/  blocked/dns  DNS for www.example.com "
        "answered 10.10.34.35, a known national blocking address (fingerprint ooni.ir_5); the "
        "control resolved 93.184.216.34."
    ]


def test_only_non_measurements_is_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["analyze", *map(str, NOT_MEASUREMENTS)])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "probe: error: no measurements found in 4 file(s)"
    assert len(err) == 5  # one note per skipped file, then the error


def test_jsonl_gz_and_our_own_records(tmp_path: Path) -> None:
    """JSON Lines (gzip) with an OONI measurement, one of ours, and a broken line."""
    ours = {
        "software_name": "probe",
        "test_name": "telegram",
        "input": "telegram/dc2",
        "report_id": "r1",
        "measurement_start_time": "2026-01-01 00:00:00",
        "probe_asn": "AS58224",
        "probe_cc": "IR",
        "test_keys": {
            "target": {
                "id": "telegram/dc2",
                "service": "telegram",
                "check": "mtproto",
                "host": "149.154.167.51",
                "ports": [443],
            },
            "tcp_connect": [
                {
                    "ip": "149.154.167.51",
                    "port": 443,
                    "status": {"success": False, "failure": "generic_timeout_error"},
                    "transaction_id": 1,
                }
            ],
            "control": {
                "tcp_connect": [
                    {
                        "ip": "149.154.167.51",
                        "port": 443,
                        "status": {"success": True, "failure": None},
                        "transaction_id": 1,
                    }
                ]
            },
            "control_failure": None,
            "x_vantage": {
                "baseline_ok": 4,
                "baseline_total": 4,
                "control_reachable": True,
                "ipv6_ok": True,
            },
        },
    }
    assert is_measurement(ours) and records_from_measurement(ours) == [ours]
    ooni = load(
        DATA / "spec_examples" / "telegram_IT_2022-12-07T105155_ts-020-telegram_93a455d627.json"
    )
    path = tmp_path / "mixed.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(json.dumps(ooni) + "\n" + json.dumps(ours) + "\n{broken\n")
    result = CliRunner().invoke(cli, ["analyze", "--json", str(path)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 8  # seven from OONI's telegram test, one of ours
    mine = lines[-1]
    assert (mine["line"], mine["report_id"], mine["input"]) == (2, "r1", "telegram/dc2")
    assert (mine["verdict"]["status"], mine["verdict"]["blocking"]) == ("blocked", "tcp")
    assert f"{path}:3: not JSON" in result.stderr


def test_is_measurement() -> None:
    assert is_measurement(load(SPEC[0]))
    assert not is_measurement(load(NOT_MEASUREMENTS[3]))  # OONI's analysis file
    assert not is_measurement({"test_name": "x"})
    assert not is_measurement([])


def test_telegram_maps_onto_our_target_ids() -> None:
    """One record per data centre (our telegram/dcN) and one for web.telegram.org."""
    got = verdicts(
        DATA / "spec_examples" / "telegram_IT_2022-12-07T105155_ts-020-telegram_93a455d627.json"
    )
    assert set(got) == {
        "telegram/dc1",
        "telegram/dc2",
        "telegram/dc3",
        "telegram/dc4",
        "telegram/dc5",
        "telegram/dc-95-161-76-100",
        "telegram/web",
    }
    # The DCs answer OONI's HTTP POST with 404/501: reachable, not blocked (OONI agrees).
    assert set(got.values()) == {("ok", None)}


def test_telegram_2017_without_control() -> None:
    """OONI says telegram_web_status "blocked" because web.telegram.org refused connections.
    We say inconclusive: with no control, a refused connection cannot be told from an outage
    (OONI's known false positive). DC1 timed out: inconclusive too (OONI: no TCP blocking)."""
    got = verdicts(
        DATA / "spec_examples" / "telegram_DE_2017-04-07T013325_ts-020-telegram_42dbe7f3a1.json"
    )
    assert got["telegram/web"] == ("inconclusive", None)
    assert got["telegram/dc1"] == ("inconclusive", None)
    assert got["telegram/dc2"] == ("ok", None)


def test_whatsapp_and_signal_ids() -> None:
    got = verdicts(
        DATA / "spec_examples" / "whatsapp_IT_2022-12-07T095248_ts-018-whatsapp_9a947759ec.json"
    )
    assert {"whatsapp/web", "whatsapp/registration", "whatsapp/e1"} <= set(got)
    assert got["whatsapp/web"] == ("ok", None)  # TLS verified for the name
    signal = verdicts(
        DATA / "spec_examples" / "signal_IT_2023-12-01T102459_ts-029-signal_a6721e0ed7.json"
    )
    assert signal["signal/chat"] == ("ok", None)
    # uptime.signal.org resolves to 127.0.0.1 by design; with no control a private answer is
    # only suspicious, never "blocked" (OONI: signal_backend_status ok).
    assert signal["signal/uptime"] == ("inconclusive", None)


def test_unknown_endpoints_get_ooni_ids() -> None:
    got = verdicts(
        DATA / "spec_examples" / "signal_DE_2023-11-13T073551_ts-029-signal_fd8bfafb9b.json"
    )
    assert "ooni/signal/cdn.signal.org" in got
    url = verdicts(
        DATA
        / "spec_examples"
        / "web_connectivity_IT_2021-03-22T150101_ts-017-web-connectivity_625cdfa196.json"
    )
    assert list(url) == ["ooni/web_connectivity/https://example.com"]


# OONI's verdict (test_keys.blocking) and ours, for each simulated-censorship scenario.
# `why` explains every difference.
NETEM_EXPECTED: dict[str, tuple[str, str | None, str]] = {
    "badSSLWithExpiredCertificate": (
        "down",
        None,
        "OONI: false. The control sees the bad certificate too.",
    ),
    "badSSLWithUnknownAuthorityWithInconsistentDNS": ("blocked", "dns", ""),
    "cloudflareCAPTCHAWithHTTP": ("blocked", "http-diff", ""),
    "cloudflareCAPTCHAWithHTTPS": ("ok", None, ""),
    "controlFailureWithSuccessfulHTTPWebsite": (
        "ok",
        None,
        "OONI: null (no control). We also saw TLS verify for the name on the same address, "
        "which proves the address without a control.",
    ),
    "dnsBlockingAndroidDNSCacheNoData": ("blocked", "dns", ""),
    "dnsBlockingBOGON": ("blocked", "dns", ""),
    "dnsBlockingNXDOMAIN": ("blocked", "dns", ""),
    "dnsHijackingToLocalhostWithHTTPS": ("blocked", "dns", ""),
    "dnsHijackingToProxyWithHTTPURL": ("ok", None, ""),
    "ghostDNSBlockingWithHTTP": ("blocked", "dns", ""),
    "httpBlockingConnectionReset": ("blocked", "http-failure", ""),
    "httpDiffWithConsistentDNS": ("blocked", "http-diff", ""),
    "httpDiffWithInconsistentDNS": (
        "blocked",
        "http-diff",
        "OONI: dns. The odd address relays TLS and verifies for the name (rehabilitation), so "
        "the DNS answer is not the lie; the blockpage injected on port 80 is.",
    ),
    "idnaWithoutCensorshipLowercase": ("ok", None, ""),
    "localhostWithHTTP": ("ok", None, "OONI: false. The control resolves 127.0.0.1 too."),
    "redirectWithConsistentDNSAndThenConnectionRefusedForHTTPS": (
        "blocked",
        "tcp",
        "OONI: http-failure. We name the layer that failed on the redirect's target: TCP.",
    ),
    "redirectWithConsistentDNSAndThenNXDOMAIN": ("blocked", "dns", ""),
    "successWithHTTP": ("ok", None, ""),
    "successWithHTTPS": ("ok", None, ""),
    "tcpBlockingConnectTimeout": ("blocked", "tcp", "OONI spells it tcp_ip."),
    "tcpBlockingConnectionRefusedWithInconsistentDNS": ("blocked", "dns", ""),
    "throttlingWithHTTP": ("blocked", "http-failure", ""),
    "tlsBlockingConnectionResetWithConsistentDNS": (
        "blocked",
        "tls",
        "OONI: http-failure. OONI's classic analysis has no TLS layer; a reset during the "
        "handshake while the control completes it is TLS interference.",
    ),
    "websiteDownNXDOMAIN": ("down", None, "OONI: false (not blocked). Down everywhere."),
    "websiteDownNoAddrs": ("down", None, "OONI: false. No address here nor at the control."),
    "websiteDownTCPConnect": ("down", None, "OONI: false. The control cannot connect either."),
}
OONI_TO_OURS = {"tcp_ip": "tcp", False: None, None: None}


@pytest.mark.parametrize("case", sorted(NETEM_EXPECTED))
def test_netem_scenarios(case: str) -> None:
    path = DATA / "netem_qa" / case / "measurement.json"
    status, blocking, why = NETEM_EXPECTED[case]
    (got,) = verdicts(path).values()
    assert got == (status, blocking)
    ooni = load(path)["test_keys"]["blocking"]
    ooni_ours = OONI_TO_OURS.get(ooni, ooni)
    agrees = ooni_ours == blocking and (status == "blocked") == (ooni_ours is not None)
    if not agrees or ooni is None:
        assert why, f"{case}: ours {got}, OONI {ooni!r}: document why"


def test_every_copied_scenario_has_an_expectation() -> None:
    assert {p.parent.name for p in NETEM} == set(NETEM_EXPECTED)
    expected = load(DATA / "netem_qa" / "expected_oonipipeline_wc05_qa.json")["cases"]
    for case in NETEM_EXPECTED:  # OONI's pipeline agrees with the measurement's own verdict
        top = expected[case].get("top_probe_analysis")
        measured = load(DATA / "netem_qa" / case / "measurement.json")["test_keys"]["blocking"]
        assert top in (None, "false", measured) or str(measured).lower() == top
