"""The system resolver (getaddrinfo) as a step, in a bounded thread pool of its own.

A lookup cannot be cancelled and asyncio's default executor would let slow lookups starve
everything else, so a run owns a `GetaddrinfoPool`; the time a lookup spent waiting for a worker
is recorded as `x_queue_time`."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any

from probe import failures
from probe.observations import DNSAnswer, DNSQuery, Trace
from probe.steps.dns.wire import MAX_ANSWERS_PER_REPLY

#: Default size of the getaddrinfo thread pool.
DEFAULT_GETADDRINFO_WORKERS = 8


class GetaddrinfoPool:
    """A bounded thread pool for getaddrinfo, owned by one run.

    A lookup cannot be cancelled: when a step gives up, its thread keeps going until the system
    resolver returns. Bounding the pool bounds how many such threads can exist at once; lookups
    beyond that wait for a worker, and the wait is recorded as `x_queue_time`."""

    def __init__(self, max_workers: int = DEFAULT_GETADDRINFO_WORKERS) -> None:
        if max_workers < 1:
            raise ValueError("a getaddrinfo pool needs at least one worker")
        self.max_workers = max_workers
        self.executor = ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="probe-getaddrinfo"
        )

    def close(self, *, wait: bool = False) -> None:
        """Drop queued lookups; running ones end on their own (or are awaited with `wait`)."""
        self.executor.shutdown(wait=wait, cancel_futures=True)

    def __enter__(self) -> GetaddrinfoPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class _WorkerStart:
    """Written by the worker thread when the lookup actually begins (a float store is atomic)."""

    __slots__ = ("started",)

    def __init__(self) -> None:
        self.started: float | None = None


def _getaddrinfo_in_worker(hostname: str, start: _WorkerStart) -> list[Any]:
    start.started = time.monotonic()
    # Looked up at call time so that a wrapped socket.getaddrinfo (the test guard) applies.
    return socket.getaddrinfo(hostname, None, family=socket.AF_UNSPEC, type=socket.SOCK_STREAM)


def _getaddrinfo_answers(infos: Iterable[Any]) -> list[DNSAnswer]:
    answers: list[DNSAnswer] = []
    seen: set[str] = set()
    for family, _type, _proto, _canonname, sockaddr in infos:
        ip = str(sockaddr[0])
        if ip in seen or len(answers) >= MAX_ANSWERS_PER_REPLY:
            continue
        seen.add(ip)
        if family == socket.AF_INET:
            answers.append(DNSAnswer("A", ipv4=ip))
        elif family == socket.AF_INET6:
            answers.append(DNSAnswer("AAAA", ipv6=ip))
    return answers


async def resolve_getaddrinfo(
    hostname: str, *, trace: Trace, timeout: float, pool: GetaddrinfoPool
) -> DNSQuery:
    """Resolve with the system resolver, in `pool`, within `timeout` seconds.

    On timeout the observation says generic_timeout_error and the worker finishes on its own."""
    loop = asyncio.get_running_loop()
    t0 = trace.now()
    submitted = time.monotonic()
    start = _WorkerStart()
    answers: list[DNSAnswer] = []
    failure: str | None = None
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.run_in_executor(
                pool.executor, _getaddrinfo_in_worker, hostname, start
            )
        answers = _getaddrinfo_answers(infos)
        if not answers:
            failure = failures.DNS_NO_ANSWER
    except UnicodeError:  # Python's IDNA encoding refused the name before any lookup
        failure = failures.DNS_INVALID_HOSTNAME
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
        # Not our cancellation: the pool was closed while this lookup still waited in its queue.
        failure = failures.INTERRUPTED
    except Exception as exc:
        failure = failures.classify(exc)
    started = start.started
    queue_time = (started if started is not None else time.monotonic()) - submitted
    return DNSQuery(
        hostname=hostname,
        query_type="ANY",
        engine="getaddrinfo",
        resolver_address="",
        answers=answers,
        failure=failure,
        t0=t0,
        t=trace.now(),
        transaction_id=trace.transaction_id,
        x_queue_time=round(max(queue_time, 0.0), 6),
    )
