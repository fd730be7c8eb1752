"""The second pass over one service's records: the service-level facts (`x_service`, see
probe/service.py) added to every record, and the records those facts can change judged again."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from probe.analysis.case import Case
from probe.analysis.fingerprints import FingerprintDB
from probe.analysis.service_rules import (
    EndpointFact,
    TargetVerdict,
    service_facts,
    usable_and_interfered,
)
from probe.analysis.target import analyze, judge
from probe.analysis.vocabulary import INCONCLUSIVE, Analysis


@dataclass(slots=True)
class Judged:
    """One record with its first analysis, and the case it was judged from (None: the case is
    parsed again from the record when it must be judged again)."""

    record: dict[str, Any]
    analysis: Analysis
    case: Case | None = None


def endpoint_facts(target_id: str, check: str, analysis: Analysis) -> list[EndpointFact]:
    """What the service-level rules need of one target's first analysis pass."""
    return [
        EndpointFact(
            target_id,
            check,
            o.address,
            o.outcome,
            o.unexplained_layer if o.outcome == INCONCLUSIVE else None,
            o.failure,
        )
        for o in analysis.endpoints
    ]


def has_unexplained(analysis: Analysis) -> bool:
    """Could the service-level facts change this verdict? (An unexplained failure, no control.)"""
    return any(
        o.outcome == INCONCLUSIVE and o.unexplained_layer is not None for o in analysis.endpoints
    )


def judge_service(
    service: str,
    held: Sequence[Judged | tuple[dict[str, Any], Analysis]],
    fingerprints: FingerprintDB | None = None,
) -> dict[str, Any]:
    """The second pass over all the records of one service in one round (each with its first
    analysis): add the service's facts (`x_service`) to every record, judge again the records
    those facts can change, then say whether the app is usable and interfered with. Updates
    the records in place and returns the facts."""
    items = [h if isinstance(h, Judged) else Judged(*h) for h in held]
    facts_in: list[EndpointFact] = []
    for item in items:
        check = str(_target_of(item.record).get("check") or "")
        facts_in.extend(endpoint_facts(str(item.record.get("input")), check, item.analysis))
    facts = service_facts(service, facts_in, len(items))
    verdicts = []
    for item in items:
        test_keys = item.record["test_keys"]
        test_keys["x_service"] = facts
        if has_unexplained(item.analysis):
            again = _judge_again(item, facts, fingerprints)
            test_keys["x_endpoints"] = [e.to_dict() for e in again.endpoints]
            test_keys["verdict"] = again.verdict.to_dict()
            item.analysis = again  # the final verdict (its reason as a message, for display)
        target = _target_of(item.record)
        tags = target.get("tags")
        verdicts.append(
            TargetVerdict(
                str(item.record.get("input")),
                str(target.get("check") or ""),
                tuple(str(t) for t in tags) if isinstance(tags, list | tuple) else (),
                str(test_keys["verdict"]["status"]),
            )
        )
    facts["usable"], facts["interfered"] = usable_and_interfered(verdicts)
    return facts


def _judge_again(
    item: Judged, facts: dict[str, Any], fingerprints: FingerprintDB | None
) -> Analysis:
    if item.case is None:
        return analyze(item.record, fingerprints)  # the record holds the facts already
    return judge(dataclasses.replace(item.case, service=facts), fingerprints)


def _target_of(record: dict[str, Any]) -> dict[str, Any]:
    test_keys = record.get("test_keys")
    target = test_keys.get("target") if isinstance(test_keys, dict) else None
    return target if isinstance(target, dict) else {}


def reanalyze(record: dict[str, Any], fingerprints: FingerprintDB | None = None) -> dict[str, Any]:
    """The record with `test_keys.verdict` and `test_keys.x_endpoints` recomputed (a copy)."""
    analysis = analyze(record, fingerprints)
    out = dict(record)
    test_keys = dict(out.get("test_keys") or {})
    test_keys["verdict"] = analysis.verdict.to_dict()
    test_keys["x_endpoints"] = [e.to_dict() for e in analysis.endpoints]
    out["test_keys"] = test_keys
    return out
