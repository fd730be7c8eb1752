from __future__ import annotations

import pytest

from tests import netguard

netguard.install()


@pytest.fixture(autouse=True)
def _network_guard():
    """Fail any test that tried to reach an address outside loopback and the lab range."""
    netguard.violations.clear()
    yield
    if netguard.violations:
        found = list(netguard.violations)
        netguard.violations.clear()
        pytest.fail("; ".join(found[:5]))
