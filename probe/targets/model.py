"""The target model: `Target`, `TargetList`, and the one wire format of a target.

The wire format of a target is its ``[[targets]]`` table as JSON (docs/targets.md): the same
keys, values and defaults as in a list. Records carry it as ``test_keys.target``, the probe sends
it to the control server, and the control server reads it back with `Target.from_wire`, which
checks it with the list loader's own checks (`probe.targets.checks`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from os import PathLike
from pathlib import Path
from typing import Any

from probe.targets.checks import TargetChecker
from probe.targets.schema import (
    BASELINE_SERVICE,
    CHECKS,
    DEFAULT_TRANSPORTS,
    DOMESTIC_TAG,
    HOST_CHECKS,
    TARGET_KEYS,
    Position,
)
from probe.targets.text import one_line, quote
from probe.urls import url_parts

#: what a control server needs to measure a target: the rest of its table (`note`, `tags`,
#: `expect_asn`, and `ca`, a file of this machine whose certificates travel as PEM) stays here
MEASURE_KEYS = (
    "id", "service", "check", "host", "url", "ports", "sni", "transports", "dc", "quic",
    "stun_port",
)  # fmt: skip
#: limits on untrusted wire input (a list has none: it is read whole, up to MAX_LIST_BYTES)
MAX_WIRE_CHARS = 2048  # any one string
MAX_WIRE_ITEMS = 64  # any one array
MAX_WIRE_KEYS = 32  # in one target (a list's has at most 15, the rest are ``x_`` extensions)
MAX_WIRE_INTEGER = 2**63  # any one number, in absolute value
#: problems quoted in one TargetWireError (the rest are counted)
_MAX_WIRE_PROBLEMS = 3


class TargetWireError(ValueError):
    """A target received on the wire is not valid; the message says why, on one line."""


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
    #: mtproto: the DC id for obfuscated2's header (negative: media-only DC); None: not sent
    dc: int | None = None
    #: tls/https: also a QUIC handshake (UDP, ALPN h3) to each address and port
    quic: bool = False
    #: dns: also a STUN Binding request (UDP) to each resolved address on this port
    stun_port: int | None = None
    ca: str | None = None  # absolute path of this target's extra roots (PEM)
    note: str | None = None
    tags: tuple[str, ...] = ()
    list_name: str = ""
    #: the target's table as written in the list (for the record); not part of equality.
    #: None: written exactly as its fields give it (`_table()`), so not kept twice (the loader
    #: leaves it out then: a list of 100,000 targets is held for a whole round); {}: unknown.
    definition: dict[str, Any] | None = field(default_factory=dict, compare=False, hash=False)

    @property
    def hostname(self) -> str:
        """The name (or IP literal) this target resolves or connects to."""
        if self.host is not None:
            return self.host
        return _url_hostname(self.url or "")

    @property
    def is_baseline(self) -> bool:
        return self.service == BASELINE_SERVICE

    @property
    def is_domestic(self) -> bool:
        """A domestic baseline (tagged `domestic`): a site inside the country, reachable
        during shutdowns; it tells "cut off from abroad" from "offline"."""
        return self.is_baseline and DOMESTIC_TAG in self.tags

    def endpoint_ports(self) -> tuple[int, ...]:
        """Ports measured: the list's `ports`, or the URL's port for http/https."""
        if self.url is not None:
            return (_url_port(self.url),)
        return self.ports

    def to_wire(self, keys: Iterable[str] | None = None) -> dict[str, Any]:
        """The target's table as JSON: as written in its list when it came from one (what a
        record carries), else built from the fields. Only `keys` when given (e.g. MEASURE_KEYS).
        A fresh dict each call: the caller may change it."""
        table = self.definition or self._table()  # {} and None: from the fields
        wanted = TARGET_KEYS if keys is None else tuple(keys)
        return {
            key: list(value) if isinstance(value, list) else value
            for key, value in table.items()
            if key in wanted
        }

    def table_as_written(self) -> dict[str, Any]:
        """The target's table as its list wrote it (what a record carries), a fresh dict; {}
        for a target built without one."""
        if self.definition is None:
            return self._table()
        return dict(self.definition)

    def _table(self) -> dict[str, Any]:
        """The target's table built from its fields (defaults written out)."""
        table: dict[str, Any] = {"id": self.id, "service": self.service, "check": self.check}
        if self.host is not None:
            table["host"] = self.host
        if self.url is not None:
            table["url"] = self.url
        if self.ports and self.check in HOST_CHECKS and self.check != "dns":
            table["ports"] = list(self.ports)
        # one test per key, not a dict and a generator: a record asks for this table twice
        if self.sni is not None:
            table["sni"] = self.sni
        if self.dc is not None:
            table["dc"] = self.dc
        if self.stun_port is not None:
            table["stun_port"] = self.stun_port
        if self.ca is not None:
            table["ca"] = self.ca
        if self.note is not None:
            table["note"] = self.note
        if self.expect_asn:
            table["expect_asn"] = list(self.expect_asn)
        if self.check == "mtproto" and self.transports:
            table["transports"] = list(self.transports)
        if self.quic:
            table["quic"] = True
        if self.tags:
            table["tags"] = list(self.tags)
        return table

    @classmethod
    def from_wire(
        cls,
        table: object,
        *,
        list_name: str = "",
        ca_dir: str | PathLike[str] | None = None,
    ) -> Target:
        """A target from its table received as JSON, checked like a list's (it may come from
        anyone). Keys starting with ``x_`` are left to the caller; `service` may be left out
        (it is the id's prefix). `ca` is a file name relative to `ca_dir`; without `ca_dir` a
        `ca` is refused: a file named by someone else is never opened. Raises TargetWireError
        (a ValueError) and nothing else, whatever `table` is."""
        return target_from_wire(table, list_name=list_name, ca_dir=ca_dir)


# A target's URL is asked for its host and port several times per measurement (runner, flow,
# record, control): cached here, so that a call costs no Python frame at all.
@lru_cache(maxsize=4096)
def _url_hostname(url: str) -> str:
    return url_parts(url).hostname or ""


@lru_cache(maxsize=4096)
def _url_port(url: str) -> int:
    parts = url_parts(url)
    return parts.checked_port() or (443 if parts.split.scheme == "https" else 80)


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


def target_endpoints(target: Target) -> list[str]:
    """What a target measures, for people: the url, the host (dns), or each host:port."""
    if target.url is not None:
        return [target.url]
    host = target.host or ""
    if target.check == "dns" or not target.ports:
        return [host]
    shown = f"[{host}]" if ":" in host else host
    return [f"{shown}:{port}" for port in target.ports]


def describe_targets(targets: Iterable[Target]) -> list[str]:
    """One aligned line per target: id, check, endpoints (what `probe targets list` prints)."""
    rows = [(t.id, t.check, " ".join(target_endpoints(t))) for t in targets]
    id_width = max((len(r[0]) for r in rows), default=0)
    check_width = max((len(r[1]) for r in rows), default=0)
    return [f"{i:<{id_width}}  {c:<{check_width}}  {e}" for i, c, e in rows]


# --- the wire format, read ----------------------------------------------------------------


def target_from_wire(
    table: object, *, list_name: str = "", ca_dir: str | PathLike[str] | None = None
) -> Target:
    """`Target.from_wire` (which see)."""
    if not isinstance(table, dict):
        raise TargetWireError("a target must be an object")
    problems: list[str] = []
    checked = _wire_table(table, problems)
    fields = None
    if not problems:
        where = Path(ca_dir) if ca_dir is not None else None
        checker = TargetChecker(lambda at, message: problems.append(_keyed(at, message)), where)
        fields = checker.check((), checked)
    if fields is None:
        raise TargetWireError(_wire_message(table, problems))
    definition = {key: value for key, value in checked.items() if key in TARGET_KEYS}
    return Target(**fields, list_name=list_name, definition=definition)


def _wire_table(table: dict[Any, Any], problems: list[str]) -> dict[str, Any]:
    """`table` without its ``x_`` keys, with the wire's own limits checked (string keys, sizes)
    and the old control client's ways (no `service`; ``"ports": []`` for dns) read as a list
    would have them."""
    out: dict[str, Any] = {}
    if len(table) > MAX_WIRE_KEYS:
        problems.append(f"over {MAX_WIRE_KEYS} keys")
        return out
    for key, value in table.items():
        if not isinstance(key, str):
            problems.append(f"keys must be strings, not {type(key).__name__}")
        elif not key.startswith("x_"):
            problem = _size_problem(value)
            if problem:
                problems.append(f"{quote(key)} {problem}")
            out[key] = list(value) if isinstance(value, list) else value
    if problems:
        return out
    target_id = out.get("id")
    if "service" not in out and isinstance(target_id, str) and "/" in target_id:
        out["service"] = target_id.split("/", 1)[0]
    check = out.get("check")
    if isinstance(check, str) and check not in CHECKS:  # the control's own words since 0.1
        problems.append(f"unknown check {quote(check)} (known: {', '.join(CHECKS)})")
    if check == "dns" and out.get("ports") == []:
        del out["ports"]
    return out


def _keyed(where: Position, message: str) -> str:
    """A problem of one key, led by that key: ``ports: port 0 out of range 1..65535``."""
    if where and where[0] in TARGET_KEYS:
        return f"{where[0]}: {message}"
    return message


def _size_problem(value: Any) -> str | None:
    items = value if isinstance(value, list) else [value]
    if len(items) > MAX_WIRE_ITEMS:
        return f"has over {MAX_WIRE_ITEMS} items"
    for item in items:
        if isinstance(item, str) and len(item) > MAX_WIRE_CHARS:
            return f"is over {MAX_WIRE_CHARS} characters"
        if isinstance(item, int) and not -MAX_WIRE_INTEGER <= item <= MAX_WIRE_INTEGER:
            return "holds a number out of range"
    return None


def _wire_message(table: dict[Any, Any], problems: list[str]) -> str:
    target_id = table.get("id")
    named = f"target {quote(target_id)}" if isinstance(target_id, str) else "target"
    shown = "; ".join(problems[:_MAX_WIRE_PROBLEMS])
    more = len(problems) - _MAX_WIRE_PROBLEMS
    return one_line(f"{named}: {shown}" + (f" (and {more} more)" if more > 0 else ""))
