"""A step's deadline: `asyncio.timeout` without its state machine, and without a loop timer each.

`with deadline(seconds):` inside a task cancels the task when the time is up and turns that
cancellation into `TimeoutError` on the way out, exactly as `async with asyncio.timeout(...)`
does (the task's cancel count tells our expiry from a cancellation from outside, so nested
deadlines and an outer cancel behave the same). It is a plain (synchronous) context manager with
no coroutine: a flow enters five of these, and asyncio.timeout costs about 20 Python calls each.

Nearly every deadline is left long before it expires, and a round's deadlines share a handful of
delays (the step timeout, the fetch budget). Deadlines of one delay on one loop expire in the
order they were set, so they wait in a queue (`_Expiries`) behind one loop timer, armed at the
first of them that is still in force: setting or leaving a deadline costs a few attribute writes
and no timer of its own (a loop timer is about 20 Python calls: the heap's comparisons, its
handle, its cancel; docs/benchmarks.md, the CPU goal of issue 15). Each still expires on time.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from types import TracebackType


class deadline:
    """Cancel the current task after `delay` seconds (None: never); the cancellation leaves the
    block as `TimeoutError`."""

    __slots__ = ("_cancelling", "_delay", "_expired", "_handle", "_queued", "_task", "_when")

    def __init__(self, delay: float | None) -> None:
        self._delay = delay
        self._expired = False
        self._queued = False  # waiting in its delay's `_Expiries` (until it expires or is left)
        self._handle: asyncio.Handle | None = None
        self._task: asyncio.Task[object] | None = None
        self._when = 0.0

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
            else:
                self._when = loop.time() + delay
                self._queued = True
                _expiries(loop, delay).add(self)
        return self

    def _expire(self) -> None:
        self._queued = False
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
        self._queued = False  # its queue skips it from now on
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


class _Expiries:
    """The deadlines of one delay on one loop, in the order they were set, which is the order
    they expire in; one loop timer at the first of them that may still expire. A deadline that
    was left stays in the queue, skipped, until the timer or a later deadline passes it."""

    __slots__ = ("_delay", "_entries", "_loop", "_queues", "_timer", "_timer_at")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, delay: float, queues: dict[float, _Expiries]
    ) -> None:
        self._loop = loop
        self._delay = delay
        self._queues = queues
        self._entries: deque[deadline] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def add(self, limit: deadline) -> None:
        entries = self._entries
        while entries and not entries[0]._queued:  # left already: forget them (memory)
            entries.popleft()
        entries.append(limit)
        if self._timer is None:
            self._arm(limit._when)

    def _arm(self, when: float) -> None:
        self._timer = self._loop.call_at(when, self._fire)
        self._timer_at = when

    def _fire(self) -> None:
        """Expire every deadline whose time is up, then wait for the next one in force."""
        self._timer = None
        # The loop runs a timer up to its clock resolution early: what it was armed for is due.
        now = max(self._loop.time(), self._timer_at)
        entries = self._entries
        while entries:
            head = entries[0]
            if head._queued:
                if head._when > now:
                    self._arm(head._when)
                    return
                head._expire()
            entries.popleft()
        if self._queues.get(self._delay) is self:  # empty: a later deadline makes a new queue
            del self._queues[self._delay]


#: each loop's queues by delay, and the last loop asked for (nearly always the only one)
_QUEUES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, _Expiries]] = (
    weakref.WeakKeyDictionary()
)
_last: tuple[asyncio.AbstractEventLoop | None, dict[float, _Expiries]] = (None, {})


def _expiries(loop: asyncio.AbstractEventLoop, delay: float) -> _Expiries:
    """The queue for deadlines of `delay` seconds on `loop`."""
    global _last
    # One tuple, read and replaced whole: a loop in another thread (uploads) never sees a
    # pairing of its loop with another loop's queues.
    last_loop, queues = _last
    if last_loop is not loop:
        queues = _QUEUES.setdefault(loop, {})
        _last = (loop, queues)
    queue = queues.get(delay)
    if queue is None:
        queue = queues[delay] = _Expiries(loop, delay, queues)
    return queue
