"""MTProto observations: `MTProtoHandshake`, our own (no OONI data format has one)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from probe.observations._read import (
    INF,
    read_float,
    read_int,
    read_int_or_none,
    read_list,
    read_str,
    read_str_or_none,
)


@dataclass(slots=True)
class MTProtoHandshake:
    """Our own: one unencrypted req_pq_multi exchange over one transport.

    `reply` says what came back: "res_pq" (our nonce echoed), "transport_error" (a bare
    negative code such as -404: the peer speaks MTProto), or None on failure."""

    address: str  # "ip:port"
    transport: str  # abridged | intermediate | padded_intermediate | obfuscated2
    success: bool = False
    failure: str | None = None
    failed_operation: str | None = None
    reply: str | None = None
    error_code: int | None = None
    bytes_sent: int = 0
    bytes_received: int = 0
    server_public_key_fingerprints: list[str] = field(default_factory=list)
    #: one of those fingerprints is a key of Telegram's official clients (consistent with
    #: Telegram, not proof: the fingerprints are public); None when no resPQ came
    known_key: bool | None = None
    first_bytes: str | None = None  # hex of the first bytes received when they were foreign
    t0: float = 0.0
    t: float = 0.0
    transaction_id: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "transport": self.transport,
            "success": self.success,
            "failure": self.failure,
            "failed_operation": self.failed_operation,
            "reply": self.reply,
            "error_code": self.error_code,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "server_public_key_fingerprints": list(self.server_public_key_fingerprints),
            "known_key": self.known_key,
            "first_bytes": self.first_bytes,
            "t0": self.t0,
            "t": self.t,
            "transaction_id": self.transaction_id,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MTProtoHandshake:
        exact = _exact_handshake(d) if type(d) is dict else None
        if exact is not None:
            return exact
        known_key = d.get("known_key")
        return cls(
            address=read_str(d.get("address")),
            transport=read_str(d.get("transport")),
            success=d.get("success") is True,
            failure=read_str_or_none(d.get("failure")),
            failed_operation=read_str_or_none(d.get("failed_operation")),
            reply=read_str_or_none(d.get("reply")),
            error_code=read_int_or_none(d.get("error_code")),
            bytes_sent=read_int(d.get("bytes_sent")),
            bytes_received=read_int(d.get("bytes_received")),
            server_public_key_fingerprints=[
                str(x) for x in read_list(d.get("server_public_key_fingerprints"))
            ],
            known_key=known_key if isinstance(known_key, bool) else None,
            first_bytes=read_str_or_none(d.get("first_bytes")),
            t0=read_float(d.get("t0")),
            t=read_float(d.get("t")),
            transaction_id=read_int(d.get("transaction_id")),
        )


def _exact_handshake(d: dict[str, Any]) -> MTProtoHandshake | None:
    """`from_dict`'s fast path: a handshake as `to_dict` writes it (all keys, exact types),
    else None."""
    try:
        address, transport, success = d["address"], d["transport"], d["success"]
        failure, failed_operation = d["failure"], d["failed_operation"]
        reply, error_code = d["reply"], d["error_code"]
        sent, received = d["bytes_sent"], d["bytes_received"]
        keys, known_key = d["server_public_key_fingerprints"], d["known_key"]
        first_bytes = d["first_bytes"]
        t0, t, tid = d["t0"], d["t"], d["transaction_id"]
    except KeyError:
        return None
    if not (
        type(address) is str
        and type(transport) is str
        and (failure is None or type(failure) is str)
        and (failed_operation is None or type(failed_operation) is str)
        and (reply is None or type(reply) is str)
        and (error_code is None or type(error_code) is int)
        and type(sent) is int
        and type(received) is int
        and type(keys) is list
        and (known_key is None or type(known_key) is bool)
        and (first_bytes is None or type(first_bytes) is str)
        and type(t0) is float
        and -INF < t0 < INF
        and type(t) is float
        and -INF < t < INF
        and type(tid) is int
    ):
        return None
    return MTProtoHandshake(
        address,
        transport,
        success is True,
        failure,
        failed_operation,
        reply,
        error_code,
        sent,
        received,
        [str(x) for x in keys],
        known_key,
        first_bytes,
        t0,
        t,
        tid,
    )
