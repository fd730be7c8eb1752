"""Fixtures of the censorship lab: one lab per test session, shared by every scenario.

The lab needs root, `ip` and `nft`. Without them its tests skip with the reason, except when
CI=true: then they fail, so that a CI that silently stopped running the lab is noticed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.lab.lab import Lab, lab_unavailable_reason, probe_supports, skip_or_fail
from tests.lab.topology import unregister


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    reason = lab_unavailable_reason()
    if reason:
        skip_or_fail(reason)
    workdir = tmp_path_factory.mktemp("plab")
    running = Lab(workdir)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        unregister(running.topology)  # logs and nft rules stay in workdir (pytest's tmp)


@pytest.fixture(scope="session")
def lab_with_control(lab: Lab) -> Lab:
    """The lab plus the project's control server, for running the real `probe run`."""
    missing = [
        " ".join(command)
        for command in (("run",), ("control", "serve"))
        if not probe_supports(*command)
    ]
    if missing:
        skip_or_fail(f"the probe has no `probe {'` or `probe '.join(missing)}` yet")
    if lab.control is None:
        lab.start_control()
    return lab
