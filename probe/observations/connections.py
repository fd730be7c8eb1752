"""Connection observations: `TCPConnect` (df-005) and `TLSHandshake` (df-006)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from probe.observations._read import (
    INF,
    read_dict,
    read_float,
    read_int,
    read_list,
    read_str,
    read_str_or_none,
)


@dataclass(slots=True)
class TCPConnect:
    """df-005: one TCP connect to ip:port."""

    ip: str
    port: int
    success: bool
    failure: str | None = None
    t0: float = 0.0
    t: float = 0.0
    transaction_id: int = 0
    #: why an extra connection was made (`PURPOSES`: an SNI swap, a residual-blocking sample);
    #: None for the target's own flow. Written only when set, so ordinary records are unchanged.
    x_purpose: str | None = None

    @property
    def failed_operation(self) -> str | None:
        return "connect" if self.failure else None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "ip": self.ip,
            "port": self.port,
            "status": {"success": self.success, "failure": self.failure, "blocked": None},
            "failed_operation": "connect" if self.failure else None,
            "t0": self.t0,
            "t": self.t,
            "transaction_id": self.transaction_id,
        }
        if self.x_purpose is not None:
            out["x_purpose"] = self.x_purpose
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TCPConnect:
        if type(d) is dict:  # fast path: a connect as `to_dict` writes it (exact types)
            try:
                ip, port, status, t0, t = d["ip"], d["port"], d["status"], d["t0"], d["t"]
                tid = d["transaction_id"]
            except KeyError:
                pass
            else:
                if (
                    type(ip) is str
                    and type(port) is int
                    and type(status) is dict
                    and type(t0) is float
                    and -INF < t0 < INF
                    and type(t) is float
                    and -INF < t < INF
                    and type(tid) is int
                ):
                    failure = status.get("failure")
                    if failure is None or type(failure) is str:
                        success = status.get("success") is True
                        purpose = _purpose(d)
                        return cls(ip, port, success, failure, t0, t, tid, purpose)
        status = read_dict(d.get("status"))
        return cls(
            ip=read_str(d.get("ip")),
            port=read_int(d.get("port")),
            success=status.get("success") is True,
            failure=read_str_or_none(status.get("failure")),
            t0=read_float(d.get("t0")),
            t=read_float(d.get("t")),
            transaction_id=read_int(d.get("transaction_id")),
            x_purpose=_purpose(d),
        )


#: the purposes of extra connections (probe/round/measure/sni_swap.py): a handshake with a
#: benign SNI to the target's address, the target's SNI to a neutral server, a benign SNI to
#: the neutral server, and the samples of residual blocking (same address, neutral server)
SNI_SWAP = "sni_swap"
SNI_NEUTRAL = "sni_neutral"
NEUTRAL_CONTROL = "neutral_control"
RESIDUAL = "residual"
RESIDUAL_NEUTRAL = "residual_neutral"
PURPOSES = frozenset({SNI_SWAP, SNI_NEUTRAL, NEUTRAL_CONTROL, RESIDUAL, RESIDUAL_NEUTRAL})


def _purpose(d: dict[str, Any]) -> str | None:
    """`x_purpose` when it is one we know; any other value is dropped (a stored record cannot
    smuggle a new kind of extra connection into the analysis)."""
    value = d.get("x_purpose")
    return value if isinstance(value, str) and value in PURPOSES else None


@dataclass(slots=True)
class TLSHandshake:
    """df-006: one TLS handshake. `peer_certificates` is the chain as sent by the peer (DER,
    base64), recorded also when verification failed."""

    address: str  # "ip:port" ("[v6]:port")
    server_name: str
    network: str = "tcp"
    tls_version: str | None = None
    cipher_suite: str | None = None
    negotiated_protocol: str | None = None
    no_tls_verify: bool = False
    peer_certificates: list[str] = field(default_factory=list)
    failure: str | None = None
    failed_operation: str | None = None
    t0: float = 0.0
    t: float = 0.0
    transaction_id: int = 0
    #: why an extra handshake was made (`PURPOSES`); None for the target's own
    x_purpose: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "network": self.network,
            "address": self.address,
            "server_name": self.server_name,
            "tls_version": self.tls_version,
            "cipher_suite": self.cipher_suite,
            "negotiated_protocol": self.negotiated_protocol,
            "no_tls_verify": self.no_tls_verify,
            "peer_certificates": [{"format": "base64", "data": c} for c in self.peer_certificates],
            "failure": self.failure,
            "failed_operation": self.failed_operation,
            "t0": self.t0,
            "t": self.t,
            "transaction_id": self.transaction_id,
        }
        if self.x_purpose is not None:
            out["x_purpose"] = self.x_purpose
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TLSHandshake:
        certs = [
            str(c.get("data")) for c in read_list(d.get("peer_certificates")) if isinstance(c, dict)
        ]
        exact = _exact_handshake(d, certs) if type(d) is dict else None
        if exact is not None:
            return exact
        return cls(
            address=read_str(d.get("address")),
            server_name=read_str(d.get("server_name")),
            network=read_str(d.get("network"), "tcp"),
            tls_version=read_str_or_none(d.get("tls_version")),
            cipher_suite=read_str_or_none(d.get("cipher_suite")),
            negotiated_protocol=read_str_or_none(d.get("negotiated_protocol")),
            no_tls_verify=d.get("no_tls_verify") is True,
            peer_certificates=certs,
            failure=read_str_or_none(d.get("failure")),
            failed_operation=read_str_or_none(d.get("failed_operation")),
            t0=read_float(d.get("t0")),
            t=read_float(d.get("t")),
            transaction_id=read_int(d.get("transaction_id")),
            x_purpose=_purpose(d),
        )


def _exact_handshake(d: dict[str, Any], certs: list[str]) -> TLSHandshake | None:
    """`from_dict`'s fast path: a handshake as `to_dict` writes it (all keys, exact types),
    else None."""
    try:
        address, server_name, network = d["address"], d["server_name"], d["network"]
        version, cipher = d["tls_version"], d["cipher_suite"]
        protocol, no_verify = d["negotiated_protocol"], d["no_tls_verify"]
        failure, failed_operation = d["failure"], d["failed_operation"]
        t0, t, tid = d["t0"], d["t"], d["transaction_id"]
    except KeyError:
        return None
    if not (
        type(address) is str
        and type(server_name) is str
        and type(network) is str
        and (version is None or type(version) is str)
        and (cipher is None or type(cipher) is str)
        and (protocol is None or type(protocol) is str)
        and (failure is None or type(failure) is str)
        and (failed_operation is None or type(failed_operation) is str)
        and type(t0) is float
        and -INF < t0 < INF
        and type(t) is float
        and -INF < t < INF
        and type(tid) is int
    ):
        return None
    return TLSHandshake(
        address,
        server_name,
        network,
        version,
        cipher,
        protocol,
        no_verify is True,
        certs,
        failure,
        failed_operation,
        t0,
        t,
        tid,
        _purpose(d),
    )
