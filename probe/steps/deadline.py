"""A step's deadline: `asyncio.timeout` without its state machine, and without a loop timer each.

`with deadline(seconds):` inside a task cancels the task when the time is up and turns that
cancellation into `TimeoutError` on the way out, exactly as `async with asyncio.timeout(...)`
does (the task's cancel count tells our expiry from a cancellation from outside, so nested
deadlines and an outer cancel behave the same). It is a plain (synchronous) context manager with
no coroutine: a flow enters five of these, and asyncio.timeout costs about 20 Python calls each.

Nearly every deadline is left long before it expires, and a round's deadlines share a handful of
delays (the step timeout, the fetch budget). Deadlines of one delay on one loop expire in the
order they were set, so they wait in a queue (`_Expiries`, a "lane") behind one loop timer,
armed at the first of them that is still in force: setting or leaving a deadline costs a few
attribute writes and no timer of its own (a loop timer is about 20 Python calls: the heap's
comparisons, its handle, its cancel; docs/benchmarks.md, the CPU goal of issue 15). Each still
expires on time. Other waits use the lanes too (`Alarm`, `Call`, `schedule`: the DNS listeners).
"""

from __future__ import annotations

import asyncio
import bisect
import weakref
from collections import deque
from collections.abc import Callable
from types import TracebackType


class Alarm:
    """Something to do at a time (`_expire`, at `when` on the loop's clock), queued behind
    its lane's shared loop timer by `schedule`; `queued` is False once it expired or was
    called off (`cancel`). Both are read-only outside this module. An alarm is set once."""

    __slots__ = ("queued", "when")

    def __init__(self) -> None:
        self.queued = False
        self.when = 0.0

    def _expire(self) -> None:
        raise NotImplementedError

    def cancel(self) -> None:
        """Called off: its lane skips it from now on."""
        self.queued = False


class deadline(Alarm):
    """Cancel the current task after `delay` seconds (None: never); the cancellation leaves the
    block as `TimeoutError`."""

    __slots__ = ("_cancelling", "_delay", "_expired", "_handle", "_task")

    def __init__(self, delay: float | None) -> None:
        self.queued = False  # (Alarm's, set here: no call)
        self.when = 0.0
        self._delay = delay
        self._expired = False
        self._handle: asyncio.Handle | None = None
        self._task: asyncio.Task[object] | None = None

    def __enter__(self) -> deadline:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("deadline() must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        delay = self._delay
        if delay is not None:
            loop = task.get_loop()
            if delay <= 0:
                self._handle = loop.call_soon(self._expire)
            else:  # `schedule(loop, delay, self, loop.time() + delay)`, its calls inlined
                self.when = loop.time() + delay
                self.queued = True
                last_loop, queues = _last
                lane = queues.get(delay) if last_loop is loop else None
                (lane or _lane(loop, delay)).add(self)  # its lane: its delay
        return self

    def _expire(self) -> None:
        self.queued = False
        self._handle = None
        if self._task is not None:
            self._task.cancel()
            self._expired = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.queued = False  # its queue skips it from now on
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        task, self._task = self._task, None  # a left deadline waits in its queue: not the task
        if (
            self._expired
            and task is not None
            and task.uncancel() <= self._cancelling
            and exc_type is asyncio.CancelledError
        ):
            raise TimeoutError

    @property
    def expired(self) -> bool:
        """True once the time was up (the block was or will be cancelled)."""
        return self._expired


class Call(Alarm):
    """An alarm that calls `callback(when)`, with the time it was set for, when it expires."""

    __slots__ = ("_callback",)

    def __init__(self, callback: Callable[[float], object]) -> None:
        self.queued = False  # (Alarm's, set here: no call)
        self.when = 0.0
        self._callback = callback

    def _expire(self) -> None:
        self._callback(self.when)

    def cancel(self) -> None:
        # It may wait in its lane up to the lane's delay: it holds nothing (memory) meanwhile.
        self.queued = False
        self._callback = _nothing


def _nothing(when: float) -> None:
    pass


def schedule(loop: asyncio.AbstractEventLoop, lane: float, alarm: Alarm, when: float) -> None:
    """Queue `alarm` to expire at `when` in `lane` (alarms of one lane are best set in the
    order of their times, e.g. now plus the lane's delay; one out of order is still on time)."""
    alarm.when = when
    alarm.queued = True
    _lane(loop, lane).add(alarm)


class _Expiries:
    """The alarms of one lane on one loop, in the order they expire (for deadlines of one
    delay, the order they were set); one loop timer at the first of them that may still expire.
    An alarm called off stays in the queue, skipped, until the timer or a later alarm passes
    it."""

    __slots__ = ("_entries", "_lane", "_loop", "_queues", "_timer", "_timer_at")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, lane: float, queues: dict[float, _Expiries]
    ) -> None:
        self._loop = loop
        self._lane = lane
        self._queues = queues
        self._entries: deque[Alarm] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def add(self, alarm: Alarm) -> None:
        entries = self._entries
        while entries and not entries[0].queued:  # called off already: forget them (memory)
            entries.popleft()
        when = alarm.when
        if entries and when < entries[-1].when:  # out of order (rare): in its place
            entries.insert(bisect.bisect_right(entries, when, key=_when_of), alarm)
        else:
            entries.append(alarm)
        if self._timer is None:
            self._arm(when)
        elif when < self._timer_at:
            self._timer.cancel()
            self._arm(when)

    def _arm(self, when: float) -> None:
        self._timer = self._loop.call_at(when, self._fire)
        self._timer_at = when

    def _fire(self) -> None:
        """Expire every alarm whose time is up, then wait for the next one in force. An alarm
        may set another in this lane as it expires (a DNS wait's next time): each is taken off
        the queue before it runs, and the queue is read afresh after."""
        self._timer = None
        # The loop runs a timer up to its clock resolution early: what it was armed for is due.
        now = max(self._loop.time(), self._timer_at)
        entries = self._entries
        while entries:
            head = entries[0]
            if head.queued and head.when > now:
                break
            entries.popleft()
            if head.queued:
                head.queued = False
                head._expire()
        if entries:  # the first is in force (the rest may not be: they are skipped in turn)
            when = entries[0].when
            if self._timer is None:
                self._arm(when)
            elif when < self._timer_at:  # (armed by an alarm set as another expired)
                self._timer.cancel()
                self._arm(when)
        elif self._queues.get(self._lane) is self:  # empty: a later alarm makes a new queue
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            del self._queues[self._lane]


def _when_of(alarm: Alarm) -> float:
    return alarm.when


#: each loop's queues by lane, and the last loop asked for (nearly always the only one)
_QUEUES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, _Expiries]] = (
    weakref.WeakKeyDictionary()
)
_last: tuple[asyncio.AbstractEventLoop | None, dict[float, _Expiries]] = (None, {})


def _lane(loop: asyncio.AbstractEventLoop, lane: float) -> _Expiries:
    """The queue of `lane` on `loop`."""
    global _last
    # One tuple, read and replaced whole: a loop in another thread (uploads) never sees a
    # pairing of its loop with another loop's queues.
    last_loop, queues = _last
    if last_loop is not loop:
        queues = _QUEUES.setdefault(loop, {})
        _last = (loop, queues)
    queue = queues.get(lane)
    if queue is None:
        queue = queues[lane] = _Expiries(loop, lane, queues)
    return queue
