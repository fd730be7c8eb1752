"""The probe's own public address, found without a control server: STUN and HTTPS echo.

A volunteer's public address must never appear in a result record, so the probe has to know it
in order to scrub it (and to look up its network's ASN). The control server echoes it; this
package finds it when no control answers. Like OONI Probe's `iplookup` it asks several
independent services; unlike OONI, which takes the first method that answers (in random order),
it asks them all at once and takes, per address family, the strict majority of the answers
(`discovery.discover`), from STUN servers (`stun.stun_binding`) and "what is my IP" pages over
verified TLS (`echo.https_echo`). Each attempt is a `PublicIPObservation` (`observations`) that
never holds the answered address. An answer that is not a public address (private, loopback,
reserved, a bogon, or an IPv6 address that leads to one through NAT64, 6to4 or Teredo) is never
taken as ours unless it lies inside `allow_nets` (a lab option).
"""

from probe.vantage.publicip.discovery import (
    DEFAULT_ECHO_URLS,
    DEFAULT_STUN_SERVERS,
    DEFAULT_TIMEOUT,
    RESOLVE_SHARE,
    decide,
    discover,
)
from probe.vantage.publicip.echo import (
    ECHO_BACKSTOP,
    ECHO_BODY_CAP,
    ECHO_RECEIVE_BUFFER,
    https_echo,
    parse_echo_body,
)
from probe.vantage.publicip.observations import (
    HTTPS_ECHO,
    STUN,
    Discovery,
    Network,
    PublicIPObservation,
    PublicIPResult,
    counts_as_public,
)
from probe.vantage.publicip.stun import stun_binding

__all__ = [
    "DEFAULT_ECHO_URLS",
    "DEFAULT_STUN_SERVERS",
    "DEFAULT_TIMEOUT",
    "ECHO_BACKSTOP",
    "ECHO_BODY_CAP",
    "ECHO_RECEIVE_BUFFER",
    "HTTPS_ECHO",
    "RESOLVE_SHARE",
    "STUN",
    "Discovery",
    "Network",
    "PublicIPObservation",
    "PublicIPResult",
    "counts_as_public",
    "decide",
    "discover",
    "https_echo",
    "parse_echo_body",
    "stun_binding",
]
