"""The test suite's network guard, inside `probe` subprocesses started by tests/test_hostile.py.

Python imports `sitecustomize` at startup from the path; the tests put this directory on
PYTHONPATH and set PROBE_TEST_GUARD=1. Every connect/sendto outside loopback and the lab
range, and every system-resolver lookup of a name other than localhost, is refused before
any packet leaves and reported on stderr, where the test looks for it.
"""

from __future__ import annotations

import os
import sys

if os.environ.get("PROBE_TEST_GUARD") == "1":
    from tests import netguard

    class _Loud(list):  # type: ignore[type-arg]
        def append(self, item: object) -> None:
            sys.stderr.write(f"NETWORK GUARD VIOLATION: {item}\n")
            sys.stderr.flush()
            super().append(item)

    netguard.violations = _Loud()
    netguard.install()
