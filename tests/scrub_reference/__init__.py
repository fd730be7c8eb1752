"""The scrubber as it was before the per-record fast paths (probe/vantage/scrub at b799bb5),
kept only as the reference `tests/test_scrub_differential.py` compares today's with: any
difference in a scrubbed record, its report or a scrubbed text is a regression."""

from tests.scrub_reference.scrubber import Scrubber

__all__ = ["Scrubber"]
