"""Is a target's traffic throttled? Pure judgement of a throttling check's samples
(`test_keys.x_throttle`, probe/steps/throttle.py); the rule is in docs/verdicts.md.

Per pair, the ratio of the target SNI's goodput to the neutral SNI's. "throttled" needs both a
large effect and significance: the median ratio below RATIO_THRESHOLD, and an exact one-sided
sign test over the pairs (how many pairs were slower with the target's SNI) below ALPHA. A
uniformly slow link gives ratios around 1 and is not throttling; too few usable pairs (both
downloads of a pair moved bytes) is inconclusive.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

RATIO_THRESHOLD = 0.3
ALPHA = 0.05
#: with fewer usable pairs even a unanimous sign test cannot reach ALPHA (1/2^4 > 0.05)
MIN_PAIRS = 5

THROTTLED = "throttled"
NOT_THROTTLED = "not_throttled"
INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True, slots=True)
class ThrottleJudgement:
    verdict: str
    usable_pairs: int
    slower_pairs: int
    median_ratio: float | None
    p_value: float | None
    median_ttfb_ratio: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "usable_pairs": self.usable_pairs,
            "slower_pairs": self.slower_pairs,
            "median_ratio": _r(self.median_ratio),
            "p_value": _r(self.p_value),
            "median_ttfb_ratio": _r(self.median_ttfb_ratio),
            "ratio_threshold": RATIO_THRESHOLD,
            "alpha": ALPHA,
        }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def sign_test_p(slower: int, n: int) -> float:
    """One-sided exact sign test: P(X >= slower) for X ~ Binomial(n, 1/2)."""
    total: int = sum(math.comb(n, k) for k in range(slower, n + 1))
    return total / (1 << n)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def judge_throttle(x_throttle: Mapping[str, Any]) -> ThrottleJudgement:
    """The judgement of one stored check (malformed samples are skipped, never raised on)."""
    import statistics  # ~10 M instructions (fractions, decimal, random): not at every start-up

    sni, neutral = x_throttle.get("sni"), x_throttle.get("neutral_sni")
    pairs: dict[int, dict[str, Mapping[str, Any]]] = {}
    samples = x_throttle.get("samples")
    for sample in samples if isinstance(samples, list) else ():
        if not isinstance(sample, Mapping) or not isinstance(sample.get("pair"), int):
            continue
        if sample.get("sni") in (sni, neutral):
            pairs.setdefault(sample["pair"], {})[str(sample["sni"])] = sample
    ratios: list[float] = []
    ttfb_ratios: list[float] = []
    for pair in pairs.values():
        mine, theirs = pair.get(str(sni)), pair.get(str(neutral))
        if mine is None or theirs is None:
            continue
        a, b = _number(mine.get("goodput")), _number(theirs.get("goodput"))
        if a is None or b is None or b == 0:
            continue  # a download that moved no bytes (refused, reset): no speed to compare
        ratios.append(a / b)
        ta, tb = _number(mine.get("t_first_byte")), _number(theirs.get("t_first_byte"))
        if ta is not None and tb:
            ttfb_ratios.append(ta / tb)
    n = len(ratios)
    slower = sum(1 for r in ratios if r < 1)
    if n < MIN_PAIRS:
        return ThrottleJudgement(
            INCONCLUSIVE, n, slower, statistics.median(ratios) if ratios else None, None, None
        )
    median = statistics.median(ratios)
    p = sign_test_p(slower, n)
    verdict = THROTTLED if median < RATIO_THRESHOLD and p < ALPHA else NOT_THROTTLED
    ttfb = statistics.median(ttfb_ratios) if ttfb_ratios else None
    return ThrottleJudgement(verdict, n, slower, median, p, ttfb)
