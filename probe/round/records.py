"""A round's records: the envelope every record shares, a measured target's record with its
verdict, the record of a target the round never measured, and the small view of each record the
round keeps for its summary.

A measured target is judged from the observations in hand (`analysis.judge` over a `Case`), not
from the record built from them; `probe analyze` parses the same case back from the stored
record (`analysis.case_from_record`). The record format is docs/records.md.
"""

from __future__ import annotations

import platform
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from probe import SOFTWARE_NAME, __version__, failures
from probe.analysis import Case, Judged, TargetFacts, analyze, judge
from probe.observations import MAX_KEPT_HTTP_CHARS, DNSQuery, Observations, bound_http
from probe.targets import Target, TargetList
from probe.vantage.facts import PROBE_IP, VantageState

if TYPE_CHECKING:
    from probe.analysis.fingerprints import FingerprintDB

DATA_FORMAT_VERSION = "0.2.0"
TEST_VERSION = "0.1.0"


def ooni_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def new_report_id() -> str:
    return secrets.token_hex(8)


def summary_view(record: dict[str, Any]) -> dict[str, Any]:
    """What the round summary needs of a record (id, service, check, tags, verdict). Keeping
    only this in memory keeps a round's memory flat in its number of targets; the full record
    is on disk and goes to `on_record`."""
    test_keys = record.get("test_keys") or {}
    target = test_keys.get("target") or {}
    return {
        "input": record.get("input"),
        "test_name": record.get("test_name"),
        "test_keys": {
            "target": {"check": target.get("check"), "tags": list(target.get("tags") or ())},
            "verdict": test_keys.get("verdict"),
        },
    }


@dataclass(slots=True)
class ControlOutcome:
    """What the round learned from the control server (or from its absence)."""

    observations: dict[str, Observations] = field(default_factory=dict)
    failure: str | None = None
    reachable: bool = False
    doh: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


class RecordBuilder:
    """Builds the records of one round from what it measured and learned so far: `measured`
    and `interrupted`. The vantage and the control outcome are read when a record is built
    (records wait for the control and the address discovery, except when interrupted)."""

    def __init__(
        self,
        report_id: str,
        start: datetime,
        lists: Mapping[str, TargetList],
        vantage: VantageState,
        control: ControlOutcome,
    ) -> None:
        self.report_id = report_id
        self.lists = lists
        self.vantage = vantage
        self.control = control
        #: set once the round has loaded them (`Round.run`)
        self.fingerprints: FingerprintDB | None = None
        self._test_start_time = ooni_time(start)
        self._platform = platform.system().lower()
        self._architecture = platform.machine()

    def envelope(self, target: Target, started_at: datetime, runtime: float) -> dict[str, Any]:
        """The OONI-style fields around `test_keys` (`resolver_ip` is decided when the record
        is scrubbed, VantageState.scrub)."""
        v = self.vantage.vantage
        annotations: dict[str, str] = {
            "platform": self._platform,
            "architecture": self._architecture,
            "engine_name": SOFTWARE_NAME,
        }
        if v.network_type:
            annotations["network_type"] = v.network_type
        geoip = self.vantage.geoip
        if geoip:
            annotations["geoip"] = geoip.description
        return {
            "annotations": annotations,
            "data_format_version": DATA_FORMAT_VERSION,
            "input": target.id,
            "measurement_start_time": ooni_time(started_at),
            "probe_asn": v.probe_asn,
            "probe_cc": v.probe_cc,
            "probe_ip": PROBE_IP,
            "probe_network_name": v.probe_network_name,
            "report_id": self.report_id,
            "resolver_asn": v.resolver_asn,
            "resolver_ip": v.resolver_ip,
            "resolver_network_name": v.resolver_network_name,
            "software_name": SOFTWARE_NAME,
            "software_version": __version__,
            "test_keys": {},
            "test_name": target.service,
            "test_runtime": round(runtime, 3),
            "test_start_time": self._test_start_time,
            "test_version": TEST_VERSION,
        }

    def provenance(self, target: Target) -> dict[str, str] | None:
        """The list the target came from (`test_keys.list`)."""
        lst = self.lists.get(target.list_name)
        return lst.provenance() if lst is not None else None

    def measured(
        self, target: Target, observations: Observations, started_at: datetime, runtime: float
    ) -> Judged:
        """A measured target's record, judged (the service's second pass may judge it again,
        analysis.judge_service)."""
        record = self.envelope(target, started_at, runtime)
        # bounded before anything else holds a copy: hostile redirect chains must not make one
        # target's record tens of MB
        trimmed = bound_http(observations)
        control = self.control.observations.get(target.id)
        self.vantage.geoip.annotate(observations.queries)
        if control is not None:
            self.vantage.geoip.annotate(control.queries)
        target_wire = dict(target.definition) or {"id": target.id}
        test_keys: dict[str, Any] = {
            "target": target_wire,
            "list": self.provenance(target),
            **observations.to_dict(),
            "x_vantage": self.vantage.x_vantage(),
            "control": control.to_dict() if control is not None else None,
            "control_failure": self.control.failure,
        }
        if trimmed:
            test_keys["x_http_trimmed"] = {
                "responses": trimmed,
                "budget_chars": MAX_KEPT_HTTP_CHARS,
            }
        if self.vantage.discovery is not None:
            # how the public address was learned; never the address itself
            test_keys["x_ip_discovery"] = self.vantage.discovery.to_dict()
        doh = self.control.doh.get(target.hostname)
        if doh:
            test_keys["x_doh"] = doh
            record["annotations"]["control"] = "doh"
        record["test_keys"] = test_keys
        case = Case(
            target=TargetFacts.from_wire(target_wire),
            probe=observations,
            control=control,
            control_failure=self.control.failure,
            doh=tuple(DNSQuery.from_dict(q) for q in doh or ()),
            vantage=self.vantage.facts,
            probe_cc=self.vantage.vantage.probe_cc,
        )
        analysis = judge(case, self.fingerprints)
        test_keys["x_endpoints"] = [e.to_dict() for e in analysis.endpoints]
        test_keys["verdict"] = analysis.verdict.to_dict()
        return Judged(record, analysis, case)

    def interrupted(self, target: Target) -> dict[str, Any]:
        """The record of a target the round never measured (Ctrl-C, SIGTERM)."""
        record = self.envelope(target, datetime.now(UTC), 0.0)
        record["annotations"]["interrupted"] = "true"
        record["test_keys"] = {
            "target": dict(target.definition) or {"id": target.id},
            "list": self.provenance(target),
            **Observations().to_dict(),
            "x_endpoints": [],
            "x_vantage": self.vantage.x_vantage(),
            "control": None,
            "control_failure": self.control.failure,
            "failure": failures.INTERRUPTED,
        }
        # The analysis knows interrupted records, so `probe analyze` reproduces this verdict.
        record["test_keys"]["verdict"] = analyze(record, self.fingerprints).verdict.to_dict()
        return record
