"""When to try a record again after a failed upload: exponential backoff with full jitter
(a uniformly random wait between 0 and min(cap, base * 2**(attempts - 1))), so that many
volunteers whose uploads failed together (the collector was down) do not all come back in
the same minute. The time of the next attempt is stored in the spool: it survives the
process and reboots."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

BASE_SECONDS = 60.0
CAP_SECONDS = 6 * 3600.0


@dataclass(slots=True)
class Backoff:
    base: float = BASE_SECONDS
    cap: float = CAP_SECONDS
    rng: random.Random = field(default_factory=random.SystemRandom)

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the `attempts`-th failed attempt (1 for the first)."""
        ceiling = min(self.cap, self.base * 2.0 ** min(max(attempts - 1, 0), 60))
        return self.rng.uniform(0.0, ceiling)
