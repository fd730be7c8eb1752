"""DNS: the answers of every engine judged against the control's (or DoH's, or the probe's own
encrypted lookups), fingerprints, bogons and `expect_asn`. Which answers look wrong, and why,
is `probe.analysis.dns_answers`; the reference, the failures and the verdict are here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from probe import failures
from probe.analysis.common import is_interrupted, name_list, norm_ip
from probe.analysis.context import Context, no_control_phrase
from probe.analysis.dns_answers import Lookups, Suspicion, suspect_answers
from probe.analysis.vocabulary import (
    BLOCKED,
    DOWN,
    ENCRYPTED_ENGINES,
    ENGINE_WORDS,
    INCONCLUSIVE,
    OK,
    Status,
)
from probe.i18n.message import Clauses, M, Msg, Text
from probe.observations import DNSAnswer, DNSQuery

# --- DNS ------------------------------------------------------------------------------------


@dataclass(slots=True)
class DNSResult:
    status: Status | None = None  # None: no DNS to judge (IP-literal target or no queries)
    reason: Text | None = None
    confirmed: bool = False
    fingerprints: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    suspicious: set[str] = field(default_factory=set)
    #: answers that look wrong but cannot be checked (no control): endpoints on them prove little
    doubtful: set[str] = field(default_factory=set)


def _dns_reference(ctx: Context, queries: Sequence[DNSQuery]) -> tuple[list[DNSQuery], Msg, bool]:
    """The queries to compare with: the control's, else DNS over HTTPS asked as a control
    (`x_doh`), else — when plain engines asked too — the probe's own encrypted lookups that
    answered (OONI's Web Connectivity asks DoH beside the system resolver). The flag says the
    reference is the probe's own: its answers are then judged without a reference."""
    name = ctx.hostname or ""
    if ctx.control is not None:
        found = [q for q in ctx.control.obs.queries if q.hostname.lower().rstrip(".") == name]
        if found:
            return found, M("the control"), False
    found = [q for q in ctx.doh if q.hostname.lower().rstrip(".") == name]
    if found:
        return found, ENGINE_WORDS["doh"], False
    own = [q for q in queries if q.engine in ENCRYPTED_ENGINES and q.answers]
    if own and any(q.engine not in ENCRYPTED_ENGINES for q in queries):
        engines = sorted({q.engine for q in own})
        words = ENGINE_WORDS[engines[0]] if len(engines) == 1 else M("encrypted DNS")
        return own, M("{engine} (asked from here)", engine=words), True
    return [], ENGINE_WORDS["doh"], False


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


def _lookup_words(query: DNSQuery) -> Msg | None:
    """How a failed lookup is named: nothing for the plain engines, "over DNS over TLS
    (8.8.4.4:853)" for an encrypted one (its failure may be the resolver's, not the name's)."""
    if query.engine not in ENCRYPTED_ENGINES:
        return None
    engine = ENGINE_WORDS[query.engine]
    if query.resolver_address:
        return M("over {engine} ({resolver})", engine=engine, resolver=query.resolver_address)
    return M("over {engine}", engine=engine)


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


def _judge_answers(
    ctx: Context,
    name: str,
    queries: Sequence[DNSQuery],
    reference: Sequence[DNSQuery],
    ref_name: Msg,
    proven: set[str],
) -> DNSResult:
    """The DNS verdict for `queries` (one name) against `reference` (possibly none)."""
    answers = [a for q in queries for a in q.answers if a.ip]
    ref_answers = [a for q in reference for a in q.answers if a.ip]
    lookups = Lookups(
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
    suspicion = suspect_answers(lookups)
    # Rehabilitation: an address that proved itself (verified TLS for the name, a genuine
    # MTProto reply, the control's page) was a fine answer — unless a confirmed fingerprint
    # names it.
    for ip in list(suspicion.why):
        if ip in proven and ip not in suspicion.confirmed:
            del suspicion.why[ip]
    return _conclude(lookups, suspicion)


def _no_answer(lookups: Lookups) -> DNSResult:
    """No engine got an address: failed here, or down, or nothing to compare with."""
    name, reference = lookups.name, lookups.reference
    result = DNSResult(answers=[])
    failed = next((q for q in lookups.queries if q.failure), None)
    failure = (failed.failure if failed else None) or failures.DNS_NO_ANSWER
    how = _lookup_words(failed) if failed else None
    if is_interrupted(failure):
        result.status, result.reason = (
            INCONCLUSIVE,
            M("resolving {name} was interrupted", name=name),
        )
    elif lookups.ref_text is not None:
        result.status = BLOCKED
        result.reason = (
            M(
                "DNS for {name} {how} failed here ({failure}) but {reference}",
                name=name,
                how=how,
                failure=failure,
                reference=lookups.ref_text,
            )
            if how
            else M(
                "DNS for {name} failed here ({failure}) but {reference}",
                name=name,
                failure=failure,
                reference=lookups.ref_text,
            )
        )
    elif reference:
        ref_failure = next((q.failure for q in reference if q.failure), failures.DNS_NO_ANSWER)
        result.status = DOWN
        result.reason = M(
            "{name} does not resolve here ({failure}) nor at {reference} ({reference_failure})",
            name=name,
            failure=failure,
            reference=lookups.ref_name,
            reference_failure=ref_failure,
        )
    else:
        result.status = INCONCLUSIVE
        no_control = no_control_phrase(lookups.ctx)
        result.reason = (
            M(
                "DNS for {name} {how} failed ({failure}), {no_control}",
                name=name,
                how=how,
                failure=failure,
                no_control=no_control,
            )
            if how
            else M(
                "DNS for {name} failed ({failure}), {no_control}",
                name=name,
                failure=failure,
                no_control=no_control,
            )
        )
    return result


def _conclude(lookups: Lookups, suspicion: Suspicion) -> DNSResult:
    """The DNS verdict of one name: an engine that failed where the reference answered, else
    a clean answer, else the suspicious addresses."""
    result = DNSResult(
        answers=lookups.ips, fingerprints=list(dict.fromkeys(suspicion.fingerprints))
    )
    if suspicion.why:
        return _suspicious(lookups, suspicion, result)
    failed_engines = [q for q in lookups.queries if _query_family_failed(q, lookups.ref_answers)]
    if failed_engines:
        return _engine_failed(lookups, failed_engines[0], result)
    return _clean(lookups, result)


def _engine_failed(lookups: Lookups, q: DNSQuery, result: DNSResult) -> DNSResult:
    engine = (
        ENGINE_WORDS["getaddrinfo"]
        if q.engine == "getaddrinfo"
        else M("the {engine} query", engine=q.engine)
    )
    result.status = BLOCKED
    result.reason = M(
        "DNS for {name} failed in {engine} ({failure}) but {reference}",
        name=lookups.name,
        engine=engine,
        failure=str(q.failure),
        reference=lookups.ref_text or "",
    )
    return result


def _clean(lookups: Lookups, result: DNSResult) -> DNSResult:
    ctx, name, ips = lookups.ctx, lookups.name, lookups.ips
    result.status = OK if lookups.reference or name in ctx.trusted_names else INCONCLUSIVE
    if result.status == OK and lookups.reference:
        result.reason = M(
            "{name} resolved to {addresses}, consistent with {reference}",
            name=name,
            addresses=name_list(ips),
            reference=lookups.ref_name,
        )
    elif result.status == OK:
        result.reason = M(
            "{name} resolved to {addresses}, in the expected network",
            name=name,
            addresses=name_list(ips),
        )
    else:
        result.reason = M(
            "{name} resolved to {addresses}; {no_control}, the answer cannot be checked",
            name=name,
            addresses=name_list(ips),
            no_control=no_control_phrase(ctx),
        )
    result.fingerprints = []
    return result


def _suspicious(lookups: Lookups, suspicion: Suspicion, result: DNSResult) -> DNSResult:
    name, suspicious = lookups.name, suspicion.why
    first_ip = next(iter(suspicious))
    others = [ip for ip in suspicious if ip != first_ip]
    reason = (
        M(
            "DNS for {name} answered {address}, {why} (also {others})",
            name=name,
            address=first_ip,
            why=suspicious[first_ip],
            others=name_list(others),
        )
        if others
        else M(
            "DNS for {name} answered {address}, {why}",
            name=name,
            address=first_ip,
            why=suspicious[first_ip],
        )
    )
    result.suspicious = set(suspicious)
    result.confirmed = bool(suspicion.confirmed & set(suspicious))
    if not lookups.ref_ips and not (suspicion.standalone & set(suspicious)):
        # Without anything to compare with, only a confirmed fingerprint or a known ASN
        # outside the list proves a lie; a private address alone may be how the name resolves.
        result.status = INCONCLUSIVE
        result.reason = Clauses((reason, no_control_phrase(lookups.ctx)))
        result.doubtful = set(suspicious)
        return result
    result.status = BLOCKED
    result.reason = Clauses((reason, lookups.ref_text)) if lookups.ref_text else reason
    return result
