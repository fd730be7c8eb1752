"""STUN reachability of a messenger's call server: one Binding transaction over UDP with one
resolved address (`x_stun`, targets with `stun_port`; docs/verdicts.md, "STUN").

The reply to a Binding request carries the sender's public address (XOR-MAPPED-ADDRESS): here
that is the volunteer's own address, so the step never keeps it. The parser checks the address
attribute is well formed and drops it (`keep_address=False`); the observation says only that a
valid reply with our transaction id came back, how many requests it took and how long.
"""

from __future__ import annotations

import asyncio
import os
import socket

from probe import failures
from probe.observations import StunCheck, Trace
from probe.steps import udp
from probe.steps.stun_wire import STUN_INITIAL_RTO, Progress, transact

#: STUN's default port (RFC 5389 9): UDP and TCP 3478
STUN_DEFAULT_PORT = 3478


async def stun_check(
    ip: str,
    port: int,
    *,
    trace: Trace,
    timeout: float,
    source_address: str | None = None,
) -> StunCheck:
    """One Binding transaction with `ip`:`port` within `timeout` seconds: three requests at
    most, the second after min(0.5 s, timeout / 4), then twice that (RFC 5389's
    retransmission, bounded so that all three fit in the timeout), on a connected UDP socket so
    datagrams from elsewhere never reach us and an ICMP port unreachable is connection_refused.
    Silence is generic_timeout_error; only wrong-id or invalid datagrams are
    `stun_wrong_transaction_id` / `stun_invalid_reply`; an error response is
    `stun_error_response`. Only cancellation escapes."""
    check = StunCheck(address=ip, port=port, t0=trace.now(), transaction_id=trace.transaction_id)
    progress = Progress()
    sock: socket.socket | None = None
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            sock = udp.udp_socket(ip, source_address)
            if "%" in ip:  # a zone needs the loop's address resolution (a scope id)
                await loop.sock_connect(sock, (ip, port))
            else:
                sock.connect((ip, port))  # UDP: sets the peer, never blocks
            rto = min(STUN_INITIAL_RTO, timeout / 4)  # three sends fit: at 0, 1/4, 3/4
            reply = await transact(
                sock, os.urandom(12), progress, keep_address=False, initial_rto=rto
            )
            if reply.outcome == "error":
                check.error_code = reply.error_code
                raise failures.ProbeFailure(failures.STUN_ERROR_RESPONSE)
            check.rtt = round(loop.time() - progress.last_sent, 6)
            check.success = True
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        check.failure = progress.failure(exc)
        check.failed_operation = progress.operation
    finally:
        if sock is not None:
            sock.close()
    check.requests = progress.requests
    check.t = trace.now()
    return check
