"""Today's matching (before the body index of 2026-12-06), kept only for the tests: every body
pattern searched on every body, header patterns in order; the index must give the same."""

from __future__ import annotations

import json
from pathlib import Path

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


def fixture_bodies() -> list[str]:
    """Response bodies in the OONI measurements under tests/data (real pages, blockpages)."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            body = node.get("body")
            if isinstance(body, str) and body:
                found.append(body)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in sorted(Path(__file__).parent.joinpath("data", "ooni").rglob("*.json")):
        walk(json.loads(path.read_text(encoding="utf-8")))
    return found
