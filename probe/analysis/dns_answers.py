"""DNS answer comparison: which of one name's answers look wrong, and the words that say why.

`suspect_answers` checks each answer (a fingerprint, a loopback or private address the reference
does not return), the networks the answers are in (outside the target's `expect_asn`), answers
for a name that does not exist at the reference, and engines whose answers share no address and
no network with the reference. An address the reference returns too is never suspicious here;
rehabilitating proven addresses and the verdict are `probe.analysis.dns`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from probe import failures
from probe.addresses import is_bogon, parse_ip
from probe.analysis.common import name_list, norm_ip
from probe.analysis.context import Context
from probe.analysis.http import ADDRESS_WORDS, fingerprint_words
from probe.i18n.message import M, Msg, Names
from probe.observations import DNSAnswer, DNSQuery


@dataclass(slots=True)
class Lookups:
    """One name's lookups (of some engines) and the reference they are judged against."""

    ctx: Context
    name: str
    queries: Sequence[DNSQuery]
    reference: Sequence[DNSQuery]
    ref_name: Msg
    answers: list[DNSAnswer]
    ips: list[str]
    ref_answers: list[DNSAnswer]
    ref_ips: list[str]

    @property
    def ref_text(self) -> Msg | None:
        if not self.ref_ips:
            return None
        return M(
            "{reference} resolved {addresses}",
            reference=self.ref_name,
            addresses=name_list(self.ref_ips),
        )


@dataclass(slots=True)
class Suspicion:
    """Suspicious answers, each with the words that say why."""

    why: dict[str, Msg] = field(default_factory=dict)
    #: answers that stand as lies without a reference
    standalone: set[str] = field(default_factory=set)
    #: answers a confirmed fingerprint names
    confirmed: set[str] = field(default_factory=set)
    fingerprints: list[str] = field(default_factory=list)


def _asns(ctx: Context, answers: Iterable[DNSAnswer]) -> set[int]:
    found: set[int] = set()
    for a in answers:
        asn = a.asn or (ctx.asn_of.get(norm_ip(a.ip)) if a.ip else None)
        if asn:
            found.add(int(asn))
    return found


def _is_loopback(ip: str) -> bool:
    address = parse_ip(ip)
    return address is not None and address.is_loopback


def suspect_answers(lookups: Lookups) -> Suspicion:
    """Every answer of `lookups` that looks wrong, with why: fingerprints, loopback and bogon
    answers, networks outside `expect_asn`, answers for a name the reference says does not
    exist, and engines that share nothing with the reference."""
    suspicion = Suspicion()
    _judge_each_answer(lookups, suspicion)
    _outside_expected_networks(lookups, suspicion)
    _answers_for_a_missing_name(lookups, suspicion)
    _engines_sharing_nothing(lookups, suspicion)
    return suspicion


def _judge_each_answer(lookups: Lookups, suspicion: Suspicion) -> None:
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
                M("a loopback address {reference} does not return", reference=ref_name)
                if has_ref
                else M("a loopback address, which some services publish on purpose")
            )
            if matches:
                words = M(
                    "{address} (also a blocking answer of some resolvers: fingerprint {names})",
                    address=words,
                    names=name_list([m.name for m in matches]),
                )
                suspicion.fingerprints.extend(m.name for m in matches)
            suspicion.why[ip] = words
        elif matches:
            suspicion.fingerprints.extend(m.name for m in matches)
            if any(m.confirmed for m in matches):
                suspicion.confirmed.add(ip)
                suspicion.standalone.add(ip)
            suspicion.why[ip] = fingerprint_words(matches, ADDRESS_WORDS, ctx.probe_cc)
        elif is_bogon(ip):
            suspicion.why[ip] = (
                M("a private or reserved address {reference} does not return", reference=ref_name)
                if has_ref
                else M("a private or reserved address")
            )


def _outside_expected_networks(lookups: Lookups, suspicion: Suspicion) -> None:
    """An answer in a known ASN outside the target's `expect_asn` stands without a control."""
    ctx = lookups.ctx
    if not ctx.expect_asn:
        return
    for a in lookups.answers:
        ip = norm_ip(a.ip or "")
        asn = a.asn or ctx.asn_of.get(ip)
        if ip not in suspicion.why and asn and int(asn) not in ctx.expect_asn:
            expected = Names.of(f"AS{n}" for n in sorted(ctx.expect_asn))
            network = f"AS{asn}"
            suspicion.why[ip] = M(
                "in {asn}, outside the expected {expected}", asn=network, expected=expected
            )
            suspicion.standalone.add(ip)


def _answers_for_a_missing_name(lookups: Lookups, suspicion: Suspicion) -> None:
    """The name does not exist at the reference, yet something here answered for it."""
    reference = lookups.reference
    if not reference or lookups.ref_ips:
        return
    if all(q.failure == failures.DNS_NXDOMAIN for q in reference):
        for ip in lookups.ips:
            suspicion.why.setdefault(
                ip,
                M("although the name does not exist at {reference}", reference=lookups.ref_name),
            )
            suspicion.standalone.add(ip)


def _engines_sharing_nothing(lookups: Lookups, suspicion: Suspicion) -> None:
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
                        ip,
                        M(
                            "sharing no address and no network with {reference}",
                            reference=lookups.ref_name,
                        ),
                    )
