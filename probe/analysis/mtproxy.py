"""What an MTProxy check means, in plain words: a pure function of `MTProxyCheck`s.

No control server can check a proxy for us (that would send it the secret), so one check
alone cannot tell "blocked here" from "the proxy is down": a proxy `works` or `fails`, and the
reason names the layer and what the failure looks like. Two checks of the same server and port
with different kinds tell more: when one kind gets through and another does not, the proxy is
up and reachable and the network treats the kinds differently — `kind_filtered`
(docs/verdicts.md, "MTProxy links"). A fake-TLS answer without the secret's HMAC
(`mtproxy_fake_tls_mismatch`) says something other than the proxy answered: a wrong secret, or
a middlebox that intercepts TLS to that address.
"""

from __future__ import annotations

from dataclasses import dataclass

from probe import failures
from probe.i18n import C, M, Msg, Names, Raw
from probe.observations.mtproxy import MTProxyCheck

WORKS = "works"
FAILS = "fails"
#: this kind fails while another kind of the same proxy (server and port) works
KIND_FILTERED = "kind_filtered"

KIND_NAMES: dict[str, Msg] = {
    "plain": C("proxy kind", "plain (secret without prefix)"),
    "padded": C("proxy kind", "padded (dd secret)"),
    "fake_tls": C("proxy kind", "fake-TLS (ee secret)"),
}


@dataclass(frozen=True, slots=True)
class ProxyVerdict:
    proxy: str
    kind: str
    status: str  # works | fails | kind_filtered
    reason: Msg


def _timeout_or(failure: str, dropped: Msg, other: Msg) -> Msg:
    return dropped if failures.is_timeout(failure) else other


def _why(check: MTProxyCheck) -> Msg:
    """Why `check` failed, in plain words, from its first address's failure and operation."""
    failure = check.failure or failures.GENERIC_TIMEOUT
    attempt = check.attempts[0] if check.attempts else None
    if attempt is None:
        return M("the proxy's name did not resolve ({failure})", failure=failure)
    operation = attempt.failed_operation
    if operation == failures.CONNECT:
        return _timeout_or(
            failure,
            M("no connection to the proxy: the connection attempt got no answer (dropped)"),
            M("no connection to the proxy ({failure})", failure=failure),
        )
    if failure == failures.MTPROXY_FAKE_TLS_MISMATCH:
        return M(
            "something other than the proxy answered the disguised TLS hello (its answer lacks "
            "the secret's signature): a wrong secret, or a middlebox intercepting TLS"
        )
    if failure == failures.MTPROTO_FOREIGN_REPLY:
        return M("something other than the proxy answered (not its protocol)")
    if failure == failures.CONNECTION_RESET:
        return M("the connection was reset after the first bytes were sent (typical of DPI)")
    if operation == failures.MTPROXY_FAKE_TLS:
        return _timeout_or(
            failure,
            M("the disguised TLS hello got no answer (dropped)"),
            M("the disguised TLS hello failed ({failure})", failure=failure),
        )
    if failure == failures.EOF_ERROR:
        return M("the proxy closed the connection without an answer (wrong secret, or refused)")
    return _timeout_or(
        failure,
        M(
            "the proxy accepted the connection but nothing came back through it (dropped, or "
            "the proxy cannot reach Telegram)"
        ),
        M("the exchange through the proxy failed ({failure})", failure=failure),
    )


def proxy_verdicts(checks: list[MTProxyCheck]) -> list[ProxyVerdict]:
    """One verdict per check, in order. Pure: a function of the checks only."""
    working = {(c.proxy, c.kind) for c in checks if c.success}
    verdicts = []
    for check in checks:
        kind_name = KIND_NAMES.get(check.kind, Raw(check.kind))
        if check.success:
            reason = M("Telegram answered through the proxy ({kind})", kind=kind_name)
            verdicts.append(ProxyVerdict(check.proxy, check.kind, WORKS, reason))
            continue
        others = sorted({kind for proxy, kind in working if proxy == check.proxy})
        if others:
            reason = M(
                "{why}; {others} to the same proxy got through, so this network treats "
                "{kind} differently",
                why=_why(check),
                others=Names.of(KIND_NAMES.get(k, Raw(k)) for k in others),
                kind=kind_name,
            )
            verdicts.append(ProxyVerdict(check.proxy, check.kind, KIND_FILTERED, reason))
        else:
            verdicts.append(ProxyVerdict(check.proxy, check.kind, FAILS, _why(check)))
    return verdicts


def kinds_summary(verdicts: list[ProxyVerdict]) -> tuple[list[str], list[str]]:
    """(kinds that got through, kinds that did not), each sorted, a kind in only one list."""
    through = sorted({v.kind for v in verdicts if v.status == WORKS})
    blocked = sorted({v.kind for v in verdicts if v.status != WORKS} - set(through))
    return through, blocked
