"""Our record(s) for one measurement: the measurement checks, the envelope, and the parts of
the conversion that depend on the test (dnscheck's lookups, the resolver's own connections,
Web Connectivity's control).

Connections to the DNS resolver a query used (urlgetter's `udp://8.8.8.8:53`) belong to the
lookup, not to the target: they are left out. A measurement without a `report_id` (OONI's
simulated-censorship data) gets a stable one derived from its content (`derived_report_id`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from probe.observations import Observations
from probe.report.ooni.control_reply import control_from_test_helper
from probe.report.ooni.normalise import (
    WEB_SCHEMES,
    _failure,
    _host_of,
    _items,
    _norm_ip,
    _query,
    _scheme_of,
    _split,
    observations_from_test_keys,
)
from probe.report.ooni.units import _bundled_index, _target_for, _units

OUR_SOFTWARE = "probe"


def is_measurement(obj: object) -> bool:
    """A measurement (ours or OONI's): an object with a `test_name` and a `test_keys` object."""
    return measurement_problem(obj) is None


def measurement_problem(obj: object) -> str | None:
    """Why `obj` is not a measurement, in a few words (None: it is one)."""
    if not isinstance(obj, dict):
        return "not a JSON object"
    if not isinstance(obj.get("test_keys"), dict):
        return "no test_keys object"
    if not isinstance(obj.get("test_name"), str) or not obj["test_name"]:
        return "no test_name"
    return None


def derived_report_id(measurement: dict[str, Any]) -> str:
    """The measurement's `report_id`; for one without (OONI's simulated-censorship data has
    ""), a stable id from its `measurement_uid` or else a hash of its content, so that `probe
    report` can tell runs apart and drop copies of the same measurement."""
    report_id = measurement.get("report_id")
    if isinstance(report_id, str) and report_id.strip():
        return report_id
    uid = measurement.get("measurement_uid")
    if isinstance(uid, str) and uid.strip():
        return f"x-ooni-{uid.strip()}"
    text = json.dumps(measurement, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"x-ooni-{digest[:32]}"


def is_ours(obj: dict[str, Any]) -> bool:
    """One of our own records (already in our shape)."""
    return obj.get("software_name") == OUR_SOFTWARE and isinstance(
        obj.get("test_keys", {}).get("target"), dict
    )


ENVELOPE_KEYS = (
    "data_format_version",
    "software_name",
    "software_version",
    "test_version",
    "report_id",
    "measurement_start_time",
    "test_start_time",
    "test_runtime",
    "probe_asn",
    "probe_cc",
    "probe_network_name",
    "resolver_ip",
    "resolver_asn",
    "annotations",
)


def _fill_asns(obs: Observations, asns: dict[str, int]) -> None:
    for q in obs.queries:
        for a in q.answers:
            if a.ip and not a.asn and _norm_ip(a.ip) in asns:
                a.asn = asns[_norm_ip(a.ip)]


def records_from_measurement(measurement: dict[str, Any]) -> list[dict[str, Any]]:
    """Our record(s) for one measurement: ours unchanged, OONI's mapped (see the module doc).

    Never raises on odd content: missing or malformed fields just mean fewer observations."""
    if not is_measurement(measurement):
        return []
    if is_ours(measurement):
        return [measurement]
    test_name = str(measurement.get("test_name") or "unknown")
    test_keys: dict[str, Any] = measurement["test_keys"]
    obs = observations_from_test_keys(test_keys)
    input_ = measurement.get("input")
    if test_name == "dnscheck":
        obs = _dnscheck_observations(test_keys)
        input_ = test_keys.get("domain") or input_
    _drop_resolver_connections(obs)
    control_reply = test_keys.get("control")
    control: Observations | None = None
    asns: dict[str, int] = {}
    if isinstance(control_reply, dict) and control_reply and isinstance(input_, str):
        control = control_from_test_helper(control_reply, _control_url(input_, obs))
        info = control_reply.get("ip_info")
        for ip, value in info.items() if isinstance(info, dict) else []:
            if isinstance(value, dict) and isinstance(value.get("asn"), int) and value["asn"] > 0:
                asns[_norm_ip(str(ip))] = value["asn"]
        _fill_asns(obs, asns)
    control_failure = _failure(test_keys.get("control_failure"))
    index = _bundled_index()
    records = []
    report_id = derived_report_id(measurement)
    for unit in _units(test_name, input_, obs):
        target = _target_for(test_name, unit, index)
        envelope = {k: measurement.get(k) for k in ENVELOPE_KEYS if k in measurement}
        envelope["report_id"] = report_id
        records.append(
            {
                **envelope,
                "test_name": test_name,
                "input": target["id"],
                "probe_ip": "127.0.0.1",
                "x_ooni": {"test_name": test_name, "input": measurement.get("input")},
                "test_keys": {
                    "target": target,
                    **unit.obs.to_dict(),
                    "control": control.to_dict() if control is not None else None,
                    "control_failure": control_failure if control is None else None,
                    "x_vantage": {
                        "baseline_ok": 0,
                        "baseline_total": 0,
                        "control_reachable": control is not None,
                        "ipv6_ok": None,
                    },
                },
            }
        )
    return records


def _dnscheck_observations(test_keys: dict[str, Any]) -> Observations:
    """dnscheck keeps one urlgetter result per resolver address in `lookups` (the domain looked
    up through the resolver under test, e.g. over DoT) and the lookup of the resolver's own
    name in `bootstrap`: their queries."""
    obs = Observations()
    lookups = test_keys.get("lookups")
    results = list(lookups.values()) if isinstance(lookups, dict) else []
    results.append(test_keys.get("bootstrap"))
    for result in results:
        if isinstance(result, dict):
            obs.queries.extend(_query(q) for q in _items(result.get("queries")))
    return obs


def _drop_resolver_connections(obs: Observations) -> None:
    """Connections to a resolver the queries used (`ip:port`) are part of the lookup, not
    endpoints of the target — unless the target's own names resolved to that address."""
    resolvers = {r for q in obs.queries if (r := _split(q.resolver_address or "")) is not None}
    if not resolvers:
        return
    answered = {_norm_ip(a.ip) for q in obs.queries for a in q.answers if a.ip}
    obs.tcp_connect = [
        c for c in obs.tcp_connect if (c.ip, c.port) not in resolvers or c.ip in answered
    ]
    obs.tls_handshakes = [
        h
        for h in obs.tls_handshakes
        if (split := _split(h.address)) is None or split not in resolvers or split[0] in answered
    ]


def _control_url(input_: str, obs: Observations) -> str:
    """The URL the test helper fetched: the input, or for a bare host the first web URL the
    probe fetched (else http://host/)."""
    if _scheme_of(input_) in WEB_SCHEMES:
        return input_
    host = _host_of(input_)
    for r in obs.requests:
        if _scheme_of(r.url) in WEB_SCHEMES and _host_of(r.url) == host:
            return r.url
    return f"http://{input_.strip()}/" if host else input_
