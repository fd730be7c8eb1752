"""`StunCheck`: one STUN Binding transaction with a target's server (our own: `x_stun`).

It records only whether a valid reply with our transaction id came, never what the reply said:
a Binding success carries the volunteer's own public address (XOR-MAPPED-ADDRESS)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from probe.observations._read import (
    read_float,
    read_float_or_none,
    read_int,
    read_int_or_none,
    read_str,
    read_str_or_none,
)


@dataclass(slots=True)
class StunCheck:
    """One Binding transaction over UDP with `address`:`port` (the server's, never ours)."""

    address: str
    port: int
    #: a valid Binding success response with our transaction id came back
    success: bool = False
    failure: str | None = None
    failed_operation: str | None = None
    #: requests sent (retransmissions included)
    requests: int = 0
    #: seconds from the latest request sent to the answer; None without one
    rtt: float | None = None
    #: the ERROR-CODE of an error response (`stun_error_response`), when readable
    error_code: int | None = None
    t0: float = 0.0
    t: float = 0.0
    transaction_id: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "port": self.port,
            "success": self.success,
            "failure": self.failure,
            "failed_operation": self.failed_operation,
            "requests": self.requests,
            "rtt": self.rtt,
            "error_code": self.error_code,
            "t0": self.t0,
            "t": self.t,
            "transaction_id": self.transaction_id,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StunCheck:
        return cls(
            address=read_str(d.get("address")),
            port=read_int(d.get("port")),
            success=d.get("success") is True,
            failure=read_str_or_none(d.get("failure")),
            failed_operation=read_str_or_none(d.get("failed_operation")),
            requests=read_int(d.get("requests")),
            rtt=read_float_or_none(d.get("rtt")),
            error_code=read_int_or_none(d.get("error_code")),
            t0=read_float(d.get("t0")),
            t=read_float(d.get("t")),
            transaction_id=read_int(d.get("transaction_id")),
        )
