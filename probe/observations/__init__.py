"""Observation dataclasses: what one step saw, in OONI's field names (FACTS.md §4).

Every step returns one of these: `DNSQuery`/`DNSAnswer` (`dns`), `TCPConnect` and
`TLSHandshake` (`connections`), `HTTPTransaction` (`http`, with `bound_http`, the cap on what a
record keeps of HTTP heads and bodies), `MTProtoHandshake` (`mtproto`), `StunCheck` (`stun`),
and the `NetworkEvent`s a flow's `Trace` collects (`events`); `Observations` (`container`)
holds one target's lists. `t0`/`t` are seconds since the measurement's zero time
(`Trace.zero`), `transaction_id` is shared by the steps of one endpoint flow. `to_dict()` gives
the OONI-shaped JSON object; `from_dict()` reads it back (records, control replies), tolerating
fields of the wrong type (`_read`). Our own additions use the ``x_`` prefix, which OONI readers
ignore.
"""

from probe.observations.connections import TCPConnect, TLSHandshake
from probe.observations.container import Observations
from probe.observations.dns import DNSAnswer, DNSQuery
from probe.observations.events import (
    MAX_NETWORK_EVENTS_PER_FLOW,
    NetworkEvent,
    Trace,
    format_address,
)
from probe.observations.http import (
    MAX_KEPT_HTTP_CHARS,
    TRIMMED_HEADERS,
    HTTPTransaction,
    bound_http,
)
from probe.observations.mtproto import MTProtoHandshake
from probe.observations.stun import StunCheck

__all__ = [
    "MAX_KEPT_HTTP_CHARS",
    "MAX_NETWORK_EVENTS_PER_FLOW",
    "TRIMMED_HEADERS",
    "DNSAnswer",
    "DNSQuery",
    "HTTPTransaction",
    "MTProtoHandshake",
    "NetworkEvent",
    "Observations",
    "StunCheck",
    "TCPConnect",
    "TLSHandshake",
    "Trace",
    "bound_http",
    "format_address",
]
