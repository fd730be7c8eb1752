"""What a round's flows share: the frozen `MeasureConfig` and the mutable `RunState` (the flow
semaphore, the endpoint locks, the byte counter, transaction ids), and the bounds they follow.
The state holds nothing per target or per address once its flows are done."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from probe.steps import dns
from probe.steps.tcp import ByteCounter

DEFAULT_TIMEOUT = 10.0
DEFAULT_BODY_CAP = 64 * 1024
#: Enough flows in flight that a round where everything is dropped costs about one timeout,
#: up to 1,000 endpoints (bench/sweep_blackhole.py). Each flow holds one socket and each target
#: in flight two DNS sockets; the runner raises the open-file limit to 4 x this + 256.
DEFAULT_CONCURRENCY = 1024
MAX_ADDRESSES_PER_FAMILY = 4
#: An http(s) flow's socket receive buffer: an eighth of the body cap, at least 8 KiB. A server
#: pushes a page ahead of what we read, up to our receive window, and the flow closes at the
#: cap with that unread: with the kernel's autotuning, one round against loopback stand-ins of
#: 400 KB pages put 2.7-4.4 MB on the wire for 1.12 MB read (bench/data_usage.py). Linux doubles
#: SO_RCVBUF for its bookkeeping and the window is about the value set: 16 KiB gave 1.43-1.48
#: MB; body_cap + 32 KiB gave 2.8-3.3 MB. Why 8 KiB and not 16 (docs/benchmarks.md, "Data
#: usage"): the kernel takes in about 1.25x the buffer while the reader is busy, whatever the
#: window clamp (probe.steps.receive_window) says later, so with 16 KiB it held a whole TLS
#: record and part of the next before the reader could tell that the first one was enough
#: (gzip pages: 43-61 kB each on the wire; with 8 KiB 39-47 kB). The price: about 8 KiB per
#: round trip, so a gzip page at the default cap takes ~5 round trips instead of ~3.
RECEIVE_BUFFER_SHARE = 8
MIN_RECEIVE_BUFFER = 8 * 1024
#: Above this the buffer is left to the kernel's autotuning: a fixed buffer caps throughput at
#: about one buffer per round trip, and a large body cap asks for most of the page anyway.
MAX_BOUNDED_RECEIVE_BUFFER = 256 * 1024


@dataclass(frozen=True, slots=True)
class MeasureConfig:
    """Everything a flow needs to know, frozen for the round."""

    timeout: float = DEFAULT_TIMEOUT
    resolver: tuple[str, int] | None = None  # --resolver: the only DNS server used
    ca_files: tuple[str, ...] = ()  # --ca-file, added to the system store
    body_cap: int = DEFAULT_BODY_CAP
    source_address: str | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    max_addresses_per_family: int = MAX_ADDRESSES_PER_FAMILY
    max_redirects: int = 10
    #: the control's guard: True refuses to measure the address (private/reserved ranges)
    refuse_address: Callable[[str], bool] | None = None
    #: after a failed TLS handshake, the SNI swap (sni_swap.py): this benign server name to
    #: the same address; None: no swap (the control, and callers that did not ask)
    neutral_sni: str | None = None
    #: a TLS server that accepts any name (`probe control serve --neutral-tls-port`): the
    #: target's name is tried there too; None: none
    neutral_server: tuple[str, int] | None = None
    #: seconds to keep re-testing a known-good flow after a trigger (residual blocking);
    #: 0: off
    residual_window: float = 0.0


@dataclass(slots=True)
class RunState:
    """Shared, mutable state of one round (or of one control request)."""

    config: MeasureConfig
    resolver: dns.Resolver
    counter: ByteCounter = field(default_factory=ByteCounter)
    flows: asyncio.Semaphore = field(init=False)
    #: the locks of the endpoints a flow holds or waits for, with how many do (EndpointLock)
    _endpoint_locks: dict[tuple[str, int], _Entry] = field(default_factory=dict)
    _transaction_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.flows = asyncio.Semaphore(max(1, self.config.concurrency))

    def next_transaction_id(self) -> int:
        return next(self._transaction_ids)

    def endpoint_lock(self, ip: str, port: int) -> EndpointLock:
        """`async with state.endpoint_lock(ip, port):` one flow at a time to (ip, port)."""
        return EndpointLock(self._endpoint_locks, (ip, port))

    def endpoints_locked(self) -> int:
        """How many endpoints have a lock now (held or waited for): none between flows."""
        return len(self._endpoint_locks)


class _Entry:
    """An endpoint's place in the table: how many flows hold or wait for it, and the lock they
    queue on, made only when a second flow comes while the first holds the endpoint (nearly
    every endpoint has one flow at a time, which then costs no lock)."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock: asyncio.Lock | None = None
        self.users = 1


class EndpointLock:
    """One flow's hold on an endpoint: never two flows to the same (ip, port) at once. The
    table's entry exists while a flow holds or waits for it and goes with the last one, so a
    round over 100,000 addresses does not keep 100,000 locks."""

    __slots__ = ("_entry", "_key", "_table")

    def __init__(self, table: dict[tuple[str, int], _Entry], key: tuple[str, int]) -> None:
        self._table = table
        self._key = key
        self._entry: _Entry | None = None

    async def __aenter__(self) -> None:
        entry = self._table.get(self._key)
        if entry is None:  # nobody holds it: ours at once
            self._entry = self._table[self._key] = _Entry()
            return
        entry.users += 1
        try:
            if entry.lock is None:
                # The holder took the endpoint without a lock: the new lock is taken in its
                # name (at once, no wait), and its release hands the endpoint on.
                entry.lock = asyncio.Lock()
                await entry.lock.acquire()
            await entry.lock.acquire()
        except BaseException:  # cancelled while waiting: not a user any more
            self._leave(entry)
            raise
        self._entry = entry

    async def __aexit__(self, *exc_info: object) -> None:
        entry, self._entry = self._entry, None
        assert entry is not None
        if entry.lock is not None:
            entry.lock.release()
        self._leave(entry)

    def _leave(self, entry: _Entry) -> None:
        entry.users -= 1
        if entry.users == 0 and self._table.get(self._key) is entry:
            del self._table[self._key]


def http_receive_buffer(body_cap: int) -> int | None:
    """The receive buffer of an http(s) flow's socket (see RECEIVE_BUFFER_SHARE); None: the
    kernel's own."""
    size = max(body_cap // RECEIVE_BUFFER_SHARE, MIN_RECEIVE_BUFFER)
    return size if size <= MAX_BOUNDED_RECEIVE_BUFFER else None
