"""The control server's configuration (`probe control serve` fills it from its options)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from probe.control.limits import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_MAX_CONCURRENT_REQUESTS,
    DEFAULT_MAX_REPLY_BYTES,
    MAX_REQUEST_BYTES,
    MAX_TARGETS_PER_REQUEST,
    REPLY_WRITE_SECONDS,
)
from probe.round.measure import MeasureConfig


@dataclass(frozen=True, slots=True)
class ControlServerConfig:
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    allow_nets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    token: str | None = None
    geoip_dbs: tuple[str, ...] = ()
    max_request_bytes: int = MAX_REQUEST_BYTES
    max_targets: int = MAX_TARGETS_PER_REQUEST
    max_concurrent_requests: int = DEFAULT_MAX_CONCURRENT_REQUESTS
    log_client_addresses: bool = False
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    #: the measurement of one request ends after this many seconds; None: 8 step timeouts
    #: (the probe waits `client_timeout`, 10 s more)
    request_timeout: float | None = None
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES
    #: UDP port of the neutral QUIC endpoint (control/neutral_quic.py); None: none is run
    neutral_quic_port: int | None = None

    @property
    def measure_deadline(self) -> float:
        if self.request_timeout is not None:
            return self.request_timeout
        return 8 * self.measure.timeout

    @property
    def connection_lifetime(self) -> float:
        """No connection lives longer than this (head, body, measurement, then the reply)."""
        return self.header_timeout + self.body_timeout + self.measure_deadline + REPLY_WRITE_SECONDS
