"""What one round says about a whole service, beyond any single target: the facts that let a
verdict stand without a control server, and the two answers a volunteer wants — can I use the
app (*usable*), and is anything of it blocked (*interfered*)?

Pure functions over endpoint outcomes and verdicts; the round computes the facts once all the
service's targets are measured and stores them in every record of the service as
`test_keys.x_service`, so `probe analyze` on one stored record reproduces its verdict.

Why service-level facts at all: without a control, one data centre timing out could be an
outage. Every Telegram data centre timing out while the baseline sites load is not: outages of
several independent addresses at once are rare, censorship that blackholes all of them is the
common case (Iran since 2018). docs/verdicts.md ("Without a control") has the rules and cases.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from probe import failures
from probe.i18n.message import Arg, C, M, Msg

# Layer names as in probe.analysis (not imported: analysis imports this module).
TCP = "tcp"
TLS = "tls"
HTTP_FAILURE = "http-failure"
PROTOCOL = "protocol"

#: Failures that censorship typically produces at each layer: a blackhole (silence until our
#: deadline) or an injected reset/FIN. Outages produce them too, which is why one address
#: failing this way proves nothing without a control; every address of the service failing
#: this way while the baselines work is the local evidence the rules accept.
CENSORSHIP_TYPICAL: Mapping[str, frozenset[str]] = {
    TCP: frozenset({failures.GENERIC_TIMEOUT, failures.TIMED_OUT, failures.CONNECTION_RESET}),
    TLS: frozenset(
        {
            failures.GENERIC_TIMEOUT,
            failures.TIMED_OUT,
            failures.CONNECTION_RESET,
            failures.EOF_ERROR,
        }
    ),
    HTTP_FAILURE: frozenset(
        {
            failures.GENERIC_TIMEOUT,
            failures.TIMED_OUT,
            failures.CONNECTION_RESET,
            failures.EOF_ERROR,
        }
    ),
    PROTOCOL: frozenset(
        {
            failures.GENERIC_TIMEOUT,
            failures.TIMED_OUT,
            failures.CONNECTION_RESET,
            failures.EOF_ERROR,
        }
    ),
}

#: Rule A: every endpoint of one kind fails in censorship-typical ways, on at least this many
#: distinct addresses.
ALL_FAIL_MIN_ADDRESSES = 2
#: Rule B: the same failure on at least this many addresses in at least this many networks
#: (/24 for IPv4, /48 for IPv6), whatever the failure.
SAME_FAILURE_MIN_ADDRESSES = 3
SAME_FAILURE_MIN_NETWORKS = 2
#: The round holds a service's records until all its targets are measured; a service with more
#: targets than this (an imported web list) is written target by target, without these facts.
MAX_TARGETS_HELD = 200


def network_of(address: str) -> str:
    """The /24 (IPv4) or /48 (IPv6) an address lies in: addresses in one such network can fail
    together for one mundane reason (one rack, one route)."""
    try:
        ip = ipaddress.ip_address(address.strip("[]").split("%")[0])
    except ValueError:
        return address
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


@dataclass(frozen=True, slots=True)
class EndpointFact:
    """One endpoint flow of one target, as the first analysis pass saw it."""

    target_id: str
    check: str
    address: str
    outcome: str  # ok | blocked | down | inconclusive | skipped
    #: set only for a failure here that had no control to compare with: the candidates for
    #: local evidence (not interrupted, not an IPv6 address on a vantage without IPv6)
    layer: str | None = None
    failure: str | None = None


def service_facts(service: str, endpoints: Sequence[EndpointFact], targets: int) -> dict[str, Any]:
    """The `x_service` facts of one service from the first analysis pass of all its targets."""
    kinds: dict[str, dict[str, Any]] = {}
    same: dict[tuple[str, str], tuple[set[str], set[str]]] = {}
    for e in endpoints:
        if e.outcome == "skipped":
            continue
        kind = kinds.setdefault(
            e.check,
            {"endpoints": 0, "ok": 0, "unexplained": 0, "addresses": set(), "typical": True},
        )
        kind["endpoints"] += 1
        if e.outcome == "ok":
            kind["ok"] += 1
        if e.layer is None or e.failure is None:
            if e.outcome != "ok":
                kind["typical"] = False  # blocked/down/unclear for another reason
            continue
        kind["unexplained"] += 1
        kind["addresses"].add(e.address)
        if e.failure not in CENSORSHIP_TYPICAL.get(e.layer, frozenset()):
            kind["typical"] = False
        addresses, networks = same.setdefault((e.layer, e.failure), (set(), set()))
        addresses.add(e.address)
        networks.add(network_of(e.address))
    return {
        "name": service,
        "targets": targets,
        "kinds": {
            check: {
                "endpoints": k["endpoints"],
                "ok": k["ok"],
                "failed_unexplained": k["unexplained"],
                "addresses_failed": len(k["addresses"]),
                "all_fail_typically": (
                    k["ok"] == 0 and k["typical"] and k["unexplained"] == k["endpoints"]
                ),
            }
            for check, k in sorted(kinds.items())
        },
        "same_failure": [
            {"layer": layer, "failure": failure, "addresses": len(a), "networks": len(n)}
            for (layer, failure), (a, n) in sorted(same.items())
        ],
    }


@dataclass(frozen=True, slots=True)
class LocalEvidence:
    """Why a failure without a control still counts as blocking."""

    phrase: Msg


def local_evidence(
    facts: Mapping[str, Any] | None, check: str, layer: str, failure: str
) -> LocalEvidence | None:
    """Rule A or B for one unexplained failure, given its service's facts (None: no rule)."""
    if not isinstance(facts, Mapping):
        return None
    service = str(facts.get("name") or "")
    name: Arg = DISPLAY_NAMES.get(service, service) if service else M("this service")
    kinds = facts.get("kinds")
    kind = kinds.get(check) if isinstance(kinds, Mapping) else None
    if isinstance(kind, Mapping) and kind.get("all_fail_typically") is True:
        addresses = _int(kind.get("addresses_failed"))
        if addresses >= ALL_FAIL_MIN_ADDRESSES and failure in CENSORSHIP_TYPICAL.get(layer, ()):
            return LocalEvidence(
                M(
                    "every {kind} of {service} tried fails like this ({count} addresses, none "
                    "works)",
                    kind=_kind_words(check),
                    service=name,
                    count=addresses,
                )
            )
    for entry in facts.get("same_failure") or []:
        if not isinstance(entry, Mapping):
            continue
        if entry.get("layer") != layer or entry.get("failure") != failure:
            continue
        addresses, networks = _int(entry.get("addresses")), _int(entry.get("networks"))
        if addresses >= SAME_FAILURE_MIN_ADDRESSES and networks >= SAME_FAILURE_MIN_NETWORKS:
            return LocalEvidence(
                M(
                    "{count} addresses of {service} in {networks} separate networks fail the "
                    "same way",
                    count=addresses,
                    service=name,
                    networks=networks,
                )
            )
    return None


#: how a reason (and the summary) names a service
DISPLAY_NAMES: dict[str, Msg] = {
    "telegram": C("service", "Telegram"),
    "whatsapp": C("service", "WhatsApp"),
    "signal": C("service", "Signal"),
    "facebook_messenger": C("service", "Facebook Messenger"),
}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _kind_words(check: str) -> Msg:
    """What one endpoint of a check is called, after "every"."""
    return {
        "mtproto": M("data centre address"),
        "tcp": M("server address"),
        "tls": M("TLS endpoint"),
        "http": M("web address"),
        "https": M("web address"),
    }.get(check, M("address"))


# --- usable? interfered? ----------------------------------------------------------------------

#: What an app needs, when a list does not say with `app:<kind>` tags: its protocol endpoints
#: (MTProto data centres, raw TCP servers). Web pages are not the app. A service with neither
#: (Signal talks HTTPS to its API) needs its HTTPS/TLS endpoints.
APP_CHECKS = ("mtproto", "tcp")
APP_TAG_PREFIX = "app:"


@dataclass(frozen=True, slots=True)
class TargetVerdict:
    target_id: str
    check: str
    tags: tuple[str, ...]
    status: str  # the final verdict's status


def app_kinds(targets: Iterable[TargetVerdict]) -> dict[str, list[TargetVerdict]]:
    """The kinds of endpoint the app needs, each with its targets."""
    listed = list(targets)
    tagged: dict[str, list[TargetVerdict]] = {}
    for t in listed:
        for tag in t.tags:
            if tag.startswith(APP_TAG_PREFIX) and len(tag) > len(APP_TAG_PREFIX):
                tagged.setdefault(tag[len(APP_TAG_PREFIX) :], []).append(t)
    if tagged:
        return tagged
    protocol = [t for t in listed if t.check in APP_CHECKS]
    if protocol:
        kinds: dict[str, list[TargetVerdict]] = {}
        for t in protocol:
            kinds.setdefault(t.check, []).append(t)
        return kinds
    web = [t for t in listed if t.check in ("https", "tls", "http")]
    return {"web": web} if web else {}


def usable_and_interfered(targets: Sequence[TargetVerdict]) -> tuple[bool | None, bool | None]:
    """*usable*: at least one target of every kind the app needs is ok; False when a kind has
    no ok target and a blocked or down one; None when a kind has only inconclusive targets, or
    nothing the app needs was measured.
    *interfered*: any target of the service is blocked (None when none is blocked but some are
    inconclusive, False when everything measured is ok or down)."""
    kinds = app_kinds(targets)
    usable: bool | None
    if not kinds:
        usable = None
    else:
        usable = True
        for members in kinds.values():
            statuses = {t.status for t in members}
            if "ok" in statuses:
                continue
            # Nothing of this kind works: blocked or down ones say the app cannot use it (the
            # inconclusive rest, e.g. IPv6 addresses on a vantage without IPv6, cannot help);
            # only inconclusive ones leave it unknown.
            if statuses & {"blocked", "down"}:
                usable = False
            elif usable is not False:
                usable = None
    statuses = {t.status for t in targets}
    interfered: bool | None
    if "blocked" in statuses:
        interfered = True
    elif "inconclusive" in statuses or not statuses:
        interfered = None
    else:
        interfered = False
    return usable, interfered
