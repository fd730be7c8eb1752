"""Today's scrubber returns exactly what the reference scrubber (`tests.scrub_reference`, the
algorithm before the per-record fast paths) returns: the same record to the byte, the same
report, the same text — on generated records with addresses in every form the scanner handles,
and on real records (the probe's own and OONI's). Both scrubbers are reused across a series of
records, as a round reuses its scrubber: what one remembers from a record must not change the
next one's result. No test sends a packet anywhere.
"""

from __future__ import annotations

import copy
import ipaddress
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe.vantage.scrub import LAB_NETS, Scrubber
from tests import scrub_reference
from tests.test_scrub import DNS_ANSWER, SPELLINGS, SURVIVORS, TARGET_IP, make_record

DATA = Path(__file__).parent / "data"

#: Addresses in the forms the scanner reads, own and not own: public ones (identifying), private
#: and reserved ones (not), the record's measured ones (kept), public resolvers, an EUI-64 one,
#: the lab range, IPv6 in 2000::/3 and outside it.
_ADDRESSES = [
    "203.0.113.7",
    "2001:db8::5",
    "2001:db8:0:0:1:2:3:4",
    "74.125.18.1",
    "8.8.8.8",
    "10.10.34.34",
    "192.168.1.1",
    "127.0.0.1",
    "198.18.0.5",
    "100.64.0.1",
    DNS_ANSWER,
    TARGET_IP,
    "2a01:4f8:c17:1::42",
    "2a01:4f8:c17:1:0211:22ff:fe33:4455",
    "fe80::1",
    "fd00::1",
    "64:ff9b::cb00:7107",
    "2002:cb00:7107::1",
    "::ffff:74.125.18.1",
]


def _spellings(address: str) -> list[str]:
    """Some spellings of `address`, as the scanner reads them."""
    parsed = ipaddress.ip_address(address)
    out = [address, f"[{address}]:443", f"http://{address}/x", f"id={address};"]
    if parsed.version == 4:
        octets = address.split(".")
        dashed = "-".join(octets)
        out += [
            f"ip-{dashed}.isp.example",
            f"{dashed}.dyn.example",
            "_".join(octets),
            ".".join(reversed(octets)) + ".in-addr.arpa",
            ".".join(reversed(octets)) + ".static.example",
            f"::ffff:{address}",
            "::ffff:" + "{:02x}{:02x}:{:02x}{:02x}".format(*map(int, octets)),
            address.replace(".", "&#46;"),
            address.replace(".", "%2E"),
            address.replace(".", "&period;"),
            ".".join(o.zfill(3) for o in octets),
            f"{address}:8080",
        ]
    else:
        out += [
            parsed.exploded,
            parsed.exploded.upper(),
            f"{address}%eth0",
            ".".join(reversed(parsed.exploded.replace(":", ""))) + ".ip6.arpa",
            address.replace(":", "%3A"),
        ]
    return out


_TEXTS = [s for a in _ADDRESSES for s in _spellings(a)] + [t for t, _ in SPELLINGS] + SURVIVORS
_FILLER = st.text(alphabet="abcxyz0123456789 .:-_/%&#;[]()\n\t=,\u00a0\u00e9", max_size=8)
_TEXT = st.lists(st.one_of(_FILLER, st.sampled_from(_TEXTS)), min_size=1, max_size=5).map("".join)

#: Where generated text goes: free text, structured fields, binary fields, header names.
_FIELDS: list[tuple[Any, ...]] = [
    ("requests", 0, "response", "body"),
    ("requests", 0, "response", "x_title"),
    ("requests", 0, "request", "url"),
    ("requests", 0, "x_location"),
    ("tls_handshakes", 0, "failure"),
    ("tls_handshakes", 0, "server_name"),
    ("tcp_connect", 0, "status", "failure"),
    ("tcp_connect", 1, "ip"),
    ("queries", 0, "answers", 0, "hostname"),
    ("queries", 0, "hostname"),
    ("network_events", 0, "address"),
    ("verdict", "reason"),
    ("target", "url"),
    ("x_endpoints", 0, "failure"),
    # the subtrees every record of a round holds alike (`paths.STEADY_PATHS`)
    ("x_ip_discovery", "observations", 0, "server"),
    ("x_ip_discovery", "observations", 0, "failure"),
    ("x_ip_discovery", "ipv4", "x_note"),
    ("x_vantage", "x_note"),
    ("list", "name"),
    ("x_service", "kinds", "https", "x_note"),
]


def _discovery() -> dict[str, Any]:
    """How a round learned the public address: the same in each of its records."""
    observation = {
        "method": "stun",
        "server": "stun.example:3478",
        "server_address": "74.125.18.1",
        "public": False,
        "failure": None,
        "t0": 0.003723,
        "t": 0.325651,
    }
    return {"ipv4": {"found": False, "answers": 0}, "observations": [observation]}


def _scrubbers(make: Any) -> list[Any]:
    """The configurations a round uses: address known (IPv4, IPv6 and its /64), redaction with
    the IPv6 address known, redaction with nothing known, the lab's allowed networks, and
    nothing known without redaction."""
    known = make()
    assert known.add("203.0.113.7")
    assert known.add("2001:db8::5")
    assert known.add_prefix("2001:db8::5")
    redact = make(redact_unknown=True)
    assert redact.add("2001:db8::5")
    lab = make(redact_unknown=True, keep=["8.8.8.8"])
    lab.allow(*LAB_NETS)
    assert lab.add("198.18.0.5")
    return [known, redact, make(redact_unknown=True), lab, make()]


def _outcome(scrubber: Any, record: dict[str, Any], keep: Iterable[str]) -> tuple[Any, ...]:
    before = json.dumps(record)
    out, report = scrubber.scrub_record(record, keep=keep)
    assert json.dumps(record) == before  # copy on write: the input is never modified
    fields = (report.mode, report.replaced, report.redacted, report.fields, report.hashes_cleared)
    return json.dumps(out, ensure_ascii=False), fields


def _compare(
    records: list[dict[str, Any]],
    keep: Iterable[str] = (),
    keeps: list[Iterable[str]] | None = None,
) -> None:
    """Each configuration scrubs the series in order, today's and the reference's, each record
    with `keep` (or with its own of `keeps`)."""
    if keeps is None:
        keeps = [keep] * len(records)
    for new, old in zip(_scrubbers(Scrubber), _scrubbers(scrub_reference.Scrubber), strict=True):
        for record, kept in zip(records, keeps, strict=True):
            assert _outcome(new, record, kept) == _outcome(old, record, kept), record


def _insert(record: dict[str, Any], insertions: list[tuple[int, str]]) -> dict[str, Any]:
    keys = record["test_keys"]
    keys["x_ip_discovery"] = _discovery()
    keys["x_service"] = {"name": "itest", "targets": 2, "kinds": {"https": {"ok": 2}}}
    for index, text in insertions:
        *parents, last = _FIELDS[index]
        node: Any = keys
        for key in parents:
            node = node[key]
        node[last] = f"{node.get(last) or ''} {text}"
    return record


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.lists(st.tuples(st.sampled_from(range(len(_FIELDS))), _TEXT), max_size=4),
        min_size=1,
        max_size=3,
    ),
    st.lists(_TEXT, max_size=2),
    st.lists(st.tuples(_TEXT, _TEXT), max_size=2),
    st.one_of(st.none(), st.sampled_from(_TEXTS)),
    st.one_of(st.none(), st.sampled_from(_TEXTS), _TEXT),
)
def test_generated_records_come_out_as_the_reference_s(
    series: list[list[tuple[int, str]]],
    keep: list[str],
    headers: list[tuple[str, str]],
    resolver_ip: str | None,
    steady: str | None,
) -> None:
    records = []
    for insertions in series:
        record = _insert(make_record(headers=headers or None, resolver_ip=resolver_ip), insertions)
        if steady is not None:  # the same text in every record's x_ip_discovery
            record["test_keys"]["x_ip_discovery"]["observations"][0]["failure"] = steady
        records.append(record)
    _compare(records, keep)
    # What one record keeps must not spare anything in the next (which keeps nothing).
    first = [*keep, *([steady] if steady is not None else [])]
    _compare(records, keeps=[first, *[()] * (len(records) - 1)])


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_generated_text_comes_out_as_the_reference_s(text: str) -> None:
    for new, old in zip(_scrubbers(Scrubber), _scrubbers(scrub_reference.Scrubber), strict=True):
        assert new.scrub(text) == old.scrub(text), text


def _real_records() -> list[dict[str, Any]]:
    paths = [DATA / "probe_record.json", *sorted((DATA / "ooni" / "spec_examples").glob("*"))]
    return [json.loads(path.read_text()) for path in paths if path.suffix == ".json"]


def _with_measured_in_free_text(record: dict[str, Any]) -> dict[str, Any]:
    """The record with its resolver, a measured address and an unknown public address named in
    free text (what a round's verdict reasons and failures do)."""
    record = copy.deepcopy(record)
    record["resolver_ip"] = "74.125.18.1"
    test_keys = record.get("test_keys")
    if isinstance(test_keys, dict):
        test_keys["x_note"] = f"{DNS_ANSWER} 203.0.113.7 2a01:4f8:c17:1::42 8.8.8.8"
    return record


@pytest.mark.parametrize(
    "change", [lambda r: r, _with_measured_in_free_text], ids=["as-is", "addresses"]
)
def test_real_records_come_out_as_the_reference_s(
    change: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    records = [change(record) for record in _real_records()]
    assert len(records) > 10
    _compare(records)
    _compare(list(reversed(records)), keep=[DNS_ANSWER])
