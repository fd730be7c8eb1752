"""A round's records: the envelope every record shares, a measured target's record with its
verdict, the record of a target the round never measured, and the tally of the written records
the round keeps for its summary (counts per service, not one entry per record).

A measured target is judged from the observations in hand (`analysis.judge` over a `Case`), not
from the record built from them; `probe analyze` parses the same case back from the stored
record (`analysis.case_from_record`). The record format is docs/records.md.
"""

from __future__ import annotations

import platform
import secrets
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from probe import SOFTWARE_NAME, __version__, failures
from probe.analysis import Case, Judged, TargetFacts, analyze, judge, service_rules
from probe.analysis.vocabulary import INTERRUPTED_MESSAGE, INTERRUPTED_REASON
from probe.i18n.message import C, Raw, Said, Text
from probe.observations import MAX_KEPT_HTTP_CHARS, DNSQuery, Observations, bound_http
from probe.targets import Target, TargetList
from probe.vantage.facts import PROBE_IP, VantageState

if TYPE_CHECKING:
    from probe.analysis.fingerprints import FingerprintDB

DATA_FORMAT_VERSION = "0.2.0"
TEST_VERSION = "0.1.0"


def ooni_time(moment: datetime) -> str:
    """The OONI time "YYYY-mm-dd HH:MM:SS", as strftime writes it (at twice the cost)."""
    if moment.year < 1000:  # strftime's %Y does not pad them (glibc)
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    return "%04d-%02d-%02d %02d:%02d:%02d" % (  # noqa: UP031 (an f-string costs more here)
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
    )


def new_report_id() -> str:
    return secrets.token_hex(8)


#: the sentences on targets that are not ok kept per service for the summary (it prints 8)
MAX_REASONS = 20
#: the targets of the summary's "web reachable x/y"
WEB_PAGE_CHECKS = ("http", "https")
#: the web targets an app may need (service.app_kinds)
APP_WEB_CHECKS = ("https", "tls", "http")


@dataclass(slots=True)
class ServiceTally:
    """What the round summary says of one service, counted as its records are written: memory
    does not grow with its number of targets (at most MAX_REASONS sentences, a set of statuses
    per kind of endpoint)."""

    name: str
    targets: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    #: blocking methods of the blocked targets, in the order first seen (ties keep it)
    methods: Counter[str | None] = field(default_factory=Counter)
    fingerprints: set[str] = field(default_factory=set)
    dc_total: int = 0
    dc_ok: int = 0
    web_total: int = 0
    web_ok: int = 0
    #: "<target id>: <reason>" of the first MAX_REASONS targets that are not ok (or are
    #: throttled), each a `Said`:
    #: English, with the message that renders it in the volunteer's language
    reasons: list[str] = field(default_factory=list)
    #: the statuses seen per kind of endpoint the app may need (service.app_kinds): by
    #: `app:<kind>` tag, by protocol check, and of web targets
    tagged: dict[str, set[str]] = field(default_factory=dict)
    protocol: dict[str, set[str]] = field(default_factory=dict)
    web: set[str] = field(default_factory=set)

    def add(self, record: Mapping[str, Any], message: Text | None = None) -> None:
        """Count a written record; `message` is its verdict's reason as a message (kept only
        when it says what the record says)."""
        test_keys = record.get("test_keys") or {}
        verdict = test_keys.get("verdict") or {}
        target = test_keys.get("target") or {}
        check = str(target.get("check") or "")
        tags = target.get("tags") or ()
        status = verdict.get("status", "inconclusive")
        self.targets += 1
        self.statuses[status] += 1
        if status == "blocked":
            self.methods[verdict.get("blocking")] += 1
        self.fingerprints.update(verdict.get("fingerprints") or ())
        if check == "mtproto":
            self.dc_total += 1
            self.dc_ok += status == "ok"
        elif check in WEB_PAGE_CHECKS:
            self.web_total += 1
            self.web_ok += status == "ok"
        # a throttled target is ok (it answers) but its reason says it is throttled
        throttled = (test_keys.get("x_throttle") or {}).get("verdict") == "throttled"
        if (status != "ok" or throttled) and len(self.reasons) < MAX_REASONS:
            self.reasons.append(
                Said(
                    C(
                        "summary",
                        "{target}: {reason}",
                        target=str(record.get("input")),
                        reason=reason_text(verdict, message),
                    )
                )
            )
        text = str(status)
        prefix = service_rules.APP_TAG_PREFIX
        for tag in map(str, tags if isinstance(tags, list | tuple) else ()):
            if tag.startswith(prefix) and len(tag) > len(prefix):
                self.tagged.setdefault(tag[len(prefix) :], set()).add(text)
        if check in service_rules.APP_CHECKS:
            self.protocol.setdefault(check, set()).add(text)
        elif check in APP_WEB_CHECKS:
            self.web.add(text)

    def usable_and_interfered(self) -> tuple[bool | None, bool | None]:
        """service.usable_and_interfered over every target of the service, asked of one
        stand-in per kind and status seen: the answers depend only on those (the rule stays in
        one place)."""
        kinds = [
            service_rules.TargetVerdict("", "", (service_rules.APP_TAG_PREFIX + kind,), status)
            for kind, statuses in self.tagged.items()
            for status in statuses
        ]
        kinds += [
            service_rules.TargetVerdict("", check, (), status)
            for check, statuses in self.protocol.items()
            for status in statuses
        ]
        kinds += [service_rules.TargetVerdict("", "https", (), status) for status in self.web]
        every = {str(status) for status in self.statuses}
        kinds += [service_rules.TargetVerdict("", "", (), status) for status in every]
        return service_rules.usable_and_interfered(kinds)


def reason_text(verdict: Mapping[str, Any], message: Text | None) -> Text:
    """A record's reason as a message: `message` when it is the record's reason word for word
    (scrubbing changes neither, or the record is shown as it is), else the record's English."""
    reason = str(verdict.get("reason"))
    if message is not None and message.english() == reason:
        return message
    if reason == INTERRUPTED_REASON:
        return INTERRUPTED_MESSAGE
    return Raw(reason)


@dataclass(slots=True)
class RecordTally:
    """The round's written records, tallied per service (`len()` is their number)."""

    services: dict[str, ServiceTally] = field(default_factory=dict)
    count: int = 0

    def add(self, record: Mapping[str, Any], message: Text | None = None) -> None:
        name = str(record.get("test_name") or "unknown")
        tally = self.services.get(name)
        if tally is None:
            tally = self.services[name] = ServiceTally(name)
        tally.add(record, message)
        self.count += 1

    def __len__(self) -> int:
        return self.count


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
        probe_id: str | None = None,
    ) -> None:
        self.report_id = report_id
        #: this installation's pseudonymous id (probe/identity.py): random, nothing of the
        #: machine in it, so scrubbing leaves it alone
        self.probe_id = probe_id
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
        record: dict[str, Any] = {
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
        if self.probe_id is not None:
            record["probe_id"] = self.probe_id
        return record

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
        target_wire = target.table_as_written() or {"id": target.id}
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
            "target": target.table_as_written() or {"id": target.id},
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
