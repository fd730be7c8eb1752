"""The control vantage (docs/control.md): a server that measures the probe's targets from an
uncensored network with the same step functions (`probe.round.measure`), and the probe's client for
it. `server` holds the aiohttp application (health, measure, slots and the request deadline),
`request` reads a request's targets (the wire format of `probe.targets`, caller roots),
`guard` refuses private and reserved destinations, `replies` bounds each result and the whole
reply (`x_truncated`, `x_deadline`), `connections` the per-connection head deadline and
lifetime, `logs` the access log and rate-limited lines without client addresses, `serving` the
``probe control serve`` loop, `config` the server's configuration. `client` is the probe's
side: of the server's modules it imports only `limits`, the limits both sides share. The
DNS-over-HTTPS fallback lives in `probe.round.doh_fallback` (re-exported here as `doh_control`).
Import from here: the names below are the package's interface.
"""

from probe.control.client import (
    ControlClient,
    ControlObservations,
    ControlReply,
    EchoInfo,
    target_to_request,
)
from probe.control.config import ControlServerConfig
from probe.control.connections import ControlSite
from probe.control.guard import make_address_guard, redact_refused
from probe.control.limits import (
    CONTROL_KEPT_HTTP_CHARS,
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_MAX_CONCURRENT_REQUESTS,
    DEFAULT_MAX_REPLY_BYTES,
    LISTEN_BACKLOG,
    LOG_BURST,
    LOG_WINDOW,
    MAX_CA_CERTIFICATES,
    MAX_CA_PEM_BYTES,
    MAX_CA_PEMS_PER_REQUEST,
    MAX_KEPT_HEADER_CHARS,
    MAX_PORTS_PER_TARGET,
    MAX_REPLY_BYTES_BASE,
    MAX_REPLY_BYTES_PER_TARGET,
    MAX_REQUEST_BYTES,
    MAX_TARGETS_PER_REQUEST,
    REPLY_WRITE_SECONDS,
    WANTED_OPEN_FILES,
    client_timeout,
)
from probe.control.replies import bound_observations, bounded_result, strip_bodies
from probe.control.request import BadRequest, target_from_request
from probe.control.server import create_app, make_runner, start_server
from probe.control.serving import serve
from probe.round.doh_fallback import doh_control

__all__ = [
    "CONTROL_KEPT_HTTP_CHARS",
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_HEADER_TIMEOUT",
    "DEFAULT_MAX_CONCURRENT_REQUESTS",
    "DEFAULT_MAX_REPLY_BYTES",
    "LISTEN_BACKLOG",
    "LOG_BURST",
    "LOG_WINDOW",
    "MAX_CA_CERTIFICATES",
    "MAX_CA_PEMS_PER_REQUEST",
    "MAX_CA_PEM_BYTES",
    "MAX_KEPT_HEADER_CHARS",
    "MAX_PORTS_PER_TARGET",
    "MAX_REPLY_BYTES_BASE",
    "MAX_REPLY_BYTES_PER_TARGET",
    "MAX_REQUEST_BYTES",
    "MAX_TARGETS_PER_REQUEST",
    "REPLY_WRITE_SECONDS",
    "WANTED_OPEN_FILES",
    "BadRequest",
    "ControlClient",
    "ControlObservations",
    "ControlReply",
    "ControlServerConfig",
    "ControlSite",
    "EchoInfo",
    "bound_observations",
    "bounded_result",
    "client_timeout",
    "create_app",
    "doh_control",
    "make_address_guard",
    "make_runner",
    "redact_refused",
    "serve",
    "start_server",
    "strip_bodies",
    "target_from_request",
    "target_to_request",
]
