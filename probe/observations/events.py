"""The flow's clock and its socket operations: `Trace`, `NetworkEvent`, `format_address`."""

from __future__ import annotations

from dataclasses import dataclass, field
from time import monotonic as _monotonic
from typing import Any

from probe.observations._read import (
    INF,
    read_float,
    read_int,
    read_int_or_none,
    read_str,
    read_str_or_none,
)


def round6(t: float) -> float:
    """`round(t, 6)`, the same to the bit, at half the cost where it matters (round goes
    through a decimal string).

    Between 1e-6 and 8000 the nearest integer to t * 1e6 is that of the computed product
    unless the exact product lies within one unit in the last place (< 1e-6 there) of a
    half: those go to round(). An integer below 2**53 divided by 1e6 is the double nearest
    its decimal, which is what round() returns. Anything else (small, negative, huge, not
    a number) goes to round() as well."""
    y = t * 1e6
    f = y % 1.0  # exact, and so is y - f
    if 1.0 <= y < 8e9 and (f < 0.49999 or f > 0.50001):
        return (y - f + 1.0) / 1e6 if f > 0.5 else (y - f) / 1e6
    return round(t, 6)


# Caps that keep a hostile peer from growing a record without bound.
MAX_NETWORK_EVENTS_PER_FLOW = 64


@dataclass(slots=True)
class Trace:
    """Shared by the steps of one endpoint flow: the zero time, the flow's id, its events."""

    zero: float
    transaction_id: int
    events: list[NetworkEvent] = field(default_factory=list)

    def now(self) -> float:
        """Seconds since `zero`, exactly as `round(t, 6)` has them (see `round6`)."""
        t = _monotonic() - self.zero
        # `round6`, inlined: a flow asks the time some 25 times
        y = t * 1e6
        f = y % 1.0
        if 1.0 <= y < 8e9 and (f < 0.49999 or f > 0.50001):
            return (y - f + 1.0) / 1e6 if f > 0.5 else (y - f) / 1e6
        return round(t, 6)

    def add_event(self, event: NetworkEvent) -> None:
        if len(self.events) < MAX_NETWORK_EVENTS_PER_FLOW:
            self.events.append(event)


@dataclass(slots=True)
class NetworkEvent:
    """df-008: one socket operation (connect, read, write, tls_handshake_start, ...)."""

    operation: str
    address: str | None = None
    num_bytes: int | None = None
    failure: str | None = None
    t0: float = 0.0
    t: float = 0.0
    transaction_id: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "address": self.address,
            "num_bytes": self.num_bytes,
            "failure": self.failure,
            "t0": self.t0,
            "t": self.t,
            "transaction_id": self.transaction_id,
        }

    @staticmethod
    def to_dicts(events: list[NetworkEvent]) -> list[dict[str, Any]]:
        """`to_dict` of each: one comprehension, no call per event (a flow has up to 64)."""
        return [
            {
                "operation": e.operation,
                "address": e.address,
                "num_bytes": e.num_bytes,
                "failure": e.failure,
                "t0": e.t0,
                "t": e.t,
                "transaction_id": e.transaction_id,
            }
            for e in events
        ]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetworkEvent:
        # The most numerous observation (up to 64 a flow): an event as `to_dict` writes it (all
        # keys, exact types) is taken as it is; anything else goes through the readers.
        if type(d) is dict:
            try:
                operation, address, num_bytes = d["operation"], d["address"], d["num_bytes"]
                failure, t0, t, tid = d["failure"], d["t0"], d["t"], d["transaction_id"]
            except KeyError:
                pass
            else:
                if (
                    type(operation) is str
                    and (address is None or type(address) is str)
                    and (num_bytes is None or type(num_bytes) is int)
                    and (failure is None or type(failure) is str)
                    and type(t0) is float
                    and -INF < t0 < INF
                    and type(t) is float
                    and -INF < t < INF
                    and type(tid) is int
                ):
                    return cls(operation, address, num_bytes, failure, t0, t, tid)
        return cls(
            operation=read_str(d.get("operation")),
            address=read_str_or_none(d.get("address")),
            num_bytes=read_int_or_none(d.get("num_bytes")),
            failure=read_str_or_none(d.get("failure")),
            t0=read_float(d.get("t0")),
            t=read_float(d.get("t")),
            transaction_id=read_int(d.get("transaction_id")),
        )


def format_address(ip: str, port: int) -> str:
    """ "ip:port", with brackets around IPv6 literals."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
