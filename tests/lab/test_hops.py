"""Issue 19 items 3 and 4 in the lab (tests/lab/hops.py): a censor two hops away that resets,
injects a blockpage or a DNS answer, or throttles by SNI — and `probe run --locate-censor` /
`--throttle-check` naming it; with no censor, or a link slow for everything, they stay quiet."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.hops import CENSOR_HOP, SERVER, SERVER_HOP, HopsLab
from tests.lab.lab import lab_unavailable_reason, skip_or_fail

LOCATE_LIST = """[list]
name = "hops"
updated = 2026-12-06

[[targets]]
id = "hops/tls"
service = "hops"
check = "tls"
host = "blocked.example"

[[targets]]
id = "hops/http"
service = "hops"
check = "http"
url = "http://blocked.example/"

[[targets]]
id = "hops/dns"
service = "hops"
check = "dns"
host = "blocked.example"
"""

THROTTLE_LIST = """[list]
name = "hops"
updated = 2026-12-06

[[targets]]
id = "hops/throttled"
service = "hops"
check = "tls"
host = "throttled.example"

[[targets]]
id = "hops/fine"
service = "hops"
check = "tls"
host = "fine.example"
"""


@pytest.fixture(scope="module")
def hops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HopsLab]:
    reason = lab_unavailable_reason()
    if reason:
        skip_or_fail(reason)
    lab = HopsLab(tmp_path_factory.mktemp("hops"))
    try:
        lab.start()
        yield lab
    finally:
        lab.stop()


def probe_run(lab: HopsLab, tmp: Path, targets: str, *options: str) -> dict[str, dict[str, Any]]:
    (tmp / "list.toml").write_text(targets)
    out = tmp / "out"
    proc = lab.probe(
        ["run", str(tmp / "list.toml"), "--resolver", SERVER, "--no-control",
         "--no-ip-discovery", "--no-upload", "--out", str(out), "--timeout", "3", "--json",
         *options],
        tmp,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr + lab.logs()
    lab.last_stderr = proc.stderr
    records = {}
    for path in out.glob("**/*.jsonl"):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            records[record["input"]] = record
    return records


def test_censor_two_hops_away_is_located_for_each_trigger(hops: HopsLab, tmp_path: Path) -> None:
    hops.set_censor({"names": ["blocked.example"], "action": "blockpage"})
    records = probe_run(hops, tmp_path, LOCATE_LIST, "--locate-censor")
    for target in ("hops/tls", "hops/http", "hops/dns"):
        test_keys = records[target]["test_keys"]
        where = test_keys.get("x_censor_location")
        assert where is not None, (target, test_keys["verdict"])
        assert where["location"] == "censor_hop", (target, where)
        assert where["censor_hop"] == CENSOR_HOP and where["endpoint_hop"] == SERVER_HOP
        assert f"starts {CENSOR_HOP} hops away" in test_keys["verdict"]["reason"]
        # only hop counts: no router's address, not even the client's own network
        assert "198.18.50." not in json.dumps(where)
    assert records["hops/http"]["test_keys"]["x_censor_location"]["trigger"] == "http"
    # the verdict is a function of the record: `probe analyze` gives the same reason
    files = [str(p) for p in (tmp_path / "out").glob("**/*.jsonl")]
    again = hops.probe(["analyze", "--json", *files], tmp_path)
    assert again.returncode == 0, again.stderr
    for line in again.stdout.splitlines():
        analysed = json.loads(line)
        stored = records[analysed["input"]]["test_keys"]["verdict"]
        assert analysed["verdict"]["reason"] == stored["reason"]
    assert records["hops/dns"]["test_keys"]["x_censor_location"]["trigger"] == "dns"


def test_no_censor_no_hop_named(hops: HopsLab, tmp_path: Path) -> None:
    hops.set_censor(None)
    records = probe_run(hops, tmp_path, LOCATE_LIST, "--locate-censor")
    swept = 0
    for record in records.values():
        where = record["test_keys"].get("x_censor_location")
        if where is not None:  # swept: not ok (no control; a self-signed certificate)
            swept += 1
            assert where["location"] == "endpoint_answered", where
            assert where["endpoint_hop"] == SERVER_HOP
        assert "hops away" not in record["test_keys"]["verdict"]["reason"]
    assert swept >= 1  # the sweep really ran, and found nothing on the path


def test_sni_policing_is_throttling(hops: HopsLab, tmp_path: Path) -> None:
    hops.set_censor({"throttle": ["throttled.example"]})
    records = probe_run(hops, tmp_path, THROTTLE_LIST, "--throttle-check", f"{SERVER}:443")
    throttled = records["hops/throttled"]["test_keys"]["x_throttle"]
    assert throttled["verdict"] == "throttled", throttled
    assert "throttled:" in records["hops/throttled"]["test_keys"]["verdict"]["reason"]
    assert "throttled:" in hops.last_stderr  # the round's summary names it too
    fine = records["hops/fine"]["test_keys"]["x_throttle"]
    assert fine["verdict"] == "not_throttled", fine
    print("sni policing:", throttled["median_ratio"], throttled["p_value"], fine["median_ratio"])
    print([(x["pair"], x["sni"][:4], x["goodput"], x["t_connect"]) for x in throttled["samples"]])
    print([(x["pair"], x["sni"][:4], x["goodput"], x["t_connect"]) for x in fine["samples"]])


def test_uniform_rate_limit_is_not_throttling(hops: HopsLab, tmp_path: Path) -> None:
    hops.set_censor({"uniform": True})
    records = probe_run(hops, tmp_path, THROTTLE_LIST, "--throttle-check", f"{SERVER}:443")
    for record in records.values():
        x_throttle = record["test_keys"]["x_throttle"]
        assert x_throttle["verdict"] == "not_throttled", x_throttle
        assert "throttled:" not in record["test_keys"]["verdict"]["reason"]
    print("uniform:", [r["test_keys"]["x_throttle"]["median_ratio"] for r in records.values()])
