"""Attempts on one endpoint judged together (retries never hide a success), and the IPv6 rule
(an IPv6-only failure on a vantage whose IPv6 is not proven is no evidence)."""

from __future__ import annotations

from probe.addresses import is_ipv6
from probe.analysis.common import is_interrupted, name_list
from probe.analysis.context import Context
from probe.analysis.vocabulary import (
    BLOCKED,
    CERTIFICATE_FAILURES,
    DOWN,
    FORGED_MTPROTO,
    HTTP_FAILURE,
    INCONCLUSIVE,
    OK,
    PROTOCOL,
    SKIPPED,
    TCP,
    TLS,
    EndpointOutcome,
)
from probe.i18n.message import M, P

# --- attempts and address families ----------------------------------------------------------


def _hides(p: EndpointOutcome, o: EndpointOutcome) -> bool:
    """Does attempt `p` hide attempt `o` on the same endpoint? A failure is hidden by an
    attempt that got past the step that failed; a page that is not ok (a blockpage, a page that
    cannot be checked) only by an ok attempt that got as far."""
    if p is o or p.outcome == SKIPPED:
        return False
    if o.transport and p.transport and o.transport != p.transport:
        return False  # another MTProto transport is another endpoint
    if o.failure is not None:
        return p.reached > o.reached
    return p.outcome == OK and p.reached >= o.reached


def merge_attempts(outcomes: list[EndpointOutcome]) -> list[EndpointOutcome]:
    """One outcome per endpoint (address, port and transport), judging its attempts together
    (retries, several requests, several flows to one address): a failed attempt never hides a
    success. What stands: a failure no other attempt got past, else the attempt that got
    furthest (its evidence says how many attempts failed)."""
    by_endpoint: dict[tuple[str, int], list[EndpointOutcome]] = {}
    for o in outcomes:
        if o.address:
            by_endpoint.setdefault((o.address, o.port), []).append(o)
    hidden: set[int] = set()
    for group in by_endpoint.values():
        if len(group) < 2:
            continue
        for o in group:
            if o.outcome not in (OK, SKIPPED) and any(_hides(p, o) for p in group):
                hidden.add(id(o))
    kept: dict[object, list[EndpointOutcome]] = {}
    for o in outcomes:
        if id(o) in hidden:
            continue
        key: object = (o.address, o.port, o.transport) if o.address else id(o)
        kept.setdefault(key, []).append(o)
    merged: list[EndpointOutcome] = []
    for group in kept.values():
        chosen = _representative(group)
        if chosen.outcome == OK and chosen.address:
            lost = [
                o
                for o in by_endpoint.get((chosen.address, chosen.port), [])
                if id(o) in hidden
                and o.failure is not None
                and o.transport in (None, chosen.transport)
            ]
            if lost:
                chosen.why = P(
                    "{evidence} (after {count} failed attempt on it: {failures})",
                    "{evidence} (after {count} failed attempts on it: {failures})",
                    len(lost),
                    evidence=chosen.why if chosen.why is not None else "",
                    failures=name_list([o.failure or "" for o in lost]),
                )
        merged.append(chosen)
    return merged


def _representative(group: list[EndpointOutcome]) -> EndpointOutcome:
    if len(group) == 1:
        return group[0]
    measured = [o for o in group if o.outcome != SKIPPED] or group
    for status in (BLOCKED, DOWN, INCONCLUSIVE):
        found = [o for o in measured if o.outcome == status]
        if found:
            return found[0]
    return max(measured, key=lambda o: o.reached)


#: Layers at which a broken IPv6 path (no route, a black-holing middlebox, lost large packets)
#: makes a step fail the way blocking does; a wrong certificate or a forged reply it does not.
_PATH_FAILURE_LAYERS = frozenset({TCP, TLS, HTTP_FAILURE, PROTOCOL})


def _fails(o: EndpointOutcome) -> bool:
    """The endpoint failed (blocked, down, or a step failed with nothing to compare)."""
    if o.outcome in (BLOCKED, DOWN):
        return True
    return o.outcome == INCONCLUSIVE and o.failure is not None and not is_interrupted(o.failure)


def apply_ipv6(ctx: Context, outcomes: list[EndpointOutcome]) -> None:
    """On a vantage whose IPv6 is not proven (`ipv6_ok` not True), an IPv6 endpoint failing
    while no endpoint of the other family fails is no evidence of blocking: a half-working IPv6
    path fails exactly like that. It is inconclusive, and never local evidence."""
    if ctx.ipv6_ok is True:
        return
    others = [o for o in outcomes if o.outcome != SKIPPED and not is_ipv6(o.address)]
    if any(_fails(o) for o in others):
        return  # not the only family that fails: judged as usual
    ipv4_works = any(o.outcome == OK for o in others)
    for o in outcomes:
        if not is_ipv6(o.address) or not _fails(o) or o.outcome == DOWN:
            continue
        if o.failure is None or o.failure in CERTIFICATE_FAILURES | FORGED_MTPROTO:
            continue  # a wrong certificate or a forged reply is no path failure
        layer = o.blocking or o.unexplained_layer
        if layer is not None and layer not in _PATH_FAILURE_LAYERS:
            continue
        o.outcome, o.blocking, o.confirmed = INCONCLUSIVE, None, False
        o.unexplained_layer, o.unexplained_what = None, None
        o.why = (
            M(
                "{label} is IPv6 and failed ({failure}), but this vantage's IPv6 is not proven "
                "and IPv4 works, so an IPv6-only failure is no evidence of blocking",
                label=o.label,
                failure=str(o.failure),
            )
            if ipv4_works
            else M(
                "{label} is IPv6 and failed ({failure}), but this vantage's IPv6 is not "
                "proven, so an IPv6-only failure is no evidence of blocking",
                label=o.label,
                failure=str(o.failure),
            )
        )
