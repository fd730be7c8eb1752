"""One measurement round: baselines first, probe and control in parallel, analysis, records.

Records are written as each target finishes (append-only JSON Lines). If the round is
cancelled (Ctrl-C, SIGTERM), what finished is already on disk and every unfinished target gets
an `interrupted` record before the cancellation goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import platform
import resource
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from probe import SOFTWARE_NAME, __version__, dns, failures, publicip
from probe import service as service_rules
from probe.addresses import is_ipv6
from probe.analysis import (
    Case,
    Judged,
    TargetFacts,
    VantageFacts,
    analyze,
    judge,
    judge_service,
)
from probe.geoip import GeoIP
from probe.measure import MeasureConfig, RunState, measure_target
from probe.observations import MAX_KEPT_HTTP_CHARS, DNSQuery, Observations, Trace, bound_http
from probe.results import ResultWriter
from probe.scrub import safe_resolver_ip
from probe.targets import Target, TargetList
from probe.vantage import (
    PROBE_IP,
    UNKNOWN_ASN,
    WHOAMI_NAME,
    Scrubber,
    Vantage,
    local_global_ipv6_addresses,
    tunnel_default_routes,
)

DATA_FORMAT_VERSION = "0.2.0"
TEST_VERSION = "0.1.0"


#: While a round runs, the cyclic garbage collector's youngest generation is collected after this
#: many new container objects instead of Python's 700. A round allocates fast and keeps the state
#: of ~1,000 targets alive, which every young collection then rescanned (and promoted, and
#: rescanned again in the older generations): garbage collection took 0.50-0.61 s of a
#: 2,000-target round's ~7.5 s CPU, 0.16-0.17 s with this (bench/success_overhead.py world,
#: timed with gc.callbacks), for ~5 MiB more peak memory. Results are the same.
GC_YOUNG_THRESHOLD = 10_000
_rounds_in_progress = 0
_threshold_before_rounds = gc.get_threshold()


def _raise_gc_threshold() -> Callable[[], None]:
    """Raise the young-generation threshold while any round runs (rounds may overlap in one
    process); the returned function undoes it. A threshold of 0 (collection off) is kept."""
    global _rounds_in_progress, _threshold_before_rounds
    if _rounds_in_progress == 0:
        _threshold_before_rounds = gc.get_threshold()
        young, *older = _threshold_before_rounds
        if young != 0:
            gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), *older)
    _rounds_in_progress += 1
    done = False

    def restore() -> None:
        global _rounds_in_progress
        nonlocal done
        if done:
            return
        done = True
        _rounds_in_progress -= 1
        if _rounds_in_progress == 0:
            gc.set_threshold(*_threshold_before_rounds)

    return restore


def ooni_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


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


@dataclass(slots=True)
class ControlOutcome:
    """What the round learned from the control server (or from its absence)."""

    observations: dict[str, Observations] = field(default_factory=dict)
    failure: str | None = None
    reachable: bool = False
    doh: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass(slots=True)
class RoundResult:
    report_id: str
    start: datetime
    path: str
    records: list[dict[str, Any]] = field(default_factory=list)
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


def raise_open_file_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards `wanted` (bounded by the hard limit); return the
    soft limit now in force (`wanted` when unlimited or unknown)."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if soft != resource.RLIM_INFINITY and soft < target:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    with contextlib.suppress(ValueError, OSError):
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return wanted if soft == resource.RLIM_INFINITY else soft
    return wanted


def reached(target: Target, observations: Observations) -> bool:
    """Did the full chain of `target`'s check succeed on at least one endpoint?"""
    if target.check == "dns":
        return any(q.answers and not q.failure for q in observations.queries)
    if target.check == "tcp":
        return any(c.success for c in observations.tcp_connect)
    if target.check == "tls":
        return any(h.failure is None for h in observations.tls_handshakes)
    if target.check == "mtproto":
        return any(m.success for m in observations.mtproto)
    return any(r.response_code is not None and r.failure is None for r in observations.requests)


def ipv6_reachability(observations: Sequence[Observations]) -> bool | None:
    """True if any IPv6 connect succeeded, False if some were tried and none did, None if none
    were tried (the baselines resolved no IPv6 address)."""
    tried = [c for obs in observations for c in obs.tcp_connect if is_ipv6(c.ip)]
    if not tried:
        return None
    return any(c.success for c in tried)


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
class _Held:
    """A measured target whose record waits for the rest of its service (probe.service)."""

    target: Target
    judged: Judged


def new_report_id() -> str:
    return secrets.token_hex(8)


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
        self.lists = {lst.name: lst for lst in lists}
        self.targets = list(targets)
        self.options = options
        self.on_record = on_record
        self.start = datetime.now(UTC).replace(microsecond=0)
        self.start_text = self.start.strftime("%Y%m%dT%H%M%SZ")
        self.report_id = new_report_id()
        self.writer = ResultWriter(options.out_dir, self.start_text, self.report_id)
        self.vantage = vantage or Vantage()
        self.scrubber = scrubber or Scrubber()
        self.scrubber.allow(*options.own_nets)
        #: the resolver's egress as whoami.akamai.net answered it (may be the volunteer's own
        #: address: a home router resolving recursively), and the nameserver asked
        self._whoami: str | None = None
        self._nameserver: str | None = None
        for address in local_global_ipv6_addresses():
            self.scrubber.add(address)
            # privacy addresses rotate within the /64: any of them is the same household
            self.scrubber.add_prefix(address)
        self.result = RoundResult(self.report_id, self.start, str(self.writer.path))
        self.finished: set[str] = set()
        self.x_vantage: dict[str, Any] = {
            "baseline_ok": 0,
            "baseline_total": 0,
            "control_reachable": False,
            "ipv6_ok": None,
        }
        self.control = ControlOutcome()
        self.discovery: publicip.Discovery | None = None
        self.address_learned = False
        self._control_ready = asyncio.Event()
        self._address_ready = asyncio.Event()
        self._fingerprints: Any = None
        self._timing: dict[str, tuple[datetime, float]] = {}
        self._measured: dict[str, tuple[Target, Observations]] = {}
        # Records of a service wait until all its targets are measured: the verdicts without
        # a control use facts about the whole service (probe.service).
        self._service_size: dict[str, int] = {}
        for t in self.targets:
            self._service_size[t.service] = self._service_size.get(t.service, 0) + 1
        self._held: dict[str, list[_Held]] = {}
        self.geoip = GeoIP(options.geoip_dbs)

    # -- the round -------------------------------------------------------------------------

    async def run(self) -> RoundResult:
        started = time.monotonic()
        config = self.options.measure
        limit = raise_open_file_limit(4 * config.concurrency + 256)
        if limit < 4 * config.concurrency + 256:
            # Fewer flows at once is slower; running out of descriptors mid-round is wrong
            # (EMFILE in a connect would be recorded as a failure, in an import it crashes).
            config = replace(config, concurrency=max(1, (limit - 256) // 4))
            self.vantage.notes.append(
                f"the open-file limit ({limit}) allows only {config.concurrency} flows at once "
                "(raise it with `ulimit -n` for faster rounds)"
            )
        pool = dns.GetaddrinfoPool()
        resolver = dns.Resolver(
            config.resolver,
            pool=pool,
            source_address=config.source_address,
        )
        state = RunState(config=config, resolver=resolver)
        resolver.counter = state.counter
        self._load_fingerprints()
        self._detect_vpn()
        restore_gc_threshold = _raise_gc_threshold()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._run_control(state))
                group.create_task(self._discover_address(state))
                group.create_task(self._identify_resolver(state))
                baselines = [t for t in self.targets if t.is_baseline]
                others = [t for t in self.targets if not t.is_baseline]
                # Baselines first: their outcome says whether this vantage is online at all.
                baseline_obs = await self._measure_all(baselines, state)
                self.x_vantage["baseline_total"] = len(baselines)
                self.x_vantage["baseline_ok"] = sum(
                    reached(t, baseline_obs[t.id]) for t in baselines if t.id in baseline_obs
                )
                self.x_vantage["ipv6_ok"] = ipv6_reachability(list(baseline_obs.values()))
                record_tasks = [
                    group.create_task(self._finish(t, baseline_obs[t.id], state)) for t in baselines
                ]
                await self._measure_all(others, state, finish=True)
                for task in record_tasks:
                    await task
        except asyncio.CancelledError:
            self.result.interrupted = True
            self._write_interrupted()
            raise
        finally:
            restore_gc_threshold()
            pool.close()
            self.geoip.close()
            self.writer.close()
            self.result.runtime = round(time.monotonic() - started, 3)
            self.result.bytes_sent = state.counter.sent
            self.result.bytes_received = state.counter.received
            self.result.x_vantage = dict(self.x_vantage)
            self.result.vantage = self.vantage
            self.result.control_failure = self.control.failure
            self.result.address_learned = self.address_learned
        return self.result

    async def _measure_all(
        self, targets: Sequence[Target], state: RunState, *, finish: bool = False
    ) -> dict[str, Observations]:
        results: dict[str, Observations] = {}

        async def one(target: Target) -> None:
            started_at = datetime.now(UTC)
            t0 = time.monotonic()
            observations = await measure_target(target, state)
            self._timing[target.id] = (started_at, time.monotonic() - t0)
            # Measured but not yet written (it may wait for the control): an interrupt must
            # still write it, not replace it with an empty "interrupted" record.
            self._measured[target.id] = (target, observations)
            if finish:
                # Not kept in `results`: a round's memory must not grow with its targets.
                await self._finish(target, observations, state)
            else:
                results[target.id] = observations

        # Targets in flight are bounded as well as flows: each one holds its DNS sockets (two
        # per name) and its observations from the start, so a list of 10,000 names must not
        # start them all at once (open-file limit, memory). `concurrency` targets keep the
        # flow semaphore busy; a fully dropped round of up to that many still costs one timeout.
        slots = asyncio.Semaphore(max(1, state.config.concurrency))
        async with asyncio.TaskGroup() as group:
            for target in targets:
                await slots.acquire()
                group.create_task(one(target)).add_done_callback(lambda _: slots.release())
        return results

    # -- control ---------------------------------------------------------------------------

    async def _run_control(self, state: RunState) -> None:
        try:
            if self.options.control_urls:
                from probe import control  # aiohttp: imported only when a control is used

                client = control.ControlClient(
                    self.options.control_urls,
                    token=self.options.control_token,
                    timeout=control.client_timeout(state.config.timeout),
                    resolver=state.resolver,
                    source_address=state.config.source_address,
                    counter=state.counter,
                )
                reply = await client.measure(self.targets)
                self.control.observations = reply.observations
                self.control.failure = reply.failure
                self.control.reachable = reply.failure is None
                echo = reply.client
                # Behind a reverse proxy the control echoes the proxy's (private) address:
                # never take that for ours.
                if echo is not None and publicip.counts_as_public(echo.ip or "", self._own_nets):
                    self.scrubber.add(echo.ip)
                    self.scrubber.add_prefix(echo.ip)
                    self.address_learned = True
                    self._apply_network(
                        echo.ip, echo.asn, echo.cc, echo.network_name, "the control"
                    )
            if (
                not self.control.reachable
                and state.config.resolver is None
                and self.options.doh_urls
            ):
                await self._doh_fallback(state)
        except asyncio.CancelledError:
            if not self.control.reachable and self.options.control_urls:
                self.control.failure = failures.INTERRUPTED
            raise
        finally:
            self.x_vantage["control_reachable"] = self.control.reachable
            self._control_ready.set()

    @property
    def _own_nets(self) -> tuple[Any, ...]:
        import ipaddress

        return tuple(ipaddress.ip_network(n, strict=False) for n in self.options.own_nets)

    def _apply_network(
        self,
        ip: str | None,
        asn: int | None,
        cc: str | None,
        network_name: str | None,
        who: str,
        *,
        override: bool = True,
    ) -> None:
        """This probe's network from its public address (and what `who` said about it);
        `override=False` only fills in what is still unknown."""
        if not override and self.vantage.probe_asn != UNKNOWN_ASN:
            return
        if ip and not (asn and cc and network_name) and self.geoip:
            info = self.geoip.lookup(ip)
            asn, cc = asn or info.asn, cc or info.cc
            network_name = network_name or info.as_org_name
        if asn:
            self.vantage.probe_asn = f"AS{asn}"
        if cc:
            self.vantage.probe_cc = cc.upper()
            expected = self.options.expected_cc
            if expected and cc.upper() != expected.upper() and self.vantage.network_type != "vpn":
                self.vantage.network_type = "vpn"
                self.vantage.notes.append(
                    f"{who} sees this probe in {cc.upper()}, not {expected}: "
                    "a VPN or proxy seems to carry the traffic"
                )
        if network_name:
            self.vantage.probe_network_name = network_name

    def _only_private_targets(self) -> bool:
        """Every target is a loopback/private/reserved address literal (or `localhost`): a
        test or lab list, whose round sends nothing to public servers of its own accord."""
        from probe.addresses import is_public, parse_ip

        for target in self.targets:
            host = (target.hostname or "").strip("[]").lower()
            if host == "localhost":
                continue
            if parse_ip(host) is None or is_public(host):
                return False
        return True

    async def _discover_address(self, state: RunState) -> None:
        """Learn our public address without a control (publicip), to scrub it from every
        record and to know our network. Records wait for this (a few seconds at most)."""
        try:
            stun, echo = self.options.stun_servers, self.options.echo_urls
            if stun is None and echo is None and self._only_private_targets():
                stun, echo = (), ()
            stun = publicip.DEFAULT_STUN_SERVERS if stun is None else stun
            echo = publicip.DEFAULT_ECHO_URLS if echo is None else echo
            if not self.options.ip_discovery or not (stun or echo):
                return
            self.discovery = await publicip.discover(
                state.resolver,
                stun_servers=stun,
                echo_urls=echo,
                timeout=min(state.config.timeout, publicip.DEFAULT_TIMEOUT),
                allow_nets=self._own_nets,
                ca_files=state.config.ca_files,
                source_address=state.config.source_address,
                counter=state.counter,
            )
            # Every public answer is scrubbed, the majority's and any minority's: hiding an
            # address too many costs a little data, showing the volunteer's costs their safety.
            for address in self.discovery.answers:
                self.scrubber.add(address)
                self.scrubber.add_prefix(address)  # IPv6 only: the household's /64
            own = self.discovery.ipv4 or self.discovery.ipv6
            self.address_learned = self.address_learned or bool(self.discovery.answers)
            if own:
                self._apply_network(own, None, None, None, "address discovery", override=False)
        finally:
            self._address_ready.set()

    async def _doh_fallback(self, state: RunState) -> None:
        """No control answered: DNS over HTTPS to public resolvers is the DNS-only control."""
        from probe import control

        names = sorted({t.hostname for t in self.targets if t.hostname})
        self.control.doh = await control.doh_control(names, state, self.options.doh_urls)

    def _detect_vpn(self) -> None:
        tunnels = tunnel_default_routes()
        if tunnels:
            self.vantage.network_type = "vpn"
            self.vantage.notes.append(
                f"the default route goes through {', '.join(tunnels)}, which looks like a VPN: "
                "these results describe the VPN's network, not yours"
            )

    async def _identify_resolver(self, state: RunState) -> None:
        """Ask the resolver in use who it is (its egress address shows whose resolver it is);
        fall back to the configured address."""
        server = state.config.resolver or state.resolver.system_nameserver
        if server is None:
            return
        self.vantage.resolver_ip = self._nameserver = server[0]
        trace = Trace(time.monotonic(), 0)
        queries = await dns.resolve_udp(
            WHOAMI_NAME,
            "A",
            server,
            trace=trace,
            timeout=min(state.config.timeout, 5.0),
            duplicate_window=0.0,
            source_address=state.config.source_address,
            counter=state.counter,
        )
        answers = [ip for q in queries[:1] if q.failure is None for ip in q.addresses()]
        if answers:
            self.vantage.resolver_ip = self._whoami = answers[0]
        # the ASN is looked up from the whoami answer in memory; what the record may say of
        # the address itself is decided when it is written (scrub.safe_resolver_ip)
        info = self.geoip.lookup(self.vantage.resolver_ip or "")
        if info.asn:
            self.vantage.resolver_asn = f"AS{info.asn}"
            self.vantage.resolver_network_name = info.as_org_name

    # -- records ---------------------------------------------------------------------------

    def _load_fingerprints(self) -> None:
        from probe.fingerprints import FingerprintDB

        self._fingerprints = FingerprintDB.load(self.options.fingerprint_files)

    async def _finish(self, target: Target, observations: Observations, state: RunState) -> None:
        await self._control_ready.wait()
        await self._address_ready.wait()
        started_at, runtime = self._timing.pop(target.id, (self.start, 0.0))
        judged = self._record(target, observations, started_at, runtime)
        size = self._service_size.get(target.service, 1)
        if size > service_rules.MAX_TARGETS_HELD:
            self._write(target, judged.record)
        else:
            held = self._held.setdefault(target.service, [])
            held.append(_Held(target, judged))
            if len(held) >= size:
                self._release(target.service)
        self._measured.pop(target.id, None)

    def _release(self, service: str) -> None:
        """All of `service` is measured: the second analysis pass (analysis.judge_service),
        then write its records."""
        held = self._held.pop(service, [])
        judge_service(service, [h.judged for h in held], self._fingerprints)
        for h in held:
            self._write(h.target, h.judged.record)

    def _envelope(self, target: Target, started_at: datetime, runtime: float) -> dict[str, Any]:
        v = self.vantage
        annotations: dict[str, str] = {
            "platform": platform.system().lower(),
            "architecture": platform.machine(),
            "engine_name": SOFTWARE_NAME,
        }
        if v.network_type:
            annotations["network_type"] = v.network_type
        if self.geoip:
            annotations["geoip"] = self.geoip.description
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
            "test_start_time": ooni_time(self.start),
            "test_version": TEST_VERSION,
        }

    def _list_provenance(self, target: Target) -> dict[str, str] | None:
        lst = self.lists.get(target.list_name)
        return lst.provenance() if lst is not None else None

    def _record(
        self, target: Target, observations: Observations, started_at: datetime, runtime: float
    ) -> Judged:
        record = self._envelope(target, started_at, runtime)
        # bounded before anything else holds a copy: hostile redirect chains must not make one
        # target's record tens of MB
        trimmed = bound_http(observations)
        control_obs = self.control.observations.get(target.id)
        self.geoip.annotate(observations.queries)
        if control_obs is not None:
            self.geoip.annotate(control_obs.queries)
        target_wire = dict(target.definition) or {"id": target.id}
        test_keys: dict[str, Any] = {
            "target": target_wire,
            "list": self._list_provenance(target),
            **observations.to_dict(),
            "x_vantage": dict(self.x_vantage),
            "control": control_obs.to_dict() if control_obs is not None else None,
            "control_failure": self.control.failure,
        }
        if trimmed:
            test_keys["x_http_trimmed"] = {
                "responses": trimmed,
                "budget_chars": MAX_KEPT_HTTP_CHARS,
            }
        if self.discovery is not None:
            # how the public address was learned; never the address itself
            test_keys["x_ip_discovery"] = self.discovery.to_dict()
        doh = self.control.doh.get(target.hostname)
        if doh:
            test_keys["x_doh"] = doh
            record["annotations"]["control"] = "doh"
        record["test_keys"] = test_keys
        # Judged from the objects in hand, not from the record just built: `probe analyze`
        # parses the same case back from the stored record (analysis.case_from_record).
        case = Case(
            target=TargetFacts.from_wire(target_wire),
            probe=observations,
            control=control_obs,
            control_failure=self.control.failure,
            doh=tuple(DNSQuery.from_dict(q) for q in doh or ()),
            vantage=VantageFacts.from_wire(self.x_vantage),
            probe_cc=self.vantage.probe_cc,
        )
        analysis = judge(case, self._fingerprints)
        test_keys["x_endpoints"] = [e.to_dict() for e in analysis.endpoints]
        test_keys["verdict"] = analysis.verdict.to_dict()
        return Judged(record, analysis, case)

    def _interrupted_record(self, target: Target) -> dict[str, Any]:
        record = self._envelope(target, datetime.now(UTC), 0.0)
        record["annotations"]["interrupted"] = "true"
        record["test_keys"] = {
            "target": dict(target.definition) or {"id": target.id},
            "list": self._list_provenance(target),
            **Observations().to_dict(),
            "x_endpoints": [],
            "x_vantage": dict(self.x_vantage),
            "control": None,
            "control_failure": self.control.failure,
            "failure": failures.INTERRUPTED,
        }
        # The analysis knows interrupted records, so `probe analyze` reproduces this verdict.
        record["test_keys"]["verdict"] = analyze(record, self._fingerprints).verdict.to_dict()
        return record

    def _write(self, target: Target, record: dict[str, Any]) -> None:
        if target.id in self.finished:
            return
        record = self._scrub(record)
        self.writer.write(record)
        self.finished.add(target.id)
        self.result.records.append(summary_view(record))  # the full record is on disk
        if self.on_record is not None:
            self.on_record(record)

    def _scrub(self, record: dict[str, Any]) -> dict[str, Any]:
        """Keep the volunteer's address out of the record (probe/scrub.py), on the data, once,
        before it is encoded: the learned address in every spelling; when it could not be
        learned, every identifying address in free text that this record did not measure.
        `annotations.x_scrubbed` says which."""
        # Redact when no address was learned, or no IPv4 one (an IPv6-only answer leaves the
        # household's IPv4 address unknown).
        self.scrubber.redact_unknown = not self.address_learned or not self.scrubber.knows(4)
        record["resolver_ip"] = safe_resolver_ip(self._whoami, self._nameserver, self.scrubber)
        scrubbed, _ = self.scrubber.scrub_record(record)
        return scrubbed

    def _write_interrupted(self) -> None:
        """On cancellation: write what was measured (without the control if it had not answered
        yet, and without service facts for a service not fully measured), then an
        `interrupted` record for every target never measured."""
        for service in list(self._held):
            for h in self._held.pop(service):
                with contextlib.suppress(Exception):
                    self._write(h.target, h.judged.record)
        for target, observations in list(self._measured.values()):
            if target.id not in self.finished:
                started_at, runtime = self._timing.get(target.id, (self.start, 0.0))
                with contextlib.suppress(Exception):
                    self._write(
                        target, self._record(target, observations, started_at, runtime).record
                    )
        for target in self.targets:
            if target.id not in self.finished:
                with contextlib.suppress(Exception):
                    self._write(target, self._interrupted_record(target))


async def run_round(
    lists: Sequence[TargetList],
    targets: Sequence[Target],
    options: RoundOptions,
    *,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> RoundResult:
    """Measure `targets` once and write one record per target. See `Round`."""
    return await Round(lists, targets, options, on_record=on_record).run()


def parse_duration(text: str) -> float:
    """Seconds in a duration such as "90s", "30m", "6h", "1d" (a bare number is seconds)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    raw = text.strip().lower()
    unit = raw[-1:] if raw[-1:] in units else "s"
    number = raw[:-1] if raw[-1:] in units else raw
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"bad duration {text!r}: use e.g. 90s, 30m, 6h or 1d") from None
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"bad duration {text!r}: must be positive")
    return value * units[unit]


def jittered(every: float, rng: Callable[[], float]) -> float:
    """`every` ± 10%: volunteers on one schedule must not all measure in the same second
    (a burst is easy for a censor to spot and skews a shared control server)."""
    return every * (0.9 + 0.2 * rng())


async def run_rounds(
    lists: Sequence[TargetList],
    targets: Sequence[Target],
    options: RoundOptions,
    *,
    every: float | None = None,
    count: int | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    on_round: Callable[[RoundResult], None] | None = None,
    on_wait: Callable[[float], None] | None = None,
) -> int:
    """One round, or rounds every `every` seconds (with jitter, never overlapping) until
    `count` rounds are done; forever when `every` is set and `count` is None. Each round's
    result goes to `on_round` and is then dropped (a year of hourly rounds must not pile up in
    memory); returns the number of rounds run."""
    import random

    rounds = 0
    rng = random.SystemRandom().random
    while True:
        started = time.monotonic()
        result = await run_round(lists, targets, options, on_record=on_record)
        rounds += 1
        if on_round is not None:
            on_round(result)
        del result
        if every is None or (count is not None and rounds >= count):
            return rounds
        # Rounds never overlap: the next one starts one period after this one started, or
        # right away when this one took longer than the period.
        delay = max(0.0, jittered(every, rng) - (time.monotonic() - started))
        if on_wait is not None:
            on_wait(delay)
        await asyncio.sleep(delay)
