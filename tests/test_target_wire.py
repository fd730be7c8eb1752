"""A target's one wire format: `Target.to_wire` / `Target.from_wire` (probe/targets/model.py).

The same table a list holds, as JSON: records carry it, the probe sends it to the control
server, and the control server reads it back from anyone, so `from_wire` must refuse whatever a
list would refuse, and never raise anything but its own `TargetWireError`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from probe.targets import (
    CHECKS,
    MAX_WIRE_CHARS,
    MAX_WIRE_ITEMS,
    MEASURE_KEYS,
    TARGET_KEYS,
    TRANSPORTS,
    Target,
    TargetWireError,
    bundled_list_dir,
    bundled_list_paths,
    load_lists,
    parse_list_text,
)
from tests.test_targets import toml_key, toml_value

#: the kinds of targets the bundled lists lack (their `ca` is the bundled Signal roots)
SAMPLE = """
[list]
name = "sample"
updated = 2026-11-28

[[targets]]
id = "sample/tls"
service = "sample"
check = "tls"
host = "198.18.0.1"
sni = "tls.example"
ports = [443, 8443]
ca = "signal-roots.pem"
expect_asn = [64496]
tags = ["one", "two"]
note = "a tls check"

[[targets]]
id = "sample/http"
service = "sample"
check = "http"
url = "http://[2001:db8::1]:8080/path?q=1"

[[targets]]
id = "sample/media"
service = "sample"
check = "mtproto"
host = "2001:db8::2"
transports = ["abridged", "padded_intermediate"]
dc = -2
"""
_SAMPLE = parse_list_text(SAMPLE, str(bundled_list_dir() / "sample.toml"))
assert _SAMPLE.ok, _SAMPLE.problems
BUNDLED = load_lists(bundled_list_paths()).targets + _SAMPLE.targets


def old_client_request(target: Target) -> dict[str, Any]:
    """What the probe's control client sent before the wire format (probe 0.1's
    `target_to_request`, without its CA file): a control must still read it."""
    d: dict[str, Any] = {"id": target.id, "service": target.service, "check": target.check}
    if target.host is not None:
        d["host"] = target.host
        d["ports"] = list(target.ports)
    if target.url is not None:
        d["url"] = target.url
    if target.sni:
        d["sni"] = target.sni
    if target.check == "mtproto":
        d["transports"] = list(target.transports)
        if target.dc is not None:
            d["dc"] = target.dc
    return d


def measured(target: Target) -> Target:
    """`target` as far as a control server learns it (MEASURE_KEYS, no CA file, no list)."""
    return dataclasses.replace(target, expect_asn=(), ca=None, note=None, tags=(), list_name="")


# --- round trips -------------------------------------------------------------------------


def test_the_bundled_lists_have_every_kind_of_target() -> None:
    assert {t.check for t in BUNDLED} == set(CHECKS)
    assert any(t.ca for t in BUNDLED) and any(t.dc is not None for t in BUNDLED)


@pytest.mark.parametrize("target", BUNDLED, ids=lambda t: t.id)
def test_every_bundled_target_round_trips(target: Target) -> None:
    wire = target.to_wire()
    assert json.loads(json.dumps(wire)) == wire
    back = Target.from_wire(wire, list_name=target.list_name, ca_dir=bundled_list_dir())
    assert back == target
    assert back.table_as_written() == target.table_as_written()


@pytest.mark.parametrize("target", BUNDLED, ids=lambda t: t.id)
def test_to_wire_is_the_table_as_written(target: Target) -> None:
    """What records carry as `test_keys.target` is unchanged: the list's table, as written."""
    as_written = target.table_as_written()
    assert target.to_wire() == as_written
    assert target.to_wire() is not target.to_wire()
    copy = target.to_wire()
    for value in copy.values():
        if isinstance(value, list):
            value.append("changed")
    assert target.to_wire() == as_written == target.table_as_written()


@pytest.mark.parametrize("target", BUNDLED, ids=lambda t: t.id)
def test_what_the_control_is_sent_measures_the_same(target: Target) -> None:
    wire = target.to_wire(MEASURE_KEYS)
    assert set(wire) <= set(MEASURE_KEYS)
    assert Target.from_wire(wire) == measured(target)


@pytest.mark.parametrize("target", BUNDLED, ids=lambda t: t.id)
def test_what_the_old_client_sent_is_read_the_same(target: Target) -> None:
    # an old client knew no stun_port: its control measures the target without STUN
    old = dataclasses.replace(measured(target), stun_port=None)
    assert Target.from_wire(old_client_request(target)) == old


@pytest.mark.parametrize("target", BUNDLED, ids=lambda t: t.id)
def test_a_target_built_in_code_round_trips(target: Target) -> None:
    built = dataclasses.replace(target, definition={})
    wire = built.to_wire()
    assert set(wire) <= set(TARGET_KEYS)
    assert Target.from_wire(wire, list_name=target.list_name, ca_dir="/") == target


def test_keys_pick_a_part_of_the_table() -> None:
    [dc] = [t for t in BUNDLED if t.dc is not None][:1]
    assert list(dc.to_wire(["id", "dc", "x_nothing"])) == ["id", "dc"]


# --- what is refused ----------------------------------------------------------------------

GOOD = {"id": "test/tcp", "service": "test", "check": "tcp", "host": "127.0.0.1", "ports": [443]}
NON_STRING_KEY: dict[Any, Any] = {**GOOD, 3: "three"}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ([], "a target must be an object"),
        ("x", "a target must be an object"),
        ({"id": 1, "check": "tcp", "host": "a"}, '"id" must be a string, not an integer'),
        ({**GOOD, "url": "http://a/"}, '"url" is not allowed for check "tcp" (use "host")'),
        ({**GOOD, "ports": [True]}, '"ports" must be an array of integers, but item 1 is'),
        ({**GOOD, "ports": [70000]}, "ports: port 70000 out of range 1..65535"),
        ({**GOOD, "ports": [0]}, "port 0 out of range 1..65535"),
        ({**GOOD, "ports": None}, '"ports" must be an array of integers, not null'),
        ({**GOOD, "ports": []}, '"ports" must not be empty'),
        ({**GOOD, "check": "ftp"}, 'unknown check "ftp" (known: dns, tcp'),
        ({**GOOD, "host": "a b"}, 'host "a b" contains whitespace or control characters'),
        ({**GOOD, "host": "under_score.example"}, "bad label"),
        ({**GOOD, "host": "[::1]"}, "write IPv6 addresses without brackets"),
        ({**GOOD, "id": "other/tcp"}, 'must start with its service "test/"'),
        ({**GOOD, "id": "test/TCP"}, 'the name after "/" must match'),
        ({**GOOD, "colour": "red"}, 'unknown key "colour"'),
        ({**GOOD, "ports": [443] * (MAX_WIRE_ITEMS + 1)}, f"has over {MAX_WIRE_ITEMS} items"),
        ({**GOOD, "note": "n" * (MAX_WIRE_CHARS + 1)}, f"is over {MAX_WIRE_CHARS} characters"),
        ({**GOOD, "ports": [2**80]}, "holds a number out of range"),
        (NON_STRING_KEY, "keys must be strings, not int"),
        ({**GOOD, **{f"x_{n}": n for n in range(30)}}, "over 32 keys"),
        ({"id": "a/b", "check": "tcp", "host": "a"}, 'missing required key "ports" for check'),
        ({"id": "a/b", "check": "https", "url": "http://a/"}, 'url scheme "http" does not match'),
        ({"id": "a/b", "check": "https", "url": "https://u@a/"}, "must not contain user info"),
        ({"id": "a/b", "check": "https", "host": "a"}, 'missing required key "url"'),
        ({"id": "a/b", "check": "mtproto", "host": "a", "transports": ["carrier-pigeon"]}, ""),
        ({"id": "a/b", "check": "mtproto", "host": "a", "dc": 70000}, "dc 70000 is not a DC id"),
        ({"id": "a/b", "check": "mtproto", "host": "a", "dc": 0}, "dc 0 is not a DC id"),
        ({"id": "a/b", "check": "mtproto", "host": "a", "dc": True}, "must be an integer"),
        ({"id": "a/b", "check": "mtproto", "host": "a", "dc": "2"}, "must be an integer"),
        ({"id": "a/b", "check": "tls", "host": "1.2.3.4"}, 'with an IP address host needs "sni"'),
        ({"id": "a/b", "check": "tls", "host": "a", "sni": "1.2.3.4"}, "not an IP address"),
        ({"id": "a/b", "check": "dns", "host": "a", "ports": [53]}, "connects nowhere"),
        ({"id": "ab", "check": "dns", "host": "a"}, 'missing required key "service"'),
    ],
)
def test_bad_tables_are_refused_in_one_line(table: Any, message: str) -> None:
    with pytest.raises(TargetWireError) as refused:
        Target.from_wire(table)
    text = str(refused.value)
    assert message in text
    assert "\n" not in text and len(text) < 1000
    assert isinstance(refused.value, ValueError)
    if isinstance(table, dict) and isinstance(table.get("id"), str):
        assert text.startswith(f'target "{table["id"]}": ')


def test_a_ca_file_is_never_opened_for_someone_else(tmp_path: Path) -> None:
    secret = tmp_path / "secret.pem"
    secret.write_text("not a certificate")
    table = {"id": "a/b", "check": "https", "url": "https://a/", "ca": str(secret)}
    with pytest.raises(TargetWireError, match="a file cannot be named here"):
        Target.from_wire(table)
    with pytest.raises(TargetWireError, match="contains no PEM certificate"):
        Target.from_wire(table, ca_dir=tmp_path)


def test_extensions_are_left_to_the_caller_and_service_defaults_to_the_prefix() -> None:
    target = Target.from_wire(
        {"id": "a/b", "check": "https", "url": "https://a/", "x_ca_pem": "x" * 70_000}
    )
    assert target.service == "a" and target.ports == () and target.transports == ()
    assert "x_ca_pem" not in target.to_wire()


def test_the_old_clients_empty_dns_ports_are_no_ports() -> None:
    target = Target.from_wire({"id": "a/b", "check": "dns", "host": "a", "ports": []})
    assert target.ports == () and "ports" not in target.to_wire()


def test_defaults_are_the_lists() -> None:
    tls = Target.from_wire({"id": "a/b", "check": "tls", "host": "a"})
    mtproto = Target.from_wire({"id": "a/c", "check": "mtproto", "host": "1.2.3.4"})
    assert tls.ports == (443,) and tls.transports == ()
    assert mtproto.ports == (443,) and mtproto.transports == ("obfuscated2", "intermediate")


# --- properties ---------------------------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(("a/b", "a", "tcp", "mtproto", "https://a/", "127.0.0.1", "::1")),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
KEYS = st.sampled_from((*TARGET_KEYS, "x_ca_pem")) | st.text(max_size=6)
VALUES_FOR = {
    "id": st.sampled_from(("a/b", "a/", "/b", "a/b/c", "A/b")),
    "service": st.sampled_from(("a", "b", "A")),
    "check": st.sampled_from(CHECKS),
    "host": st.sampled_from(("a", "a.example", "127.0.0.1", "::1", "1.2.3", "a..b", "é.example")),
    "url": st.sampled_from(("https://a/", "http://a:80/x", "https://[::1]/", "https://a:0/")),
    "ports": st.lists(st.integers(-1, 70000), max_size=3),
    "sni": st.sampled_from(("a", "1.2.3.4", "")),
    "expect_asn": st.lists(st.integers(-1, 2**32), max_size=2),
    "transports": st.lists(st.sampled_from((*TRANSPORTS, "x")), max_size=3),
    "dc": st.integers(-40000, 40000),
    "note": st.text(max_size=5),
    "tags": st.lists(st.text(max_size=3), max_size=2),
}


@st.composite
def tables(draw: st.DrawFn) -> dict[str, Any]:
    """Target tables near valid ones: a bundled target's, with a few keys set or removed."""
    table = draw(st.sampled_from(BUNDLED)).to_wire()
    table.pop("ca", None)
    for _ in range(draw(st.integers(0, 3))):
        key = draw(KEYS)
        if key in table and draw(st.booleans()):
            del table[key]
        elif key in VALUES_FOR and draw(st.integers(0, 3)):
            table[key] = draw(VALUES_FOR[key])
        else:
            table[key] = draw(JSON)
    return table


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON | tables())
def test_from_wire_raises_only_its_own_error(table: Any) -> None:
    try:
        target = Target.from_wire(table)
    except TargetWireError as exc:
        event("refused")
        assert "\n" not in str(exc)
        return
    event("accepted")
    assert Target.from_wire(target.to_wire()) == target
    assert Target.from_wire(target.to_wire(MEASURE_KEYS)) == measured(target)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_from_wire_accepts_what_a_list_accepts(table: dict[str, Any]) -> None:
    """The same rules: a table a list would hold is a target on the wire, and the same one."""
    table = {k: v for k, v in table.items() if isinstance(k, str) and k and not k.startswith("x_")}
    if "service" not in table or "ca" in table or not _toml_safe(table):
        event("not a list's table")
        return
    if table.get("check") == "dns" and table.get("ports") == []:
        event("not a list's table")
        return  # the old client's way, read as no ports on the wire only
    head = '[list]\nname = "t"\nupdated = 2026-11-28\n\n[[targets]]\n'
    text = head + "".join(f"{toml_key(k)} = {toml_value(v)}\n" for k, v in table.items())
    loaded = parse_list_text(text, "wire/list.toml")
    try:
        target = Target.from_wire(table, list_name="t")
    except TargetWireError:
        event("refused")
        assert not loaded.ok
        return
    event("accepted")
    assert loaded.ok, loaded.problems
    assert loaded.targets == (target,)
    assert loaded.lists[0].updated == date(2026, 11, 28)


def _toml_safe(value: Any) -> bool:
    """Values that mean the same in TOML as in JSON (no null, no nested tables, no NaN, no
    surrogates, integers of 64 bits) and within the wire's limits."""
    if value is None or isinstance(value, float):
        return False
    if isinstance(value, dict):
        return all(_toml_safe(v) for v in value.values())
    if isinstance(value, list):
        return len(value) <= MAX_WIRE_ITEMS and all(
            _toml_safe(v) and not isinstance(v, dict) for v in value
        )
    if isinstance(value, int) and not isinstance(value, bool):
        return -(2**63) <= value < 2**63
    if isinstance(value, str):
        return len(value) <= MAX_WIRE_CHARS and not re.search("[\ud800-\udfff]", value)
    return True
