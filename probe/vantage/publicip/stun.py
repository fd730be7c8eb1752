"""STUN (RFC 5389): the step that asks one server for our public address (the wire format
and the transaction loop are `probe.steps.stun_wire`, shared with the target step).

`stun_binding` sends one Binding request over UDP to one server address; the reply's
XOR-MAPPED-ADDRESS (or, from old servers, MAPPED-ADDRESS) is where our datagram came from.
STUN is unauthenticated UDP, so an on-path censor can rewrite its answers: the discovery takes
a majority over several servers and the HTTPS echo pages (`probe.vantage.publicip.discovery`).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterable

from probe import failures
from probe.observations import Trace, format_address
from probe.steps import tcp, udp
from probe.steps.stun_wire import Progress, transact
from probe.vantage.publicip.observations import (
    STUN,
    Network,
    PublicIPObservation,
    PublicIPResult,
    check_source,
    family_of,
    finish,
    networks,
    new_trace,
    normalize,
)

# --- the step --------------------------------------------------------------------------------


async def stun_binding(
    server_ip: str,
    port: int,
    *,
    timeout: float,
    trace: Trace | None = None,
    source_address: str | None = None,
    counter: tcp.ByteCounter | None = None,
    allow_nets: Iterable[str | Network] = (),
    server: str | None = None,
) -> PublicIPResult:
    """One STUN Binding transaction with `server_ip`:`port` over UDP, within `timeout` seconds.

    The socket is connected, so the kernel drops datagrams from any other source (and an ICMP
    port unreachable becomes connection_refused). The request is sent again after 0.5 s and 1 s
    more (RFC 5389's retransmission, at most `MAX_STUN_REQUESTS` in all), with the same random
    96-bit transaction id. Datagrams that are not a valid reply to it are skipped while we wait;
    when nothing valid came, the failure says what we saw: `stun_wrong_transaction_id`, else
    `stun_invalid_reply`, else generic_timeout_error. An error response ends the transaction
    (`stun_error_response`). `server` names the server in the observation (default ip:port).
    Only cancellation escapes."""
    nets = networks(allow_nets)
    trace = new_trace(trace)
    loop = asyncio.get_running_loop()
    contacted = format_address(server_ip, port)
    observation = PublicIPObservation(
        method=STUN,
        server=server or contacted,
        server_address=contacted,
        server_family=family_of(server_ip),
        t0=trace.now(),
    )
    address: str | None = None
    progress = Progress()
    sock: socket.socket | None = None
    try:
        async with asyncio.timeout(timeout):
            transaction_id = os.urandom(12)
            check_source(server_ip, source_address)
            sock = udp.udp_socket(server_ip, source_address)
            if "%" in server_ip:  # a zone needs the loop's address resolution (a scope id)
                await loop.sock_connect(sock, (server_ip, port))
            else:
                sock.connect((server_ip, port))  # UDP: sets the peer, never blocks
            reply = await transact(sock, transaction_id, progress, counter)
            if reply.outcome == "error":
                observation.response_code = reply.error_code
                raise failures.ProbeFailure(failures.STUN_ERROR_RESPONSE)
            address = normalize(reply.address) if reply.address is not None else None
            if address is None:
                raise failures.ProbeFailure(failures.STUN_INVALID_REPLY)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        observation.failure = progress.failure(exc)
        observation.failed_operation = progress.operation
    finally:
        if sock is not None:
            sock.close()
    return finish(observation, address, trace, nets)
