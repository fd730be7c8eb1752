"""A test PKI made with trustme: one trusted CA and the certificates the TLS tests serve.

Generating keys is the slow part, so everything is made once per process (`make_pki()` is
cached) and exposed as session-scoped fixtures. Import the fixtures into a test module with
``from tests.servers.certs import pki, pki_ca_file  # noqa: F401``.

- `good`: test.localhost, localhost, *.test.localhost, 127.0.0.1, ::1 — signed by the test CA
- `chained`: the same names, signed by an intermediate CA (the server sends leaf + intermediate)
- `wrong_name`: wrong.localhost only
- `expired`: the good names, valid from 2020-01-01 to 2021-01-01
- `unknown_ca`: the good names, signed by a CA nobody trusts
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

GOOD_NAMES = ("test.localhost", "localhost", "*.test.localhost", "127.0.0.1", "::1")
WRONG_NAME = "wrong.localhost"


@dataclass(frozen=True)
class TestPKI:
    __test__ = False  # not a pytest test class

    ca: trustme.CA
    intermediate: trustme.CA
    good: trustme.LeafCert
    chained: trustme.LeafCert
    wrong_name: trustme.LeafCert
    expired: trustme.LeafCert
    unknown_ca: trustme.LeafCert
    other_ca: trustme.CA

    def write_ca_file(self, directory: Path) -> str:
        """Write the test CA's certificate as PEM into `directory`; return the path."""
        path = directory / "test-ca.pem"
        self.ca.cert_pem.write_to_path(str(path))
        return str(path)


@functools.cache
def make_pki() -> TestPKI:
    ca = trustme.CA(organization_name="probe test CA")
    intermediate = ca.create_child_ca()
    other_ca = trustme.CA(organization_name="probe unknown CA")
    return TestPKI(
        ca=ca,
        intermediate=intermediate,
        good=ca.issue_cert(*GOOD_NAMES),
        chained=intermediate.issue_cert(*GOOD_NAMES),
        wrong_name=ca.issue_cert(WRONG_NAME),
        expired=ca.issue_cert(
            *GOOD_NAMES,
            not_before=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC),
            not_after=datetime.datetime(2021, 1, 1, tzinfo=datetime.UTC),
        ),
        unknown_ca=other_ca.issue_cert(*GOOD_NAMES),
        other_ca=other_ca,
    )


@pytest.fixture(scope="session")
def pki() -> TestPKI:
    return make_pki()


@pytest.fixture(scope="session")
def pki_ca_file(pki: TestPKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Path of a PEM file holding the test CA (for `client_context((path,))`)."""
    yield pki.write_ca_file(tmp_path_factory.mktemp("pki"))
