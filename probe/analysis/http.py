"""HTTP: OONI's Web Connectivity comparison of two pages (`http_differences`), and the judgement
of each redirect chain of an endpoint flow."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from probe import failures
from probe.analysis.common import body_length, name_list, title_of, url_endpoint
from probe.analysis.context import Context, fail_outcome, no_control_phrase
from probe.analysis.fingerprints import Match
from probe.analysis.flows import Flow, chains_of
from probe.analysis.vocabulary import (
    BLOCKED,
    BODY_PROPORTION_THRESHOLD,
    COMMON_HEADERS,
    DNS,
    HTTP_DIFF,
    HTTP_FAILURE,
    INCONCLUSIVE,
    OK,
    REACHED_PAGE,
    REACHED_RESPONSE,
    REACHED_TLS,
    SCOPE_WORDS,
    TITLE_WORD_MIN,
    EndpointOutcome,
)
from probe.i18n.message import Arg, Clauses, M, Msg, Names
from probe.observations import HTTPTransaction
from probe.observations.http import REDIRECT_CODES

# --- the HTTP comparison (OONI's Web Connectivity rules, FACTS.md §4) ------------------------


def _title_words(title: str | None) -> set[str]:
    return {w.lower() for w in (title or "").split() if len(w) >= TITLE_WORD_MIN}


def _uncommon_headers(transaction: HTTPTransaction) -> set[str]:
    return {n.lower() for n, _ in transaction.response_headers} - COMMON_HEADERS


def http_differences(probe: HTTPTransaction, control: HTTPTransaction) -> list[str]:
    """Plain-words differences between two responses; empty when they look like the same page.

    Status codes must match (unless the control got a 5xx: then the server is flaky and the
    status says nothing), and at least one of body length (smaller/larger > 0.7), title words
    of 5+ characters, or uncommon header names must agree when they can be compared."""
    return [d.english() for d in page_differences(probe, control)]


def page_differences(probe: HTTPTransaction, control: HTTPTransaction) -> list[Msg]:
    """`http_differences` as messages."""
    differences: list[Msg] = []
    status_differs = False
    control_code = control.response_code or 0
    if probe.response_code != control.response_code and control_code < 500:
        status_differs = True
        differences.append(
            M(
                "status {here} here but {there} at the control",
                here=str(probe.response_code),
                there=str(control.response_code),
            )
        )
    checks: list[bool] = []
    probe_len, control_len = body_length(probe), body_length(control)
    if probe_len and control_len:
        if probe.body_is_truncated and probe_len < control_len:
            pass  # our snapshot stopped at the cap: the sizes cannot be compared
        else:
            proportion = min(probe_len, control_len) / max(probe_len, control_len)
            checks.append(proportion > BODY_PROPORTION_THRESHOLD)
            if not checks[-1]:
                differences.append(
                    M(
                        "body {here} bytes here but {there} at the control",
                        here=probe_len,
                        there=control_len,
                    )
                )
    probe_words, control_words = _title_words(title_of(probe)), _title_words(title_of(control))
    if control_words:
        checks.append(bool(probe_words & control_words))
        if not checks[-1]:
            differences.append(
                M(
                    "title {here} here but {there} at the control",
                    here=repr(title_of(probe)),
                    there=repr(title_of(control)),
                )
            )
    probe_headers, control_headers = _uncommon_headers(probe), _uncommon_headers(control)
    if probe_headers or control_headers:
        checks.append(bool(probe_headers & control_headers))
    if differences and (not checks or not any(checks)):
        return differences
    if status_differs:
        return differences
    return []


def judge_http(ctx: Context, flow: Flow, verified_tls: bool) -> list[EndpointOutcome]:
    """One outcome per attempt (redirect chain) of the flow; `merge_attempts` then judges the
    attempts on one endpoint together."""
    hop_failure = flow.hop_failure()
    return [
        _judge_chain(ctx, flow, chain, verified_tls, hop_failure)
        for chain in chains_of(flow.requests)
    ]


@dataclass(slots=True)
class _Chain:
    """One attempt (redirect chain) on an endpoint flow, with what the control fetched."""

    ctx: Context
    flow: Flow
    requests: Sequence[HTTPTransaction]
    outcome: EndpointOutcome
    label: Arg
    control_final: HTTPTransaction | None
    control_failure: str | None

    @property
    def final(self) -> HTTPTransaction:
        return self.requests[-1]

    @property
    def redirected(self) -> bool:
        return self.final.response_code in REDIRECT_CODES


def _judge_chain(
    ctx: Context,
    flow: Flow,
    chain: Sequence[HTTPTransaction],
    verified_tls: bool,
    hop_failure: tuple[str | None, str] | None,
) -> EndpointOutcome:
    ip, port = flow.origin or ("", 0)
    outcome = EndpointOutcome(ip, port, None, OK)
    control_final, control_failure = (
        ctx.control.final_http(flow.origin, chain[0].url) if ctx.control else (None, None)
    )
    attempt = _Chain(
        ctx,
        flow,
        chain,
        outcome,
        outcome.label if flow.origin else chain[0].url,
        control_final,
        control_failure,
    )
    failed = _chain_failure(attempt, hop_failure)
    if failed is not None:
        return failed
    final = attempt.final
    if final.response_code is None:
        outcome.outcome = INCONCLUSIVE
        outcome.reached = REACHED_TLS
        outcome.why = M("{label} recorded no HTTP response", label=attempt.label)
        return outcome
    outcome.reached = REACHED_RESPONSE if attempt.redirected else REACHED_PAGE
    if verified_tls:
        # The fingerprints could change nothing here (the commonest success): over verified
        # TLS a blockpage match is not evidence (below) and `_judge_page` returns before it
        # looks at look-alikes. Matching a page's body is the analysis's dearest step.
        return _judge_page(attempt, verified_tls, [])
    final_matches = ctx.db.match_http(final, probe_cc=ctx.probe_cc)
    matches = [m for r in chain[:-1] for m in ctx.db.match_http(r, probe_cc=ctx.probe_cc)]
    blocking_matches = [m for m in matches + final_matches if not m.false_positive]
    if blocking_matches and not verified_tls:
        outcome.outcome, outcome.blocking = BLOCKED, HTTP_DIFF
        outcome.confirmed = any(m.confirmed for m in blocking_matches)
        outcome.fingerprints = list(dict.fromkeys(m.name for m in blocking_matches))
        outcome.why = M(
            "{label} answered HTTP {code} with {blockpage}",
            label=attempt.label,
            code=str(final.response_code),
            blockpage=fingerprint_words(blocking_matches, BLOCKPAGE_WORDS, ctx.probe_cc),
        )
        return outcome
    return _judge_page(attempt, verified_tls, [m for m in final_matches if m.false_positive])


def _chain_failure(
    attempt: _Chain, hop_failure: tuple[str | None, str] | None
) -> EndpointOutcome | None:
    """The outcome of a chain that failed: a request, a later hop that could not be opened,
    or the redirect target's name that did not resolve. None when nothing failed."""
    ctx, flow, chain, final = attempt.ctx, attempt.flow, attempt.requests, attempt.final
    failed = next((r for r in chain if r.failure), None)
    failure, operation = (failed.failure, failed.failed_operation) if failed else (None, None)
    reached = REACHED_TLS if failed is chain[0] else REACHED_RESPONSE
    if failure is None and hop_failure is not None and attempt.redirected:
        # the chain stopped at a redirect whose next hop could not be opened
        failure, operation = hop_failure
    if failure is None and attempt.redirected and final.location:
        next_host = (url_endpoint(final.location) or ("", 0))[0].lower()
        lookups = [q for q in ctx.probe.queries if q.hostname.lower().rstrip(".") == next_host]
        if lookups and not any(q.answers for q in lookups):
            failure = next((q.failure for q in lookups if q.failure), failures.DNS_NO_ANSWER)
            operation = failures.RESOLVE
    if failure is None:
        return None
    outcome = attempt.outcome
    outcome.failure, outcome.failed_operation = failure, operation or failures.HTTP_ROUND_TRIP
    outcome.reached = reached
    if failure == failures.HTTP_REDIRECT_REFUSED and attempt.control_final is not None:
        outcome.outcome, outcome.blocking = BLOCKED, HTTP_DIFF
        outcome.why = M(
            "{label} redirected to {location}, which the control was not sent to",
            label=attempt.label,
            location=final.location or M("a private address"),
        )
        return outcome
    control_ok = (
        True if attempt.control_final is not None else (False if attempt.control_failure else None)
    )
    if operation == failures.RESOLVE:
        what = M("resolving the redirect target {location}", location=str(final.location))
        return fail_outcome(
            ctx, flow, None, DNS, failure, operation, what, control_ok, True, REACHED_RESPONSE
        )
    return fail_outcome(
        ctx,
        flow,
        None,
        HTTP_FAILURE,
        failure,
        outcome.failed_operation,
        M("the HTTP exchange"),
        control_ok,
        True,
        reached,
    )


def _judge_page(attempt: _Chain, verified_tls: bool, lookalikes: list[Match]) -> EndpointOutcome:
    """A chain that ended in a response and matched no blockpage: a redirect, a page over
    verified TLS, or a page compared with the control's."""
    ctx, outcome, label = attempt.ctx, attempt.outcome, attempt.label
    code = str(attempt.final.response_code)
    if attempt.redirected:
        where = attempt.final.location or "?"
        outcome.why = M(
            "{label} answered HTTP {code}, a redirect to {location}",
            label=label,
            code=code,
            location=where,
        )
        return outcome
    if verified_tls:
        outcome.why = M(
            "{label} answered HTTP {code} over TLS verified for {server_name}",
            label=label,
            code=code,
            server_name=ctx.server_name,
        )
        return outcome
    if attempt.control_final is not None:
        return _compare_pages(attempt, attempt.control_final, lookalikes)
    if outcome.address in ctx.trusted_ips:
        outcome.why = M(
            "{label} answered HTTP {code} (any HTTP reply from the service's own address counts "
            "as reachable)",
            label=label,
            code=code,
        )
        return outcome
    outcome.outcome = INCONCLUSIVE
    outcome.why = M(
        "{label} answered HTTP {code}, but with {no_control} the page cannot be checked",
        label=label,
        code=code,
        no_control=no_control_phrase(ctx),
    )
    return outcome


def _compare_pages(
    attempt: _Chain, control_final: HTTPTransaction, lookalikes: list[Match]
) -> EndpointOutcome:
    outcome, label = attempt.outcome, attempt.label
    code = str(attempt.final.response_code)
    differences = page_differences(attempt.final, control_final)
    if differences and lookalikes:
        # A CAPTCHA, a CDN challenge or a stock server page: it differs from the control's
        # page because the server (or its CDN) answered this network otherwise, which is
        # not what a censor's page looks like.
        outcome.outcome = INCONCLUSIVE
        outcome.fingerprints = list(dict.fromkeys(m.name for m in lookalikes))
        outcome.why = M(
            "{label} answered HTTP {code} with a known look-alike page (fingerprint "
            "{names}: a CAPTCHA, CDN challenge or stock server page, never a blockpage); it "
            "differs from the control's ({difference}), which alone is no evidence of blocking",
            label=label,
            code=code,
            names=name_list(outcome.fingerprints),
            difference=differences[0],
        )
        return outcome
    if differences:
        outcome.outcome, outcome.blocking = BLOCKED, HTTP_DIFF
        outcome.why = M(
            "the page from {label} differs from the control's: {differences}",
            label=label,
            differences=Clauses(tuple(differences)),
        )
        return outcome
    outcome.proves_address = True
    outcome.why = M(
        "{label} answered HTTP {code}, the same page as at the control", label=label, code=code
    )
    return outcome


def _scope_word(matches: Sequence[Match]) -> Msg:
    best = next((m for m in matches if m.confirmed), matches[0])
    return SCOPE_WORDS.get(best.scope, SCOPE_WORDS["vbw"])


@dataclass(frozen=True, slots=True)
class FingerprintWords:
    """How a kind of fingerprint match is named (a DNS answer, a page), in whole phrases: a
    local one with its scope adjective, a foreign one with the countries it is used in."""

    local: Callable[[Msg, Names], Msg]
    foreign: Callable[[Names, Names | str, str], Msg]


ADDRESS_WORDS = FingerprintWords(
    lambda scope, names: M(
        "a known {scope} blocking address (fingerprint {names})", scope=scope, names=names
    ),
    lambda names, countries, here: M(
        "a blocking address used in {countries} (fingerprint {names}; this probe is in "
        "{here}, so it confirms nothing here)",
        countries=countries,
        names=names,
        here=here,
    ),
)
BLOCKPAGE_WORDS = FingerprintWords(
    lambda scope, names: M(
        "a known {scope} blockpage (fingerprint {names})", scope=scope, names=names
    ),
    lambda names, countries, here: M(
        "a known blockpage used in {countries} (fingerprint {names}; this probe is in "
        "{here}, so it confirms nothing here)",
        countries=countries,
        names=names,
        here=here,
    ),
)


def fingerprint_words(
    matches: Sequence[Match], words: FingerprintWords, probe_cc: str | None
) -> Msg:
    """How matched rows are named: e.g. `a known national blockpage (fingerprint X)`; when
    every row is another country's, `a known blockpage used in IR (fingerprint X; this probe
    is in IT, so it confirms nothing here)`."""
    names = name_list(list(dict.fromkeys(m.name for m in matches)))
    local = [m for m in matches if not m.foreign]
    if local:
        return words.local(_scope_word(local), names)
    countries = sorted({c for m in matches for c in m.countries})
    # (`Names` of no country would say "nothing"; the English has always said "")
    return words.foreign(names, Names.of(countries) if countries else "", (probe_cc or "").upper())


def control_fetched(ctx: Context) -> bool | None:
    """Did the control's own fetch of the target's URL succeed? (None: it fetched nothing.)
    The last resort for a step the control has no counterpart for, e.g. a redirect hop."""
    if ctx.control is None or not ctx.control.obs.requests:
        return None
    url = ctx.target.url
    final, failure = ctx.control.final_http(None, url)
    if final is not None:
        return True
    return False if failure else None
