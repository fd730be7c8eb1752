"""probe.steps.deadline behaves as asyncio.timeout: expiry is TimeoutError, an outer cancel
stays a cancel, nested deadlines expire at the right level, a finished block is untouched."""

from __future__ import annotations

import asyncio

import pytest

from probe.steps.deadline import Alarm, Call, deadline, schedule


def test_expiry_is_timeout_error() -> None:
    async def main() -> bool:
        limit = deadline(0.01)
        with pytest.raises(TimeoutError), limit:
            await asyncio.sleep(5)
        return limit.expired

    assert asyncio.run(main())


def test_zero_or_negative_expires_at_the_first_wait() -> None:
    async def main() -> None:
        for delay in (0, -1):
            with pytest.raises(TimeoutError), deadline(delay):
                await asyncio.sleep(5)

    asyncio.run(main())


def test_none_and_finished_blocks_are_untouched() -> None:
    async def main() -> int:
        with deadline(None):
            await asyncio.sleep(0)
        limit = deadline(5)
        with limit:
            await asyncio.sleep(0)
        assert not limit.expired
        await asyncio.sleep(0.02)  # the timer was cancelled: no late cancel
        task = asyncio.current_task()
        assert task is not None
        return task.cancelling()

    assert asyncio.run(main()) == 0


def test_outer_cancel_stays_a_cancel() -> None:
    async def victim(started: asyncio.Event) -> None:
        with deadline(5):
            started.set()
            await asyncio.sleep(5)

    async def main() -> None:
        started = asyncio.Event()
        task = asyncio.create_task(victim(started))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_nested_inner_expiry_caught_inside_outer() -> None:
    async def main() -> str:
        with deadline(5) as outer:
            with pytest.raises(TimeoutError), deadline(0.01):
                await asyncio.sleep(5)
            await asyncio.sleep(0)
        assert not outer.expired
        return "ok"

    assert asyncio.run(main()) == "ok"


def test_nested_outer_expiry_passes_the_inner_one() -> None:
    async def main() -> None:
        inner = deadline(5)
        with pytest.raises(TimeoutError), deadline(0.01):
            with inner:
                await asyncio.sleep(5)
        assert not inner.expired

    asyncio.run(main())


def test_outside_a_task_is_an_error() -> None:
    with pytest.raises(RuntimeError), deadline(1):
        pass


def test_deadlines_of_one_delay_each_expire_on_time() -> None:
    """Deadlines of the same delay share one loop timer: one left early must not delay or
    hasten the others, and each still expires at its own time."""

    async def sleeper(start: float, hold: float) -> tuple[bool, float]:
        loop = asyncio.get_running_loop()
        limit = deadline(0.05)
        try:
            with limit:
                await asyncio.sleep(hold)
        except TimeoutError:
            pass
        return limit.expired, loop.time() - start

    async def main() -> list[tuple[bool, float]]:
        loop = asyncio.get_running_loop()
        tasks = []
        for hold in (0.0, 5, 0.01, 5):
            tasks.append(asyncio.create_task(sleeper(loop.time(), hold)))
            await asyncio.sleep(0.02)
        return list(await asyncio.gather(*tasks))

    results = asyncio.run(main())
    assert [expired for expired, _ in results] == [False, True, False, True]
    for expired, elapsed in results:
        if expired:
            assert 0.045 <= elapsed < 0.5


def test_a_queue_drains_and_a_new_loop_starts_afresh() -> None:
    async def main() -> bool:
        with pytest.raises(TimeoutError), deadline(0.01):
            await asyncio.sleep(5)
        with deadline(0.01):
            pass
        await asyncio.sleep(0.03)  # the shared timer passes the left deadline and goes
        with pytest.raises(TimeoutError), deadline(0.01):
            await asyncio.sleep(5)
        return True

    assert asyncio.run(main())
    assert asyncio.run(main())  # another loop: its own queues and timer


def test_a_left_deadline_does_not_hold_its_task() -> None:
    async def main() -> None:
        limit = deadline(60)
        with limit:
            pass
        assert limit._task is None

    asyncio.run(main())


def test_alarms_set_out_of_order_still_expire_in_time_order() -> None:
    class Note(Alarm):
        __slots__ = ("fired", "name")

        def __init__(self, name: str, fired: list[str]) -> None:
            super().__init__()
            self.name, self.fired = name, fired

        def _expire(self) -> None:
            self.fired.append(self.name)

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        fired: list[str] = []
        now = loop.time()
        for name, delay in (("b", 0.5), ("c", 0.6), ("a", 0.02), ("off", 0.03)):
            note = Note(name, fired)
            schedule(loop, 7.0, note, now + delay)
            if name == "off":
                note.cancel()
        await asyncio.sleep(0.3)
        # the earliest, set last, re-armed the lane's timer: not held until the first one's
        assert fired == ["a"]
        await asyncio.sleep(0.4)
        return fired

    assert asyncio.run(main()) == ["a", "b", "c"]


def test_an_alarm_set_in_its_lane_as_another_expires_is_kept() -> None:
    """An expiring alarm that sets the next one in the same lane (as a DNS wait does) must
    not lose it or any other alarm of the lane."""

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        fired: list[str] = []
        done = loop.create_future()

        def second(when: float) -> None:
            fired.append("second")

        def first(when: float) -> None:
            fired.append("first")
            schedule(loop, 3.0, Call(second), when)  # due at once: the same time
            schedule(loop, 3.0, Call(lambda when: done.set_result(None)), when + 0.02)

        now = loop.time()
        schedule(loop, 3.0, Call(first), now + 0.01)
        schedule(loop, 3.0, Call(lambda when: fired.append("third")), now + 0.015)
        await asyncio.wait_for(done, 2)
        return fired

    assert asyncio.run(main()) == ["first", "second", "third"]


def test_a_called_off_alarm_holds_nothing() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        held = object()
        alarm = Call(lambda when: print(held))
        schedule(loop, 60.0, alarm, loop.time() + 60)
        alarm.cancel()
        assert alarm._callback.__closure__ is None  # the lambda and what it held are gone

    asyncio.run(main())
