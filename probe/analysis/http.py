"""HTTP: OONI's Web Connectivity comparison of two pages (`http_differences`), and the judgement
of each redirect chain of an endpoint flow."""

from __future__ import annotations

from collections.abc import Sequence
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
    differences: list[str] = []
    control_code = control.response_code or 0
    if probe.response_code != control.response_code and control_code < 500:
        differences.append(
            f"status {probe.response_code} here but {control.response_code} at the control"
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
                differences.append(f"body {probe_len} bytes here but {control_len} at the control")
    probe_words, control_words = _title_words(title_of(probe)), _title_words(title_of(control))
    if control_words:
        checks.append(bool(probe_words & control_words))
        if not checks[-1]:
            differences.append(
                f"title {title_of(probe)!r} here but {title_of(control)!r} at the control"
            )
    probe_headers, control_headers = _uncommon_headers(probe), _uncommon_headers(control)
    if probe_headers or control_headers:
        checks.append(bool(probe_headers & control_headers))
    if differences and (not checks or not any(checks)):
        return differences
    if any(d.startswith("status") for d in differences):
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
    label: str
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
        outcome.evidence = f"{attempt.label} recorded no HTTP response"
        return outcome
    outcome.reached = REACHED_RESPONSE if attempt.redirected else REACHED_PAGE
    final_matches = ctx.db.match_http(final, probe_cc=ctx.probe_cc)
    matches = [m for r in chain[:-1] for m in ctx.db.match_http(r, probe_cc=ctx.probe_cc)]
    blocking_matches = [m for m in matches + final_matches if not m.false_positive]
    if blocking_matches and not verified_tls:
        outcome.outcome, outcome.blocking = BLOCKED, HTTP_DIFF
        outcome.confirmed = any(m.confirmed for m in blocking_matches)
        outcome.fingerprints = list(dict.fromkeys(m.name for m in blocking_matches))
        outcome.evidence = (
            f"{attempt.label} answered HTTP {final.response_code} with a known "
            f"{fingerprint_words(blocking_matches, 'blockpage', ctx.probe_cc)}"
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
        outcome.evidence = (
            f"{attempt.label} redirected to {final.location or 'a private address'}, which the "
            "control was not sent to"
        )
        return outcome
    control_ok = (
        True if attempt.control_final is not None else (False if attempt.control_failure else None)
    )
    if operation == failures.RESOLVE:
        what = f"resolving the redirect target {final.location}"
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
        "the HTTP exchange",
        control_ok,
        True,
        reached,
    )


def _judge_page(attempt: _Chain, verified_tls: bool, lookalikes: list[Match]) -> EndpointOutcome:
    """A chain that ended in a response and matched no blockpage: a redirect, a page over
    verified TLS, or a page compared with the control's."""
    ctx, outcome, label = attempt.ctx, attempt.outcome, attempt.label
    code = attempt.final.response_code
    if attempt.redirected:
        where = attempt.final.location or "?"
        outcome.evidence = f"{label} answered HTTP {code}, a redirect to {where}"
        return outcome
    if verified_tls:
        outcome.evidence = f"{label} answered HTTP {code} over TLS verified for {ctx.server_name}"
        return outcome
    if attempt.control_final is not None:
        return _compare_pages(attempt, attempt.control_final, lookalikes)
    if outcome.address in ctx.trusted_ips:
        outcome.evidence = (
            f"{label} answered HTTP {code} (any HTTP reply from the service's own address counts "
            "as reachable)"
        )
        return outcome
    outcome.outcome = INCONCLUSIVE
    outcome.evidence = (
        f"{label} answered HTTP {code}, but with {no_control_phrase(ctx)} "
        "the page cannot be checked"
    )
    return outcome


def _compare_pages(
    attempt: _Chain, control_final: HTTPTransaction, lookalikes: list[Match]
) -> EndpointOutcome:
    outcome, label = attempt.outcome, attempt.label
    code = attempt.final.response_code
    differences = http_differences(attempt.final, control_final)
    if differences and lookalikes:
        # A CAPTCHA, a CDN challenge or a stock server page: it differs from the control's
        # page because the server (or its CDN) answered this network otherwise, which is
        # not what a censor's page looks like.
        outcome.outcome = INCONCLUSIVE
        outcome.fingerprints = list(dict.fromkeys(m.name for m in lookalikes))
        outcome.evidence = (
            f"{label} answered HTTP {code} with a known look-alike page (fingerprint "
            f"{name_list(outcome.fingerprints)}: a CAPTCHA, CDN challenge or stock server "
            f"page, never a blockpage); it differs from the control's ({differences[0]}), "
            "which alone is no evidence of blocking"
        )
        return outcome
    if differences:
        outcome.outcome, outcome.blocking = BLOCKED, HTTP_DIFF
        outcome.evidence = f"the page from {label} differs from the control's: " + "; ".join(
            differences
        )
        return outcome
    outcome.proves_address = True
    outcome.evidence = f"{label} answered HTTP {code}, the same page as at the control"
    return outcome


def _scope_word(matches: Sequence[Match]) -> str:
    best = next((m for m in matches if m.confirmed), matches[0])
    return SCOPE_WORDS.get(best.scope, "filtering")


def fingerprint_words(matches: Sequence[Match], thing: str, probe_cc: str | None) -> str:
    """How matched rows are named: e.g. `national blockpage (fingerprint X)`; when every row
    is another country's, `blockpage used in IR (fingerprint X; this probe is in IT, so it
    confirms nothing here)`."""
    names = name_list(list(dict.fromkeys(m.name for m in matches)))
    local = [m for m in matches if not m.foreign]
    if local:
        return f"{_scope_word(local)} {thing} (fingerprint {names})"
    countries = ", ".join(sorted({c for m in matches for c in m.countries}))
    here = (probe_cc or "").upper()
    return (
        f"{thing} used in {countries} (fingerprint {names}; this probe is in {here}, so it "
        "confirms nothing here)"
    )


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
