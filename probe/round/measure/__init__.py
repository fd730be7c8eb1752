"""The per-target flow: resolve, then measure every address on every port, layer by layer.

One *flow* is one (address, port): TCP connect, then TLS, HTTP or MTProto on that connection.
Flows of a round run concurrently under two bounds held in `RunState`: a global semaphore
(`--concurrency`) and one lock per (ip, port), so that we never hit the same endpoint twice at
once (censors keep residual blocking state per endpoint, and servers rate-limit).

The flows are written in the style of OONI's dslx: each step takes an `Endpoint` (a frozen input
value: address, port, target, and what to ask for there) and the `Flow` it belongs to (the
round's state, the flow's trace, and the sink its observations go to), and returns its result.
An observation goes to the sink once it is final and is not edited after.

The control server runs this same code for the same targets (with `refuse_address` set), so
probe and control observations are the same types, measured the same way.

Modules: `config.py` (`MeasureConfig`, `RunState`, the bounds), `endpoint.py` (`Endpoint`,
`Flow`, the connect and TLS steps), `fetch.py` (http(s) with redirects), `target.py`
(`measure_target`, the tcp/tls and MTProto flows).
"""

from __future__ import annotations

from probe.round.measure.config import (
    DEFAULT_BODY_CAP,
    DEFAULT_CONCURRENCY,
    DEFAULT_TIMEOUT,
    MAX_ADDRESSES_PER_FAMILY,
    MAX_BOUNDED_RECEIVE_BUFFER,
    MIN_RECEIVE_BUFFER,
    RECEIVE_BUFFER_SHARE,
    MeasureConfig,
    RunState,
    http_receive_buffer,
)
from probe.round.measure.endpoint import Endpoint, Flow, Observation
from probe.round.measure.fetch import FETCH_BUDGET_STEPS
from probe.round.measure.target import measure_target, select_addresses

__all__ = [
    "DEFAULT_BODY_CAP",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_TIMEOUT",
    "FETCH_BUDGET_STEPS",
    "MAX_ADDRESSES_PER_FAMILY",
    "MAX_BOUNDED_RECEIVE_BUFFER",
    "MIN_RECEIVE_BUFFER",
    "RECEIVE_BUFFER_SHARE",
    "Endpoint",
    "Flow",
    "MeasureConfig",
    "Observation",
    "RunState",
    "http_receive_buffer",
    "measure_target",
    "select_addresses",
]
