"""DNS over UDP: the engine that sees injection best.

An on-path injector answers before the real server does, so after the first valid reply we keep
listening for a short window and record every further valid reply as a duplicate
(`x_duplicate = True`), in arrival order. The step is three parts: `_send_query` (connect and
send within the deadline), `_Listener` (one query's socket: which datagrams are read, for how
long, by a reader callback; `_listen_all` waits for the queries of one name together) and
`_Replies` (the duplicate-window collector: what each datagram is, and the observations)."""

from __future__ import annotations

import asyncio
import socket

import dns.flags

from probe import failures
from probe.observations import DNSQuery, Trace, format_address
from probe.steps.deadline import Call, schedule
from probe.steps.dns.tcp import resolve_tcp
from probe.steps.dns.wire import (
    MAX_DNS_MESSAGE,
    Query,
    _check_query_type,
    _make_query,
    _parse_reply,
    _QueryRecorder,
    _WrongQueryId,
)
from probe.steps.tcp import ByteCounter
from probe.steps.udp import udp_socket

#: Datagrams read for one UDP query before we stop listening (a flood must not keep us busy).
MAX_DATAGRAMS_PER_QUERY = 64


async def resolve_udp(
    hostname: str,
    query_type: str,
    server: tuple[str, int],
    *,
    trace: Trace,
    timeout: float,
    duplicate_window: float = 0.3,
    source_address: str | None = None,
    counter: ByteCounter | None = None,
) -> list[DNSQuery]:
    """Ask `server` over UDP; return the first valid reply and every duplicate that follows.

    After the first valid reply we keep listening `duplicate_window` seconds (never past the
    deadline): an injected answer and the genuine one are then both recorded, in arrival order,
    the later ones with `x_duplicate = True`. Replies with another query id or that do not parse
    are skipped while we wait; when nothing valid came, the failure says which of them we saw.
    A truncated first reply is followed by the same query over TCP (appended, engine "tcp").
    The whole exchange, TCP retry included, ends within `timeout` seconds."""
    (queries,) = await resolve_udp_types(
        hostname,
        (query_type,),
        server,
        trace=trace,
        timeout=timeout,
        duplicate_window=duplicate_window,
        source_address=source_address,
        counter=counter,
    )
    return queries


async def resolve_udp_types(
    hostname: str,
    query_types: tuple[str, ...],
    server: tuple[str, int],
    *,
    trace: Trace,
    timeout: float,
    duplicate_window: float = 0.3,
    source_address: str | None = None,
    counter: ByteCounter | None = None,
) -> list[list[DNSQuery]]:
    """`resolve_udp` for several query types of one name at once (A and AAAA), each on its own
    socket, in one coroutine: the sockets' readers feed the queries' collectors and one timer
    ends the listening, without a task, a timeout context or a cancelled read per query (the
    same datagrams are read and judged as by one `resolve_udp` per type)."""
    for query_type in query_types:
        _check_query_type(query_type)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    resolver_address = format_address(server[0], server[1])
    listeners = [
        _Listener(
            loop,
            _QueryRecorder(hostname, query_type, "udp", resolver_address, trace),
            deadline,
            duplicate_window,
            counter,
        )
        for query_type in query_types
    ]
    try:
        for listener in listeners:
            await listener.start(hostname, server, source_address)
        await _listen_all(loop, listeners, timeout)
    finally:
        for listener in listeners:
            listener.close()
    results = [listener.result() for listener in listeners]
    retries = [index for index, listener in enumerate(listeners) if listener.truncated()]
    if retries:
        answers = await asyncio.gather(
            *(
                resolve_tcp(
                    hostname,
                    query_types[index],
                    server,
                    trace=trace,
                    timeout=max(deadline - loop.time(), 0.0),
                    source_address=source_address,
                    counter=counter,
                )
                for index in retries
            )
        )
        for index, answer in zip(retries, answers, strict=True):
            results[index].append(answer)
    return results


async def _listen_all(
    loop: asyncio.AbstractEventLoop, listeners: list[_Listener], timeout: float
) -> None:
    """Wait until every listener is done: its socket's reader ends it (a truncated first
    reply, an error, the datagram cap) or its listening time runs out (the deadline, or the
    duplicate window after the first valid reply)."""
    listening = _Listening(loop, listeners, timeout)
    try:
        listening.update()
        await listening.done
    finally:
        listening.stop()


class _Listening:
    """The listeners of one name, kept by their readers and one alarm (in the shared lanes of
    probe.steps.deadline: the step timeout's, then the window's) at the first time one of them
    runs out; `done` once all are done. The task waits once: a first reply moves the alarm."""

    __slots__ = ("alarm", "done", "listeners", "loop", "timeout")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, listeners: list[_Listener], timeout: float
    ) -> None:
        self.loop = loop
        self.listeners = listeners
        self.timeout = timeout
        self.done: asyncio.Future[None] = loop.create_future()
        self.alarm: Call | None = None
        for listener in listeners:
            listener.listening = self

    def update(self, due: float = 0.0) -> None:
        """Finish the listeners whose time is up (by `due` at least: the time an alarm was set
        for); set `done` when none is left, else set the alarm for the next to run out."""
        now = max(self.loop.time(), due)
        first: _Listener | None = None
        for listener in self.listeners:
            if listener.done:
                continue
            if listener.until <= now:
                listener.finish()
            elif first is None or listener.until < first.until:
                first = listener
        alarm = self.alarm
        if first is None:
            self.stop()
            _set_done(self.done)
        elif alarm is None or not alarm.queued or alarm.when != first.until:
            if alarm is not None:
                alarm.cancel()
            self.alarm = Call(self.update)
            lane = self.timeout if first.until >= first.deadline else first.window
            schedule(self.loop, lane, self.alarm, first.until)

    def stop(self) -> None:
        if self.alarm is not None:
            self.alarm.cancel()
            self.alarm = None
        for listener in self.listeners:
            listener.listening = None


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Listener:
    """One query on its own connected socket: sent, then its datagrams read by the socket's
    reader callback into `_Replies` until `until` (the deadline, then the end of the duplicate
    window) or until it is done."""

    __slots__ = (
        "counter",
        "datagrams",
        "deadline",
        "done",
        "failure",
        "listening",
        "loop",
        "recorder",
        "replies",
        "sock",
        "until",
        "window",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        recorder: _QueryRecorder,
        deadline: float,
        window: float,
        counter: ByteCounter | None,
    ) -> None:
        self.loop = loop
        self.recorder = recorder
        self.deadline = self.until = deadline
        self.window = window
        self.counter = counter
        self.replies: _Replies | None = None
        self.sock: socket.socket | None = None
        self.failure: str | None = None
        self.done = False
        self.datagrams = 0
        self.listening: _Listening | None = None  # while `_listen_all` waits

    async def start(
        self, hostname: str, server: tuple[str, int], source_address: str | None
    ) -> None:
        """Make the query, send it and start reading; a failure ends the listener."""
        try:
            query = _make_query(hostname, self.recorder.query_type)
            self.replies = _Replies(query, self.recorder)
            self.sock = udp_socket(server[0], source_address)
            await _send_query(self.loop, self.sock, server, query, self.deadline, self.counter)
            self.loop.add_reader(self.sock.fileno(), self._readable)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failure = failures.classify(exc)
            self.finish()

    def _readable(self) -> None:
        """The reader callback: every datagram waiting, until done (never raises)."""
        assert self.sock is not None and self.replies is not None
        changed = False
        while not self.done:
            try:
                data = self.sock.recv(MAX_DNS_MESSAGE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if not self.replies.valid:  # an ICMP error after the answer ends the window
                    self.failure = failures.classify(exc)
                self.finish()
                changed = True
                break
            self.datagrams += 1
            if self.counter is not None:
                self.counter.received += len(data)
            try:
                first = self.replies.add(data)
            except Exception as exc:  # a bug, not the network: a failure, not a traceback
                self.failure = failures.classify(exc)
                self.finish()
                changed = True
                break
            if first:  # the first valid reply: the duplicate window opens
                changed = True
                if self.replies.truncated:
                    self.finish()
                    break
                self.until = min(self.deadline, self.loop.time() + self.window)
            if self.datagrams >= MAX_DATAGRAMS_PER_QUERY:
                self.finish()
                changed = True
        if changed and self.listening is not None:
            self.listening.update()

    def finish(self) -> None:
        """Stop reading (the socket stays open until `close`)."""
        if self.done:
            return
        self.done = True
        if self.sock is not None and self.replies is not None:
            self.loop.remove_reader(self.sock.fileno())

    def close(self) -> None:
        self.finish()
        if self.sock is not None:
            self.sock.close()

    def truncated(self) -> bool:
        return self.replies is not None and bool(self.replies.valid) and self.replies.truncated

    def result(self) -> list[DNSQuery]:
        if self.replies is None:  # no query to send: the name cannot be carried by DNS
            return [self.recorder.no_reply(self.failure, None)]
        if not self.replies.valid:
            return [self.replies.no_reply(self.failure)]
        return self.replies.valid


async def _send_query(
    loop: asyncio.AbstractEventLoop,
    sock: socket.socket,
    server: tuple[str, int],
    query: Query,
    deadline: float,
    counter: ByteCounter | None,
) -> None:
    # A connected socket: the kernel drops datagrams from any other source, and an ICMP
    # port-unreachable surfaces as connection_refused instead of a silent timeout. A UDP
    # connect only sets the peer address and never blocks, so it is a plain call (through
    # the event loop it cost a future and a loop iteration per query); an IPv6 zone
    # ("fe80::1%eth0") needs the loop's address resolution to become a scope id. The send
    # of one datagram does not block either unless the socket's buffer is full: only then
    # through the event loop.
    wire = query.to_wire()
    if loop.time() >= deadline:
        raise TimeoutError
    if "%" in server[0]:
        async with asyncio.timeout_at(deadline):
            await loop.sock_connect(sock, server)
    else:
        sock.connect(server)
    try:
        sock.send(wire)
    except (BlockingIOError, InterruptedError):
        async with asyncio.timeout_at(deadline):
            await loop.sock_sendall(sock, wire)
    if counter is not None:
        counter.sent += len(wire)


class _Replies:
    """The duplicate-window collector: every valid reply as an observation, in arrival order,
    and what the rejected datagrams were (the failure when no valid reply comes)."""

    __slots__ = (
        "first_rejected",
        "query",
        "recorder",
        "saw_malformed",
        "saw_wrong_id",
        "truncated",
        "valid",
    )

    def __init__(self, query: Query, recorder: _QueryRecorder) -> None:
        self.query = query
        self.recorder = recorder
        self.valid: list[DNSQuery] = []
        self.first_rejected: bytes | None = None  # kept as evidence when no valid reply came
        self.saw_wrong_id = False
        self.saw_malformed = False
        self.truncated = False

    def add(self, data: bytes) -> bool:
        """Take one datagram; True when it is the first valid reply."""
        try:
            message = _parse_reply(self.query, data)
        except _WrongQueryId:
            self.saw_wrong_id = True
            self.first_rejected = self.first_rejected or data
            return False
        except failures.ProbeFailure:
            self.saw_malformed = True
            self.first_rejected = self.first_rejected or data
            return False
        first = not self.valid
        self.valid.append(self.recorder.reply(message, data, duplicate=not first))
        if first and message.flags & dns.flags.TC:
            self.truncated = True
        return first

    def no_reply(self, failure: str | None) -> DNSQuery:
        """The one observation when no valid reply came: `failure` (the step's error) if any,
        else what the rejected datagrams were, else a timeout."""
        if failure is None:
            if self.saw_wrong_id:
                failure = failures.DNS_WRONG_QUERY_ID
            elif self.saw_malformed:
                failure = failures.DNS_SERVER_MISBEHAVING
            else:
                failure = failures.GENERIC_TIMEOUT
        return self.recorder.no_reply(failure, self.first_rejected)
