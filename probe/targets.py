"""Target lists: the TOML schema (DESIGN.md "Contract: target lists"), loading and validation."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import urlsplit

CHECKS = ("dns", "tcp", "tls", "http", "https", "mtproto")
TRANSPORTS = ("abridged", "intermediate", "padded_intermediate", "obfuscated2")
DEFAULT_TRANSPORTS = ("obfuscated2", "intermediate")
BASELINE_SERVICE = "baseline"


@dataclass(frozen=True, slots=True)
class Target:
    """One target as loaded from a list. `id` is the key of every time series: never rename."""

    id: str
    service: str
    check: str
    host: str | None = None
    url: str | None = None
    ports: tuple[int, ...] = ()
    sni: str | None = None
    expect_asn: tuple[int, ...] = ()
    transports: tuple[str, ...] = DEFAULT_TRANSPORTS
    ca: str | None = None  # absolute path of this target's extra roots (PEM)
    note: str | None = None
    tags: tuple[str, ...] = ()
    list_name: str = ""
    #: the target's table as written in the list (for the record); not part of equality
    definition: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def hostname(self) -> str:
        """The name (or IP literal) this target resolves or connects to."""
        if self.host is not None:
            return self.host
        return urlsplit(self.url or "").hostname or ""

    @property
    def is_baseline(self) -> bool:
        return self.service == BASELINE_SERVICE

    def endpoint_ports(self) -> tuple[int, ...]:
        """Ports measured: the list's `ports`, or the URL's port for http/https."""
        if self.url is not None:
            parts = urlsplit(self.url)
            return (parts.port or (443 if parts.scheme == "https" else 80),)
        return self.ports


@dataclass(frozen=True, slots=True)
class TargetList:
    name: str
    updated: date
    path: str
    sha256: str
    description: str = ""
    targets: tuple[Target, ...] = ()

    def provenance(self) -> dict[str, str]:
        """What a record says about the list it came from."""
        return {"name": self.name, "updated": self.updated.isoformat(), "sha256": self.sha256}
