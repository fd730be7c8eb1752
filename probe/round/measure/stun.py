"""STUN for a target with `stun_port` (a `dns` target naming a messenger's call server): one
Binding transaction per resolved address, each with its own transaction id and bounded by the
round's flow semaphore (docs/verdicts.md, "STUN"). The control runs the same code, and its
guard refuses private destinations here as for TCP."""

from __future__ import annotations

import asyncio

from probe import failures
from probe.observations import Observations, StunCheck, Trace
from probe.round.measure.config import RunState
from probe.targets import Target


async def measure_stun(
    target: Target, addresses: list[str], state: RunState, zero: float
) -> Observations:
    """The target's STUN transactions (`x_stun`), one per address, in parallel; times count
    from the target's `zero`."""
    port = target.stun_port
    observations = Observations()
    if port is None or not addresses:
        return observations
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(_one(address, port, state, zero)) for address in addresses]
    observations.stun.extend(task.result() for task in tasks)
    return observations


async def _one(address: str, port: int, state: RunState, zero: float) -> StunCheck:
    from probe.steps.stun import stun_check

    trace = Trace(zero, state.next_transaction_id())
    config = state.config
    refuse = config.refuse_address
    if refuse is not None and refuse(address):
        now = trace.now()
        return StunCheck(
            address=address,
            port=port,
            failure=failures.CONTROL_REFUSED_DESTINATION,
            failed_operation=failures.CONNECT,
            t0=now,
            t=now,
            transaction_id=trace.transaction_id,
        )
    async with state.flows:
        return await stun_check(
            address,
            port,
            trace=trace,
            timeout=config.timeout,
            source_address=config.source_address,
        )
