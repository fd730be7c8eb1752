"""One measurement round: baselines first, probe and control in parallel, analysis, records.

The round orchestrates; the rest lives elsewhere: `measure` measures one target, `companions`
asks the control and learns the public address alongside, `vantage` learns where the probe
stands (network, resolver, VPN, the public address to scrub),
`records` builds and judges each record, `results` writes it, `schedule` repeats rounds.

Records are written as each target finishes (append-only JSON Lines). If the round is
cancelled (Ctrl-C, SIGTERM), what finished is already on disk and every unfinished target gets
an `interrupted` record before the cancellation goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from probe.analysis import Judged, VantageFacts, judge_service, service_rules
from probe.analysis.followups import amend
from probe.i18n.message import M, Said, Text
from probe.observations import Observations
from probe.results import ResultWriter
from probe.round.companions import Companions
from probe.round.followups import FollowUps, follow_up
from probe.round.measure import MeasureConfig, RunState, measure_target
from probe.round.records import (
    ControlOutcome,
    RecordBuilder,
    RecordTally,
    new_report_id,
    ooni_time,
)
from probe.round.resources import raise_gc_threshold, raise_open_file_limit
from probe.round.schedule.period import jittered, parse_duration
from probe.steps import dns
from probe.targets import Target, TargetList
from probe.vantage.facts import Scrubber, Vantage, VantageState, ipv6_reachability, reached
from probe.vantage.geoip import GeoIP


@dataclass(frozen=True, slots=True)
class RoundOptions:
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    out_dir: str = "results"
    control_urls: tuple[str, ...] = ()
    control_token: str | None = None
    geoip_dbs: tuple[str, ...] = ()
    fingerprint_files: tuple[str, ...] = ()
    #: annotate records with this configured country; a control echo that disagrees means VPN
    expected_cc: str | None = None
    #: DNS over HTTPS as the DNS-only control when no control server answers (and no
    #: --resolver confines DNS to one server); `--no-control` turns it off too
    doh_urls: tuple[str, ...] = dns.PUBLIC_DOH_URLS
    #: learn the public address (STUN, HTTPS echo) to keep it out of the records
    ip_discovery: bool = True
    #: None: the public defaults (publicip), except for a round whose targets are all private
    #: addresses (a loopback or lab list), which contacts no third party
    stun_servers: tuple[tuple[str, int], ...] | None = None
    echo_urls: tuple[str, ...] | None = None
    #: ranges accepted as this machine's own address although not public (test beds)
    own_nets: tuple[str, ...] = ()
    #: this installation's pseudonymous id (probe/identity.py), written in every record;
    #: None writes none (the control server, tests)
    probe_id: str | None = None
    #: follow-up checks after a target is judged (throttling, censor location)
    followups: FollowUps = field(default_factory=FollowUps)


@dataclass(slots=True)
class RoundResult:
    report_id: str
    start: datetime
    path: str
    #: what the summary needs of the written records, counted per service (`len()`: how many);
    #: the records themselves are on disk and went to `on_record`
    records: RecordTally = field(default_factory=RecordTally)
    runtime: float = 0.0
    bytes_sent: int = 0
    bytes_received: int = 0
    interrupted: bool = False
    vantage: Vantage = field(default_factory=Vantage)
    x_vantage: dict[str, Any] = field(default_factory=dict)
    control_failure: str | None = None
    notes: list[str] = field(default_factory=list)
    #: the public address was learned (discovery or the control's echo); never the address
    address_learned: bool = False

    @property
    def offline(self) -> bool:
        return VantageFacts.from_wire(self.x_vantage).offline()

    @property
    def shutdown(self) -> bool:
        """International connectivity was down, domestic sites worked."""
        return VantageFacts.from_wire(self.x_vantage).shutdown()


@dataclass(slots=True)
class TargetRun:
    """One target's way through the round: started, measured (`observations`), then judged
    (`judged`, held until its service is complete), then written and let go. Only targets
    between their start and their record exist as runs (Round.runs)."""

    target: Target
    started_at: datetime | None = None
    runtime: float = 0.0
    observations: Observations | None = None
    judged: Judged | None = None
    written: bool = False


@dataclass(slots=True)
class ServiceRun:
    """A service's targets in this round. Their records wait until all are measured: the
    verdicts without a control use facts about the whole service (probe.service)."""

    name: str
    size: int = 0
    held: list[TargetRun] = field(default_factory=list)


class Round:
    """State of one round; `run()` is the whole thing."""

    def __init__(
        self,
        lists: Sequence[TargetList],
        targets: Sequence[Target],
        options: RoundOptions,
        *,
        on_record: Callable[[dict[str, Any]], None] | None = None,
        vantage: Vantage | None = None,
        scrubber: Scrubber | None = None,
    ) -> None:
        self.targets = list(targets)
        self.options = options
        self.on_record = on_record
        self.start = datetime.now(UTC).replace(microsecond=0)
        self.report_id = new_report_id()
        start_text = self.start.strftime("%Y%m%dT%H%M%SZ")
        self.writer = ResultWriter(options.out_dir, start_text, self.report_id)
        self.result = RoundResult(self.report_id, self.start, str(self.writer.path))
        self.geoip = GeoIP(options.geoip_dbs)
        self.vantage = vantage or Vantage()
        self.scrubber = scrubber or Scrubber()
        self.vantage_state = VantageState(
            self.vantage,
            self.scrubber,
            self.geoip,
            expected_cc=options.expected_cc,
            own_nets=options.own_nets,
        )
        self.control = ControlOutcome()
        lists_by_name = {lst.name: lst for lst in lists}
        self.records = RecordBuilder(
            self.report_id,
            self.start,
            lists_by_name,
            self.vantage_state,
            self.control,
            probe_id=options.probe_id,
        )
        self.services: dict[str, ServiceRun] = {}
        for t in self.targets:
            self.services.setdefault(t.service, ServiceRun(t.service)).size += 1
        # Baselines first: their outcome says whether this vantage is online at all.
        self.order = [t for t in self.targets if t.is_baseline]
        self.baselines = len(self.order)
        self.order += [t for t in self.targets if not t.is_baseline]
        #: targets started (self.order[:started]); the runs of those not yet written, by id:
        #: memory grows with the targets in flight and held, not with the round
        self.started = 0
        self.runs: dict[str, TargetRun] = {}
        self.companions = Companions(options, self.targets, self.control, self.vantage_state)

    # -- the round -------------------------------------------------------------------------

    async def run(self) -> RoundResult:
        started = time.monotonic()
        config = self._fit_open_file_limit(self.options.measure)
        pool = dns.GetaddrinfoPool()
        resolver = dns.Resolver(config.resolver, pool=pool, source_address=config.source_address)
        state = RunState(config=config, resolver=resolver)
        resolver.counter = state.counter
        self._load_fingerprints()
        self.vantage_state.detect_vpn()
        restore_gc_threshold = raise_gc_threshold()
        try:
            await self._measure_round(state)
        except asyncio.CancelledError:
            self.result.interrupted = True
            self._write_interrupted()
            raise
        finally:
            restore_gc_threshold()
            pool.close()
            self.geoip.close()
            self.writer.close()
            self._fill_result(state, time.monotonic() - started)
        return self.result

    def _fit_open_file_limit(self, config: MeasureConfig) -> MeasureConfig:
        limit = raise_open_file_limit(4 * config.concurrency + 256)
        if limit >= 4 * config.concurrency + 256:
            return config
        # Fewer flows at once is slower; running out of descriptors mid-round is wrong (EMFILE
        # in a connect would be recorded as a failure, in an import it crashes).
        config = replace(config, concurrency=max(1, (limit - 256) // 4))
        self.vantage.notes.append(
            Said(
                M(
                    "the open-file limit ({limit}) allows only {flows} flows at once (raise it "
                    "with `ulimit -n` for faster rounds)",
                    limit=limit,
                    flows=config.concurrency,
                )
            )
        )
        return config

    async def _measure_round(self, state: RunState) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.companions.run_control(state))
            group.create_task(self.companions.discover_address(state))
            group.create_task(self.vantage_state.identify_resolver(state))
            baselines: list[TargetRun] = []
            await self._measure_all(self.order[: self.baselines], state, kept=baselines)
            self.vantage_state.baselines_measured([(r.target, r.observations) for r in baselines])
            record_tasks = [group.create_task(self._finish(run)) for run in baselines]
            await self._measure_all(itertools.islice(self.order, self.baselines, None), state)
            for task in record_tasks:
                await task

    def _fill_result(self, state: RunState, runtime: float) -> None:
        result = self.result
        result.runtime = round(runtime, 3)
        result.bytes_sent = state.counter.sent
        result.bytes_received = state.counter.received
        result.x_vantage = self.vantage_state.x_vantage()
        result.vantage = self.vantage
        result.control_failure = self.control.failure
        result.address_learned = self.vantage_state.address_learned

    async def _measure_all(
        self, targets: Iterable[Target], state: RunState, *, kept: list[TargetRun] | None = None
    ) -> None:
        """Measure `targets` (the next ones of self.order) and finish each one as it is
        measured, or, with `kept`, keep its run there unfinished (the baselines)."""

        async def one(run: TargetRun) -> None:
            run.started_at = datetime.now(UTC)
            t0 = time.monotonic()
            observations = await measure_target(run.target, state)
            run.runtime = time.monotonic() - t0
            # Measured but not yet written (it may wait for the control): an interrupt must
            # still write it, not replace it with an empty "interrupted" record.
            run.observations = observations
            if kept is None:
                await self._finish(run)

        # Targets in flight are bounded as well as flows: each one holds its DNS sockets (two
        # per name) and its observations from the start, so a list of 10,000 names must not
        # start them all at once (open-file limit, memory). `concurrency` targets keep the
        # flow semaphore busy; a fully dropped round of up to that many still costs one timeout.
        slots = asyncio.Semaphore(max(1, state.config.concurrency))
        async with asyncio.TaskGroup() as group:
            for target in targets:
                await slots.acquire()
                run = self.runs[target.id] = TargetRun(target)
                self.started += 1
                if kept is not None:
                    kept.append(run)
                group.create_task(one(run)).add_done_callback(lambda _: slots.release())

    # -- records ---------------------------------------------------------------------------

    def _load_fingerprints(self) -> None:
        from probe.analysis.fingerprints import FingerprintDB

        self.records.fingerprints = FingerprintDB.load(self.options.fingerprint_files)

    async def _finish(self, run: TargetRun) -> None:
        await self.companions.ready()
        assert run.observations is not None
        started_at = run.started_at or self.start
        run.judged = self.records.measured(run.target, run.observations, started_at, run.runtime)
        run.observations = None  # the judged case holds them
        if self.options.followups.any:
            test_keys = run.judged.record["test_keys"]
            await follow_up(run.target, test_keys, self.options.followups, self.options.measure)
        service = self.services[run.target.service]
        if service.size > service_rules.MAX_TARGETS_HELD:
            self._write(run, run.judged.record)
            return
        service.held.append(run)
        if len(service.held) >= service.size:
            self._release(service)

    def _release(self, service: ServiceRun) -> None:
        """All of `service` is measured: the second analysis pass (analysis.judge_service),
        then write its records."""
        held, service.held = service.held, []
        judged = [run.judged for run in held if run.judged is not None]
        judge_service(service.name, judged, self.records.fingerprints)
        for run in held:
            if run.judged is not None:
                self._write(run, run.judged.record)

    def _write(self, run: TargetRun, record: dict[str, Any], message: Text | None = None) -> None:
        """Scrub the record (on the data, before its one JSON encoding in the writer), write
        it, and let go of the target's observations. `message` is its verdict's reason as a
        message, for the summary in the volunteer's language (default: the judged one's)."""
        if run.written:
            return
        if message is None and run.judged is not None and run.judged.record is record:
            analysis = run.judged.analysis
            test_keys = record["test_keys"]
            # only a follow-up's finding amends the reason: most records have none
            if "x_throttle" in test_keys or "x_censor_location" in test_keys:
                analysis = amend(analysis, test_keys)
            message = analysis.verdict.message
        record = self.vantage_state.scrub(record)
        self.writer.write(record)
        run.written = True
        run.observations = run.judged = None
        if self.runs.get(run.target.id) is run:
            del self.runs[run.target.id]
        self.result.records.add(record, message)  # the full record is on disk
        if self.on_record is not None:
            self.on_record(record)

    def _write_interrupted(self) -> None:
        """On cancellation: write what was measured (without the control if it had not answered
        yet, and without service facts for a service not fully measured), then an
        `interrupted` record for every target never measured."""
        for service in self.services.values():
            held, service.held = service.held, []
            for run in held:
                if run.judged is not None:
                    with contextlib.suppress(Exception):
                        self._write(run, run.judged.record)
        for run in list(self.runs.values()):
            if not run.written and run.observations is not None:
                started_at = run.started_at or self.start
                with contextlib.suppress(Exception):
                    judged = self.records.measured(
                        run.target, run.observations, started_at, run.runtime
                    )
                    self._write(run, judged.record, judged.analysis.verdict.message)
        in_flight = [run for run in self.runs.values() if not run.written]
        never_started = (TargetRun(t) for t in self.order[self.started :])
        for run in itertools.chain(in_flight, never_started):
            with contextlib.suppress(Exception):
                self._write(run, self.records.interrupted(run.target))


async def run_round(
    lists: Sequence[TargetList],
    targets: Sequence[Target],
    options: RoundOptions,
    *,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> RoundResult:
    """Measure `targets` once and write one record per target. See `Round`."""
    return await Round(lists, targets, options, on_record=on_record).run()


#: the names other modules import from here (some live elsewhere now)
__all__ = [
    "ControlOutcome",
    "Round",
    "RoundOptions",
    "RoundResult",
    "ServiceRun",
    "TargetRun",
    "ipv6_reachability",
    "jittered",
    "new_report_id",
    "ooni_time",
    "parse_duration",
    "raise_open_file_limit",
    "reached",
    "run_round",
]
