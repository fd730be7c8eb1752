"""DNS: the answers of every engine judged against the control's (or DoH's, or the probe's own
encrypted lookups), fingerprints, bogons and `expect_asn`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from probe import failures
from probe.addresses import is_bogon, parse_ip
from probe.analysis.common import is_interrupted, name_list, norm_ip
from probe.analysis.context import Context, no_control_phrase
from probe.analysis.http import fingerprint_words
from probe.analysis.vocabulary import (
    BLOCKED,
    DOWN,
    ENCRYPTED_ENGINES,
    ENGINE_WORDS,
    INCONCLUSIVE,
    OK,
    Status,
)
from probe.observations import DNSAnswer, DNSQuery

# --- DNS ------------------------------------------------------------------------------------


@dataclass(slots=True)
class DNSResult:
    status: Status | None = None  # None: no DNS to judge (IP-literal target or no queries)
    reason: str = ""
    confirmed: bool = False
    fingerprints: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    suspicious: set[str] = field(default_factory=set)
    #: answers that look wrong but cannot be checked (no control): endpoints on them prove little
    doubtful: set[str] = field(default_factory=set)


def _dns_reference(ctx: Context, queries: Sequence[DNSQuery]) -> tuple[list[DNSQuery], str, bool]:
    """The queries to compare with: the control's, else DNS over HTTPS asked as a control
    (`x_doh`), else — when plain engines asked too — the probe's own encrypted lookups that
    answered (OONI's Web Connectivity asks DoH beside the system resolver). The flag says the
    reference is the probe's own: its answers are then judged without a reference."""
    name = ctx.hostname or ""
    if ctx.control is not None:
        found = [q for q in ctx.control.obs.queries if q.hostname.lower().rstrip(".") == name]
        if found:
            return found, "the control", False
    found = [q for q in ctx.doh if q.hostname.lower().rstrip(".") == name]
    if found:
        return found, "DNS over HTTPS", False
    own = [q for q in queries if q.engine in ENCRYPTED_ENGINES and q.answers]
    if own and any(q.engine not in ENCRYPTED_ENGINES for q in queries):
        engines = sorted({q.engine for q in own})
        words = ENGINE_WORDS[engines[0]] if len(engines) == 1 else "encrypted DNS"
        return own, f"{words} (asked from here)", True
    return [], "DNS over HTTPS", False


def _asns(ctx: Context, answers: Iterable[DNSAnswer]) -> set[int]:
    found: set[int] = set()
    for a in answers:
        asn = a.asn or (ctx.asn_of.get(norm_ip(a.ip)) if a.ip else None)
        if asn:
            found.add(int(asn))
    return found


def _query_family_failed(query: DNSQuery, ref_answers: Sequence[DNSAnswer]) -> bool:
    """A query that failed although the reference has answers of the family it asked for
    (a v4-only name legitimately has no AAAA answer)."""
    if not query.failure or query.x_duplicate or is_interrupted(query.failure):
        return False
    if failures.is_timeout(query.failure):
        return False  # a slow engine is not a lie; timeouts count only when every engine failed
    if query.engine in ENCRYPTED_ENGINES and not query.failure.startswith("dns_"):
        return False  # the encrypted resolver could not be reached: that says nothing of the name
    if query.query_type == "A":
        return any(a.ipv4 for a in ref_answers)
    if query.query_type == "AAAA":
        return any(a.ipv6 for a in ref_answers)
    return bool(ref_answers)


def _lookup_words(query: DNSQuery) -> str:
    """How a failed lookup is named: "" for the plain engines, " over DNS over TLS (8.8.4.4:853)"
    for an encrypted one (its failure may be the resolver's, not the name's)."""
    if query.engine not in ENCRYPTED_ENGINES:
        return ""
    where = f" ({query.resolver_address})" if query.resolver_address else ""
    return f" over {ENGINE_WORDS[query.engine]}{where}"


def _is_loopback(ip: str) -> bool:
    address = parse_ip(ip)
    return address is not None and address.is_loopback


def judge_dns(ctx: Context, proven: set[str]) -> DNSResult:
    name = ctx.hostname
    if name is None:
        return DNSResult()
    queries = [q for q in ctx.probe.queries if q.hostname.lower().rstrip(".") == name]
    if not queries:
        return DNSResult()
    reference, ref_name, own = _dns_reference(ctx, queries)
    if not own:
        return _judge_answers(ctx, name, queries, reference, ref_name, proven)
    # The probe's own encrypted answers check its plain ones, and are judged on their own.
    plain = [q for q in queries if q.engine not in ENCRYPTED_ENGINES]
    encrypted = [q for q in queries if q.engine in ENCRYPTED_ENGINES]
    checked = _judge_answers(ctx, name, plain, reference, ref_name, proven)
    alone = _judge_answers(ctx, name, encrypted, [], ref_name, proven)
    if alone.status == BLOCKED and checked.status != BLOCKED:
        checked, alone = alone, checked
    checked.answers = list(dict.fromkeys(checked.answers + alone.answers))
    checked.doubtful |= alone.doubtful
    return checked


@dataclass(slots=True)
class _Lookups:
    """One name's lookups (of some engines) and the reference they are judged against."""

    ctx: Context
    name: str
    queries: Sequence[DNSQuery]
    reference: Sequence[DNSQuery]
    ref_name: str
    answers: list[DNSAnswer]
    ips: list[str]
    ref_answers: list[DNSAnswer]
    ref_ips: list[str]

    @property
    def ref_text(self) -> str:
        return f"{self.ref_name} resolved {name_list(self.ref_ips)}" if self.ref_ips else ""


@dataclass(slots=True)
class _Suspicion:
    """Suspicious answers, each with the words that say why."""

    why: dict[str, str] = field(default_factory=dict)
    #: answers that stand as lies without a reference
    standalone: set[str] = field(default_factory=set)
    #: answers a confirmed fingerprint names
    confirmed: set[str] = field(default_factory=set)
    fingerprints: list[str] = field(default_factory=list)


def _judge_answers(
    ctx: Context,
    name: str,
    queries: Sequence[DNSQuery],
    reference: Sequence[DNSQuery],
    ref_name: str,
    proven: set[str],
) -> DNSResult:
    """The DNS verdict for `queries` (one name) against `reference` (possibly none)."""
    answers = [a for q in queries for a in q.answers if a.ip]
    ref_answers = [a for q in reference for a in q.answers if a.ip]
    lookups = _Lookups(
        ctx,
        name,
        queries,
        reference,
        ref_name,
        answers,
        list(dict.fromkeys(norm_ip(a.ip) for a in answers if a.ip)),
        ref_answers,
        list(dict.fromkeys(norm_ip(a.ip) for a in ref_answers if a.ip)),
    )
    if not lookups.ips:
        return _no_answer(lookups)
    suspicion = _Suspicion()
    _judge_each_answer(lookups, suspicion)
    _outside_expected_networks(lookups, suspicion)
    _answers_for_a_missing_name(lookups, suspicion)
    _engines_sharing_nothing(lookups, suspicion)
    # Rehabilitation: an address that proved itself (verified TLS for the name, a genuine
    # MTProto reply, the control's page) was a fine answer — unless a confirmed fingerprint
    # names it.
    for ip in list(suspicion.why):
        if ip in proven and ip not in suspicion.confirmed:
            del suspicion.why[ip]
    return _conclude(lookups, suspicion)


def _no_answer(lookups: _Lookups) -> DNSResult:
    """No engine got an address: failed here, or down, or nothing to compare with."""
    name, reference = lookups.name, lookups.reference
    result = DNSResult(answers=[])
    failed = next((q for q in lookups.queries if q.failure), None)
    failure = (failed.failure if failed else None) or failures.DNS_NO_ANSWER
    how = _lookup_words(failed) if failed else ""
    if is_interrupted(failure):
        result.status, result.reason = INCONCLUSIVE, f"resolving {name} was interrupted"
    elif lookups.ref_ips:
        result.status = BLOCKED
        result.reason = f"DNS for {name}{how} failed here ({failure}) but {lookups.ref_text}"
    elif reference:
        ref_failure = next((q.failure for q in reference if q.failure), failures.DNS_NO_ANSWER)
        result.status = DOWN
        result.reason = (
            f"{name} does not resolve here ({failure}) nor at {lookups.ref_name} ({ref_failure})"
        )
    else:
        result.status = INCONCLUSIVE
        result.reason = f"DNS for {name}{how} failed ({failure}), {no_control_phrase(lookups.ctx)}"
    return result


def _judge_each_answer(lookups: _Lookups, suspicion: _Suspicion) -> None:
    """Fingerprints, loopback and bogon answers. An address the reference returns too is how
    the name resolves, whatever it looks like."""
    ctx, ref_name, has_ref = lookups.ctx, lookups.ref_name, bool(lookups.ref_ips)
    for ip in lookups.ips:
        if ip in lookups.ref_ips:
            continue
        matches = [m for m in ctx.db.match_dns(ip, probe_cc=ctx.probe_cc) if not m.false_positive]
        if _is_loopback(ip):
            # Services publish 127.0.0.1 on purpose (status hosts); some resolvers block with
            # it too. Loopback names no censor: a private answer, whatever matched it.
            words = (
                f"a loopback address {ref_name} does not return"
                if has_ref
                else "a loopback address, which some services publish on purpose"
            )
            if matches:
                prints = name_list([m.name for m in matches])
                words += f" (also a blocking answer of some resolvers: fingerprint {prints})"
                suspicion.fingerprints.extend(m.name for m in matches)
            suspicion.why[ip] = words
        elif matches:
            suspicion.fingerprints.extend(m.name for m in matches)
            if any(m.confirmed for m in matches):
                suspicion.confirmed.add(ip)
                suspicion.standalone.add(ip)
            known = "a known " if any(not m.foreign for m in matches) else "a "
            words = fingerprint_words(matches, "blocking address", ctx.probe_cc)
            suspicion.why[ip] = known + words
        elif is_bogon(ip):
            suspicion.why[ip] = (
                f"a private or reserved address {ref_name} does not return"
                if has_ref
                else "a private or reserved address"
            )


def _outside_expected_networks(lookups: _Lookups, suspicion: _Suspicion) -> None:
    """An answer in a known ASN outside the target's `expect_asn` stands without a control."""
    ctx = lookups.ctx
    if not ctx.expect_asn:
        return
    for a in lookups.answers:
        ip = norm_ip(a.ip or "")
        asn = a.asn or ctx.asn_of.get(ip)
        if ip not in suspicion.why and asn and int(asn) not in ctx.expect_asn:
            expected = ", ".join(f"AS{n}" for n in sorted(ctx.expect_asn))
            suspicion.why[ip] = f"in AS{asn}, outside the expected {expected}"
            suspicion.standalone.add(ip)


def _answers_for_a_missing_name(lookups: _Lookups, suspicion: _Suspicion) -> None:
    """The name does not exist at the reference, yet something here answered for it."""
    reference = lookups.reference
    if not reference or lookups.ref_ips:
        return
    if all(q.failure == failures.DNS_NXDOMAIN for q in reference):
        for ip in lookups.ips:
            suspicion.why.setdefault(ip, f"although the name does not exist at {lookups.ref_name}")
            suspicion.standalone.add(ip)


def _engines_sharing_nothing(lookups: _Lookups, suspicion: _Suspicion) -> None:
    """Each engine's answers (an injected duplicate reply apart) against the reference: a good
    answer from one engine does not cover another engine's lie."""
    if not lookups.ref_ips:
        return
    theirs = _asns(lookups.ctx, lookups.ref_answers)
    groups: dict[tuple[str, bool], list[DNSAnswer]] = {}
    for q in lookups.queries:
        groups.setdefault((q.engine, q.x_duplicate), []).extend(a for a in q.answers if a.ip)
    for group in groups.values():
        mine_ips = {norm_ip(a.ip) for a in group if a.ip}
        if not mine_ips or mine_ips & set(lookups.ref_ips):
            continue
        mine = _asns(lookups.ctx, group)
        if mine and theirs and not mine & theirs:
            for ip in lookups.ips:
                if ip in mine_ips:
                    suspicion.why.setdefault(
                        ip, f"sharing no address and no network with {lookups.ref_name}"
                    )


def _conclude(lookups: _Lookups, suspicion: _Suspicion) -> DNSResult:
    ctx, name, ips = lookups.ctx, lookups.name, lookups.ips
    result = DNSResult(answers=ips, fingerprints=list(dict.fromkeys(suspicion.fingerprints)))
    suspicious = suspicion.why
    failed_engines = [q for q in lookups.queries if _query_family_failed(q, lookups.ref_answers)]
    if not suspicious and failed_engines:
        q = failed_engines[0]
        engine = (
            ENGINE_WORDS["getaddrinfo"] if q.engine == "getaddrinfo" else (f"the {q.engine} query")
        )
        result.status = BLOCKED
        result.reason = f"DNS for {name} failed in {engine} ({q.failure}) but {lookups.ref_text}"
        return result
    if not suspicious:
        result.status = OK if lookups.reference or name in ctx.trusted_names else INCONCLUSIVE
        if result.status == OK:
            basis = (
                f"consistent with {lookups.ref_name}"
                if lookups.reference
                else "in the expected network"
            )
            result.reason = f"{name} resolved to {name_list(ips)}, {basis}"
        else:
            result.reason = (
                f"{name} resolved to {name_list(ips)}; {no_control_phrase(ctx)}, "
                "the answer cannot be checked"
            )
        result.fingerprints = []
        return result
    first_ip = next(iter(suspicious))
    others = [ip for ip in suspicious if ip != first_ip]
    reason = f"DNS for {name} answered {first_ip}, {suspicious[first_ip]}"
    if others:
        reason += f" (also {name_list(others)})"
    result.suspicious = set(suspicious)
    result.confirmed = bool(suspicion.confirmed & set(suspicious))
    if not lookups.ref_ips and not (suspicion.standalone & set(suspicious)):
        # Without anything to compare with, only a confirmed fingerprint or a known ASN
        # outside the list proves a lie; a private address alone may be how the name resolves.
        result.status = INCONCLUSIVE
        result.reason = f"{reason}; {no_control_phrase(ctx)}"
        result.doubtful = set(suspicious)
        return result
    result.status = BLOCKED
    result.reason = reason + (f"; {lookups.ref_text}" if lookups.ref_text else "")
    return result
