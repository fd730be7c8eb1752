"""A step's deadline: `asyncio.timeout` without its state machine.

`with deadline(seconds):` inside a task cancels the task when the time is up and turns that
cancellation into `TimeoutError` on the way out, exactly as `async with asyncio.timeout(...)`
does (the task's cancel count tells our expiry from a cancellation from outside, so nested
deadlines and an outer cancel behave the same). It is a plain (synchronous) context manager with
one timer and no coroutine: a flow enters five of these, and asyncio.timeout costs about 20
Python calls each where this costs about 12 (docs/benchmarks.md, the CPU goal of issue 15).
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class deadline:
    """Cancel the current task after `delay` seconds (None: never); the cancellation leaves the
    block as `TimeoutError`."""

    __slots__ = ("_cancelling", "_delay", "_expired", "_handle", "_task")

    def __init__(self, delay: float | None) -> None:
        self._delay = delay
        self._expired = False
        self._handle: asyncio.Handle | None = None

    def __enter__(self) -> deadline:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("deadline() must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        if self._delay is not None:
            loop = task.get_loop()
            if self._delay <= 0:
                self._handle = loop.call_soon(self._expire)
            else:
                self._handle = loop.call_at(loop.time() + self._delay, self._expire)
        return self

    def _expire(self) -> None:
        self._task.cancel()
        self._expired = True
        self._handle = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if (
            self._expired
            and self._task.uncancel() <= self._cancelling
            and exc_type is asyncio.CancelledError
        ):
            raise TimeoutError

    @property
    def expired(self) -> bool:
        """True once the time was up (the block was or will be cancelled)."""
        return self._expired
