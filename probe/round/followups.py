"""Follow-up checks after a target is measured and judged (issue 19 items 3 and 4):
`--throttle-check IP:PORT` downloads from a bulk endpoint with the target's SNI and a neutral
one (probe/steps/throttle.py); `--locate-censor` sends the target's trigger with limited TTLs
to find the hop where the interference starts (probe/steps/ttl.py). Their observations go
into the record's test_keys (`x_throttle`, `x_censor_location`, each with its judgement); the
verdict's reason is amended when the record is written (probe/analysis/followups.py).
"""

from __future__ import annotations

import asyncio
import ipaddress
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from probe.steps import dns

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
        server = _usable_resolver(config.resolver or dns.read_system_nameserver())
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


#: one throttling check at a time per event loop (one round): two at once would share the
#: path's capacity and slow each other's samples
_THROTTLE_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


#: TTL sweeps at once per round: each holds up to 2 * ttl.WINDOW sockets, and a round with
#: hundreds of blocked targets must not open thousands
SWEEPS_AT_ONCE = 4
_SWEEP_SLOTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _throttle_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _THROTTLE_LOCKS.get(loop)
    if lock is None:
        lock = _THROTTLE_LOCKS[loop] = asyncio.Lock()
    return lock


def _sweep_slots() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slots = _SWEEP_SLOTS.get(loop)
    if slots is None:
        slots = _SWEEP_SLOTS[loop] = asyncio.Semaphore(SWEEPS_AT_ONCE)
    return slots


def _usable_resolver(server: tuple[str, int] | None) -> tuple[str, int] | None:
    """A resolver a TTL sweep can locate anything on: not this machine's own stub (a
    loopback address, e.g. systemd-resolved's 127.0.0.53, is zero hops away)."""
    try:
        loopback = server is not None and ipaddress.ip_address(server[0]).is_loopback
    except ValueError:  # e.g. a link-local address with its scope
        return server
    return None if loopback else server


async def follow_up(
    target: Target, test_keys: dict[str, Any], followups: FollowUps, config: MeasureConfig
) -> None:
    """Run the follow-ups `target` qualifies for; their observations into `test_keys`.
    Baselines get none (they are the vantage's own reference)."""
    if target.is_baseline:
        return
    # Imported here: most runs ask for no follow-up and never load the checks.
    from probe.analysis.censor_location import locate
    from probe.analysis.throttle import judge_throttle
    from probe.steps.throttle import throttle_check
    from probe.steps.ttl import ttl_sweep

    sni = _sni(target)
    if followups.throttle_server is not None and sni is not None:
        ip, port = followups.throttle_server
        async with _throttle_lock():
            check = await throttle_check(ip, port, sni, timeout=config.timeout)
        x_throttle = check.to_dict()
        x_throttle.update(judge_throttle(x_throttle).to_dict())
        test_keys["x_throttle"] = x_throttle
    status = (test_keys.get("verdict") or {}).get("status")
    if followups.locate_censor and status in ("blocked", "inconclusive"):
        found = _trigger(target, test_keys, config)
        if found is not None:
            trigger, ip, port, name = found
            async with _sweep_slots():
                sweep = await ttl_sweep(trigger, ip, port, name, timeout=config.timeout)
            x_location = sweep.to_dict()
            x_location.update(locate(x_location))
            test_keys["x_censor_location"] = x_location
