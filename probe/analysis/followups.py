"""The follow-up checks' findings in a verdict's reason (docs/verdicts.md "Throttling" and
"Where is the censor"). Pure.

A throttling check (`x_throttle`) or a TTL sweep (`x_censor_location`) in a record leaves the
status and blocking alone: a throttled service still answers, and a censor's distance says
where, not whether. They add one clause each to the reason, judged again from the stored
samples, so `probe analyze` gives the same sentence.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from probe.analysis.vocabulary import Analysis
from probe.i18n.message import M, Msg, sentence


def throttle_clause(x_throttle: Any) -> Msg | None:
    if not isinstance(x_throttle, dict):
        return None
    from probe.analysis.throttle import THROTTLED, judge_throttle  # few records have one

    judged = judge_throttle(x_throttle)
    if judged.verdict != THROTTLED or judged.median_ratio is None or judged.p_value is None:
        return None
    percent = round(100 * judged.median_ratio)
    p_value = format(judged.p_value, ".3f")
    return M(
        "throttled: downloads with its name reached {percent} percent of the speed of the same "
        "downloads with a neutral name ({slower} of {pairs} pairs slower, p = {p}).",
        percent=percent,
        slower=judged.slower_pairs,
        pairs=judged.usable_pairs,
        p=p_value,
    )


def location_clause(x_censor_location: Any) -> Msg | None:
    if not isinstance(x_censor_location, dict):
        return None
    from probe.analysis.censor_location import AT_ENDPOINT, CENSOR_HOP, locate  # few have one

    found = locate(x_censor_location)
    if found["location"] == CENSOR_HOP:
        return M(
            "the interference starts {hops} hops away, before the server ({trigger} probes "
            "with a limited TTL).",
            hops=found["censor_hop"],
            trigger=str(x_censor_location.get("trigger")),
        )
    if found["location"] == AT_ENDPOINT:
        return M(
            "the interference comes from the server's distance ({hops} hops): the server "
            "itself or a box beside it.",
            hops=found["endpoint_hop"],
        )
    return None


def amend(analysis: Analysis, test_keys: dict[str, Any]) -> Analysis:
    """`analysis` with the follow-ups' clauses added to its reason (the same object when
    there are none); `test_keys["verdict"]` is rewritten to match."""
    clauses = [
        clause
        for clause in (
            throttle_clause(test_keys.get("x_throttle")),
            location_clause(test_keys.get("x_censor_location")),
        )
        if clause is not None
    ]
    if not clauses:
        return analysis
    verdict = replace(analysis.verdict, message=sentence(analysis.verdict.message, *clauses))
    test_keys["verdict"] = verdict.to_dict()
    return replace(analysis, verdict=verdict)
