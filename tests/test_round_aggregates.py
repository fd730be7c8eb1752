"""A round keeps aggregates, not one entry per target: the summary's per-service tally gives the
same rows as counting every record, its sentences are bounded, the endpoint locks go when their
flows are done (no lock per address kept for the whole round), and a target exists as a run
only between its start and its record."""

from __future__ import annotations

import asyncio
import datetime
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from probe.analysis.service_rules import TargetVerdict, usable_and_interfered
from probe.cli.summary import service_rows
from probe.round import runner as runner_module
from probe.round.measure import MeasureConfig, RunState
from probe.round.records import MAX_REASONS, RecordTally
from probe.round.runner import Round, RoundOptions, RoundResult
from probe.steps import dns
from probe.targets import Target, TargetList
from tests.loopback_world import read_records

STATUSES = ("ok", "blocked", "down", "inconclusive")


def _record(rng: random.Random, n: int) -> dict[str, Any]:
    status = rng.choice(STATUSES)
    verdict: dict[str, Any] = {
        "status": status,
        "reason": f"reason {n}",
        "blocking": rng.choice(("dns", "tcp_ip", "tls", None)) if status == "blocked" else None,
        "fingerprints": rng.choice(([], ["fp.a"], ["fp.b", "fp.a"])),
    }
    return {
        "input": f"t/{n}",
        "test_name": rng.choice(("telegram", "whatsapp", "signal", "baseline")),
        "test_keys": {
            "target": {
                "check": rng.choice(("mtproto", "tcp", "https", "http", "tls", "dns")),
                "tags": rng.choice(([], ["app:media"], ["app:chat", "app:media"], ["x"], ["app:"])),
            },
            "verdict": verdict,
        },
    }


def _row_from_every_record(service: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary row counted the plain way, over every record of the service."""
    verdicts = [r["test_keys"]["verdict"] for r in records]
    checks = [r["test_keys"]["target"]["check"] for r in records]
    statuses = Counter(v["status"] for v in verdicts)
    usable, interfered = usable_and_interfered(
        [
            TargetVerdict(r["input"], c, tuple(r["test_keys"]["target"]["tags"]), v["status"])
            for r, c, v in zip(records, checks, verdicts, strict=True)
        ]
    )
    dcs = [v for v, c in zip(verdicts, checks, strict=True) if c == "mtproto"]
    web = [v for v, c in zip(verdicts, checks, strict=True) if c in ("http", "https")]
    status = next((s for s in ("blocked", "ok", "down") if statuses[s]), "inconclusive")
    blocked_methods = Counter(v["blocking"] for v in verdicts if v["status"] == "blocked")
    return {
        "service": service,
        "status": status,
        "usable": usable,
        "interfered": interfered,
        "targets": len(records),
        "counts": {s: statuses[s] for s in ("blocked", "down", "inconclusive", "ok")},
        "methods": [m for m, _ in blocked_methods.most_common() if m],
        "fingerprints": sorted({f for v in verdicts for f in v["fingerprints"]}),
        "data_centres": (
            {"reachable": sum(v["status"] == "ok" for v in dcs), "total": len(dcs)} if dcs else None
        ),
        "web": (
            {"reachable": sum(v["status"] == "ok" for v in web), "total": len(web)} if web else None
        ),
        "reasons": [
            f"{r['input']}: {v['reason']}"
            for r, v in zip(records, verdicts, strict=True)
            if v["status"] != "ok"
        ][:MAX_REASONS],
    }


@pytest.mark.parametrize("seed", range(40))
def test_the_tally_gives_the_rows_of_counting_every_record(seed: int) -> None:
    rng = random.Random(seed)
    records = [_record(rng, n) for n in range(rng.randint(1, 80))]
    result = RoundResult("r", datetime.datetime.now(datetime.UTC), "x.jsonl")
    for record in records:
        result.records.add(record)
    by_service: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_service.setdefault(record["test_name"], []).append(record)
    expected = [
        _row_from_every_record(s, by_service[s])
        for s in sorted(by_service, key=lambda s: (s == "baseline", s))
    ]
    assert service_rows(result) == expected
    assert len(result.records) == len(records)


def test_the_tally_keeps_only_the_first_sentences() -> None:
    tally = RecordTally()
    for n in range(5_000):
        tally.add(
            {
                "input": f"t/{n}",
                "test_name": "t",
                "test_keys": {
                    "target": {"check": "tcp", "tags": [f"app:kind{n % 3}"]},
                    "verdict": {"status": "blocked", "blocking": "tcp_ip", "reason": "dropped"},
                },
            }
        )
    service = tally.services["t"]
    assert len(tally) == service.targets == 5_000
    assert service.reasons == [f"t/{n}: dropped" for n in range(MAX_REASONS)]
    # a set of statuses per kind, not a list per target
    assert service.tagged == {f"kind{k}": {"blocked"} for k in range(3)}
    assert service.usable_and_interfered() == (False, True)


# --- the endpoint locks ---------------------------------------------------------------------


def _state() -> RunState:
    config = MeasureConfig(timeout=1.0, resolver=("127.0.0.1", 9))
    return RunState(config=config, resolver=dns.Resolver(config.resolver, pool=None))


async def test_one_flow_at_a_time_per_endpoint_and_the_lock_goes_with_the_last() -> None:
    state = _state()
    inside: list[int] = []
    peak = 0

    async def flow(ip: str) -> None:
        nonlocal peak
        async with state.endpoint_lock(ip, 443):
            inside.append(1)
            peak = max(peak, len(inside))
            await asyncio.sleep(0.01)
            inside.pop()

    async with asyncio.TaskGroup() as group:
        for _ in range(5):
            group.create_task(flow("127.0.0.1"))
        await asyncio.sleep(0)
        assert state.endpoints_locked() == 1  # one entry for the five flows
    assert peak == 1
    assert state.endpoints_locked() == 0


async def test_a_waiter_cancelled_leaves_no_lock_behind() -> None:
    state = _state()
    holding = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with state.endpoint_lock("127.0.0.1", 443):
            holding.set()
            await release.wait()

    async def waiter() -> None:
        async with state.endpoint_lock("127.0.0.1", 443):
            raise AssertionError("never reached: cancelled while waiting")

    first = asyncio.create_task(holder())
    await holding.wait()
    second = asyncio.create_task(waiter())
    await asyncio.sleep(0)
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    assert state.endpoints_locked() == 1  # still held by the first
    release.set()
    await first
    assert state.endpoints_locked() == 0
    # and the endpoint can be taken again
    async with state.endpoint_lock("127.0.0.1", 443):
        assert state.endpoints_locked() == 1
    assert state.endpoints_locked() == 0


# --- whole rounds ---------------------------------------------------------------------------


def _target(n: int, check: str, **where: Any) -> Target:
    definition = {"id": f"t/a{n}", "service": "t", "check": check, **where}
    if "ports" in where:
        where = dict(where, ports=tuple(where["ports"]))
    return Target(
        id=f"t/a{n}", service="t", check=check, list_name="l", definition=definition, **where
    )


async def test_a_round_over_many_addresses_keeps_no_lock_and_no_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """300 tcp targets, each on its own loopback address (nothing listens: refused at once)."""
    monkeypatch.setenv("PROBE_DATA_DIR", str(tmp_path / "no-data"))
    states: list[RunState] = []

    def capture(**kwargs: Any) -> RunState:
        states.append(RunState(**kwargs))
        return states[-1]

    monkeypatch.setattr(runner_module, "RunState", capture)
    targets = [
        _target(n, "tcp", host=f"127.0.{10 + n // 250}.{1 + n % 250}", ports=[9])
        for n in range(300)
    ]
    lst = TargetList(
        name="l",
        updated=datetime.date(2026, 1, 1),
        path="l.toml",
        sha256="0" * 64,
        targets=tuple(targets),
    )
    options = RoundOptions(
        measure=MeasureConfig(timeout=1.0, resolver=("127.0.0.1", 9)),
        out_dir=str(tmp_path / "results"),
        ip_discovery=False,
        doh_urls=(),
    )
    round_ = Round([lst], targets, options)
    result = await round_.run()
    [state] = states
    assert state.endpoints_locked() == 0
    assert round_.runs == {} and round_.started == len(targets)
    assert len(result.records) == len(targets)
    [tally] = result.records.services.values()
    assert tally.targets == 300 and len(tally.reasons) == MAX_REASONS
    assert {r["input"] for r in read_records(tmp_path / "results")} == {t.id for t in targets}


async def test_an_interrupt_writes_every_target_also_those_never_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two flows at a time against servers that never answer: cancelled while the first two
    wait, the round still writes one record per target (the eight never started included)."""
    monkeypatch.setenv("PROBE_DATA_DIR", str(tmp_path / "no-data"))
    connected = asyncio.Event()
    peers: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer)
        if len(peers) >= 2:
            connected.set()
        await reader.read()  # until the probe goes away

    servers = [await asyncio.start_server(hold, "127.0.0.1", 0) for _ in range(10)]
    targets = [
        _target(n, "http", url=f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/")
        for n, server in enumerate(servers)
    ]
    options = RoundOptions(
        measure=MeasureConfig(timeout=30.0, resolver=("127.0.0.1", 9), concurrency=2),
        out_dir=str(tmp_path / "results"),
        ip_discovery=False,
        doh_urls=(),
    )
    round_ = Round([], targets, options)
    try:
        task = asyncio.create_task(round_.run())
        await asyncio.wait_for(connected.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        for server in servers:
            server.close()
        for writer in peers:
            writer.close()
    records = read_records(tmp_path / "results")
    assert sorted(r["input"] for r in records) == sorted(t.id for t in targets)
    assert all(r["annotations"].get("interrupted") == "true" for r in records)
    assert round_.started == 2 and round_.runs == {}
    assert round_.result.interrupted and len(round_.result.records) == len(targets)
