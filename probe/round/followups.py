"""Follow-up checks after a target is measured and judged (issue 19 items 3 and 4):
`--throttle-check IP:PORT` downloads from a bulk endpoint with the target's SNI and a neutral
one (probe/steps/throttle.py); `--locate-censor` sends the target's trigger with limited TTLs
to find the hop where the interference starts (probe/steps/ttl.py). Their observations go
into the record's test_keys (`x_throttle`, `x_censor_location`, each with its judgement); the
verdict's reason is amended when the record is written (probe/analysis/followups.py).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from probe.analysis.censor_location import locate
from probe.analysis.throttle import judge_throttle
from probe.steps import dns
from probe.steps.throttle import throttle_check
from probe.steps.ttl import ttl_sweep

if TYPE_CHECKING:
    from probe.round.measure import MeasureConfig
    from probe.targets.model import Target


@dataclass(frozen=True, slots=True)
class FollowUps:
    """Which follow-ups a round runs (RoundOptions.followups)."""

    #: the bulk endpoint (`probe control bulk`) as (ip, port); None: no throttling check
    throttle_server: tuple[str, int] | None = None
    #: run a TTL sweep for every target whose verdict is not ok
    locate_censor: bool = False

    @property
    def any(self) -> bool:
        return self.throttle_server is not None or self.locate_censor


def _sni(target: Target) -> str | None:
    if target.check not in ("tls", "https"):
        return None
    name = target.sni or target.hostname
    try:
        ipaddress.ip_address(name)
        return None  # an IP literal is no SNI
    except ValueError:
        return name or None


def _trigger(target: Target, test_keys: dict[str, Any], config: MeasureConfig) -> Any:
    """(trigger, ip, port, name) for the sweep, or None when there is nothing to send."""
    if target.check == "dns":
        server = config.resolver or dns.read_system_nameserver()
        return ("dns", server[0], server[1], target.hostname) if server else None
    trigger = {"tls": "tls", "https": "tls", "http": "http"}.get(target.check)
    endpoints = [
        e for e in test_keys.get("x_endpoints") or () if isinstance(e, dict) and e.get("address")
    ]
    # the first endpoint that did not work (the one to locate the interference on)
    endpoints.sort(key=lambda e: e.get("outcome") == "ok")
    if trigger is None or not endpoints:
        return None
    name = (target.sni or target.hostname) if trigger == "tls" else target.hostname
    return (trigger, str(endpoints[0]["address"]), int(endpoints[0]["port"]), name)


async def follow_up(
    target: Target, test_keys: dict[str, Any], followups: FollowUps, config: MeasureConfig
) -> None:
    """Run the follow-ups `target` qualifies for; their observations into `test_keys`."""
    sni = _sni(target)
    if followups.throttle_server is not None and sni is not None:
        ip, port = followups.throttle_server
        check = await throttle_check(ip, port, sni, timeout=config.timeout)
        x_throttle = check.to_dict()
        x_throttle.update(judge_throttle(x_throttle).to_dict())
        test_keys["x_throttle"] = x_throttle
    status = (test_keys.get("verdict") or {}).get("status")
    if followups.locate_censor and status in ("blocked", "inconclusive"):
        found = _trigger(target, test_keys, config)
        if found is not None:
            trigger, ip, port, name = found
            sweep = await ttl_sweep(trigger, ip, port, name, timeout=config.timeout)
            x_location = sweep.to_dict()
            x_location.update(locate(x_location))
            test_keys["x_censor_location"] = x_location
