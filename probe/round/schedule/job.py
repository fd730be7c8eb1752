"""What a schedule runs: the command, where, how often, and where its results go."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: the shortest period a schedule accepts: a round of the bundled lists takes a minute or two
MIN_PERIOD = 300


class ScheduleError(RuntimeError):
    """Installing or removing failed (a scheduler refused); one line for the volunteer."""


@dataclass(frozen=True, slots=True)
class Job:
    every: int  # seconds between rounds
    command: tuple[str, ...]  # argv of one round, already checked by `probe run`'s own checks
    workdir: Path  # where relative paths in `command` were checked
    results: Path  # absolute: where the rounds write

    @property
    def jitter(self) -> int:
        """Up to 10% of the period at random, like `probe run --every`: volunteers on one
        schedule must not all measure in the same second."""
        return max(1, self.every // 10)


def duration_text(seconds: int) -> str:
    """A period as the command line writes it: 90m, 6h, 1d, 330s."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
