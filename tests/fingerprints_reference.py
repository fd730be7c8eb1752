"""Today's matching (before the body index of 2026-12-06), kept only for the tests: every body
pattern searched on every body, header patterns in order; the index must give the same."""

from __future__ import annotations

from probe.analysis.fingerprints import BODY_MATCH_LIMIT, Fingerprint, FingerprintDB, Match
from probe.analysis.fingerprints.rows import _settle_countries
from probe.observations import HTTPTransaction


def reference_match_http(
    db: FingerprintDB, transaction: HTTPTransaction, probe_cc: str | None = None
) -> list[Match]:
    if transaction.response_code is None:
        return []
    hits: list[Fingerprint] = []
    body = (transaction.body or "")[:BODY_MATCH_LIMIT]
    if body:
        hits.extend(fp for fp in db.fingerprints if fp.location == "body" and fp.matches(body))
    for name, value in transaction.response_headers:
        for fp in db.fingerprints:
            if fp.location == "header." + name.lower() and fp.matches(value) and fp not in hits:
                hits.append(fp)
    return _settle_countries([fp.match(probe_cc) for fp in hits])
