"""Where is the censor? Pure judgement of a TTL sweep (`test_keys.x_censor_location`,
probe/steps/ttl.py); the rule is in docs/verdicts.md.

- the neutral message's first reply marks the endpoint's distance (`endpoint_hop`);
- the trigger's first reply at a smaller TTL came from a middlebox on the path:
  `censor_hop` = that TTL (hop 1 is the first router after this machine);
- a trigger first answered at the endpoint's distance with another kind of reply than the
  neutral message (a reset where the neutral one got a handshake): `at_endpoint`, the endpoint
  itself or a box right beside it;
- the same kind of reply as the neutral message there: `endpoint_answered`, nothing on the path
  interfered (whatever the endpoint answered is the other rules' business);
- the trigger never answered (a censor that drops, or a path longer than max_ttl): `not_found`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from probe.steps.ttl import CONNECT_FAILED, SILENT

CENSOR_HOP = "censor_hop"
AT_ENDPOINT = "at_endpoint"
ENDPOINT_ANSWERED = "endpoint_answered"
NOT_FOUND = "not_found"


def locate(x_censor_location: Mapping[str, Any]) -> dict[str, Any]:
    """{location, censor_hop, endpoint_hop} of one stored sweep; malformed hops are skipped."""
    hops = x_censor_location.get("hops")
    rows: dict[int, tuple[str, str]] = {}
    for hop in hops if isinstance(hops, list) else ():
        if isinstance(hop, Mapping) and isinstance(hop.get("ttl"), int):
            rows[hop["ttl"]] = (str(hop.get("trigger")), str(hop.get("neutral")))
    quiet = (SILENT, CONNECT_FAILED)
    trigger_hop = min((t for t, (a, _) in rows.items() if a not in quiet), default=None)
    endpoint_hop = min((t for t, (_, b) in rows.items() if b not in quiet), default=None)
    censor_hop: int | None = None
    if trigger_hop is None:
        location = NOT_FOUND
    elif endpoint_hop is None or trigger_hop < endpoint_hop:
        location, censor_hop = CENSOR_HOP, trigger_hop
    elif rows[trigger_hop][0] == rows[trigger_hop][1]:
        location = ENDPOINT_ANSWERED
    else:
        location = AT_ENDPOINT
    return {"location": location, "censor_hop": censor_hop, "endpoint_hop": endpoint_hop}
