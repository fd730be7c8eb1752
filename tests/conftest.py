from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

from tests import netguard

netguard.install()

# Unattended runs consent with PROBE_ACCEPT_RISKS=1 (probe/cli/consent.py): every `probe run`
# the tests start inherits it. tests/test_consent.py takes it away to test the first run.
os.environ.setdefault("PROBE_ACCEPT_RISKS", "1")

# The tests never write to the user's cache directory (probe/paths.py): this session, and every
# `probe` it starts (they inherit the environment), caches the parsed fingerprint files in a
# directory of its own, removed at the end. tests/test_fingerprint_cache.py uses its own.
_CACHE_DIR = tempfile.mkdtemp(prefix="probe-tests-cache-")
os.environ["PROBE_CACHE_DIR"] = _CACHE_DIR
atexit.register(shutil.rmtree, _CACHE_DIR, ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "schedulers(*names): the stand-in schedulers of tests/test_schedule.py"
    )


@pytest.fixture(autouse=True)
def _network_guard():
    """Fail any test that tried to reach an address outside loopback and the lab range."""
    netguard.violations.clear()
    yield
    if netguard.violations:
        found = list(netguard.violations)
        netguard.violations.clear()
        pytest.fail("; ".join(found[:5]))
