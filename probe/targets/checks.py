"""The checks of one target table, shared by the list loader and `Target.from_wire`.

A `TargetChecker` reports every problem it finds through a callback, with the position of the
key it concerns (the loader turns positions into line numbers; the wire format ignores them),
and returns the `Target`'s fields when there was none.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from probe.targets.fields import ca_file, ca_problem, host_problem, is_ip, url_problem
from probe.targets.schema import (
    ALLOWED_BY_CHECK,
    ASN_MAX,
    ASN_MIN,
    BOOLEAN_KEYS,
    CHECKS,
    DC_ID_MAX,
    DC_ID_MIN,
    DEFAULT_PORTS,
    DEFAULT_TRANSPORTS,
    HOST_CHECKS,
    INTEGER_ARRAY_KEYS,
    INTEGER_KEYS,
    NAME_PATTERN,
    NAME_RE,
    REQUIRED_KEYS,
    SERVICE_PATTERN,
    SERVICE_RE,
    STRING_ARRAY_KEYS,
    STRING_KEYS,
    TARGET_KEYS,
    TRANSPORTS,
    WHY_NOT_ALLOWED,
    Position,
)
from probe.targets.text import quote, type_name

Report = Callable[[Position, str], None]
_TARGET_KEY_SET = frozenset(TARGET_KEYS)


def report_unknown_keys(
    report: Report, where: Position, keys: Iterable[str], known: Iterable[str], what: str
) -> None:
    """One problem per key of `keys` not in `known`, with a guess at the key meant."""
    known = tuple(known)
    for key in keys:
        if key not in known:
            guess = difflib.get_close_matches(key, known, n=1)
            hint = f' (did you mean "{guess[0]}"?)' if guess else ""
            report((*where, key), f"unknown key {quote(key)} in {what}{hint}")


class TargetChecker:
    """Checks target tables; `ca_dir` anchors relative `ca` paths (None: `ca` is refused)."""

    def __init__(self, report: Report, ca_dir: Path | None) -> None:
        self._report = report
        self.ca_dir = ca_dir
        self.count = 0  # problems reported so far

    def report(self, where: Position, message: str) -> None:
        self.count += 1
        self._report(where, message)

    def id_seen(self, where: Position, target_id: str) -> None:
        """Called once per well-formed id; the loader overrides it to refuse duplicates."""

    # -- the whole table --

    def check(self, at: Position, table: Mapping[str, Any]) -> dict[str, Any] | None:
        """The `Target` fields of `table` (defaults applied, `ca` resolved), or None when a
        problem was reported; `list_name` and `definition` are the caller's."""
        before = self.count
        if not _TARGET_KEY_SET.issuperset(table):  # in C: the usual table has no unknown key
            unknown = [key for key in table if key not in _TARGET_KEY_SET]
            report_unknown_keys(self.report, at, unknown, TARGET_KEYS, "[[targets]]")
        values = self.typed_values(at, table)
        for key in REQUIRED_KEYS:
            if key not in table:
                self.report(at, f"missing required key {quote(key)}")

        service = values.get("service")
        if isinstance(service, str) and not SERVICE_RE.match(service):
            self.report((*at, "service"), f"service {quote(service)} must match {SERVICE_PATTERN}")
            service = None
        target_id = values.get("id")
        if isinstance(target_id, str):
            self.check_id(at, target_id, service)

        check = values.get("check")
        if isinstance(check, str) and check not in CHECKS:
            self.report((*at, "check"), f"check {quote(check)} is not one of {', '.join(CHECKS)}")
        elif isinstance(check, str):
            self.check_by_kind(at, table, values, check)
        if self.count > before:
            return None
        assert isinstance(check, str) and isinstance(target_id, str) and isinstance(service, str)
        return self.fields(values, check)

    def typed_values(self, at: Position, table: Mapping[str, Any]) -> dict[str, Any]:
        """Each known key's value when it has the right type, else None (and a problem)."""
        values: dict[str, Any] = {}
        for key in STRING_KEYS:
            if key in table:
                value = table[key]  # a string as it is: no call for the usual case
                values[key] = (
                    value if isinstance(value, str) else self.expect_string(at, table, key)
                )
        for key in INTEGER_ARRAY_KEYS:
            if key in table:
                values[key] = self.expect_array(at, table, key, int)
        for key in STRING_ARRAY_KEYS:
            if key in table:
                values[key] = self.expect_array(at, table, key, str)
        for key in INTEGER_KEYS:
            if key in table:
                values[key] = self.expect_integer(at, table, key)
        for key in BOOLEAN_KEYS:
            if key in table:
                values[key] = self.expect_boolean(at, table, key)
        return values

    def fields(self, values: dict[str, Any], check: str) -> dict[str, Any]:
        """The checked values as `Target` fields, with the schema's defaults."""
        transports: tuple[str, ...] = ()
        if check == "mtproto":
            transports = tuple(values.get("transports") or DEFAULT_TRANSPORTS)
        ca = values.get("ca")
        return {
            "id": values["id"],
            "service": values["service"],
            "check": check,
            "host": values.get("host"),
            "url": values.get("url"),
            "ports": tuple(values.get("ports") or DEFAULT_PORTS.get(check, ())),
            "sni": values.get("sni"),
            "expect_asn": tuple(values.get("expect_asn") or ()),
            "transports": transports,
            "dc": values.get("dc"),
            "quic": values.get("quic") is True,
            "stun_port": values.get("stun_port"),
            "ca": str(ca_file(ca, self.ca_dir))
            if ca is not None and self.ca_dir is not None
            else None,
            "note": values.get("note"),
            "tags": tuple(values.get("tags") or ()),
        }

    # -- types --

    def expect_string(self, at: Position, table: Mapping[str, Any], key: str) -> str | None:
        value = table[key]
        if isinstance(value, str):
            return value
        self.report((*at, key), f"{quote(key)} must be a string, not {type_name(value)}")
        return None

    def expect_integer(self, at: Position, table: Mapping[str, Any], key: str) -> int | None:
        value = table[key]
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        self.report((*at, key), f"{quote(key)} must be an integer, not {type_name(value)}")
        return None

    def expect_boolean(self, at: Position, table: Mapping[str, Any], key: str) -> bool | None:
        value = table[key]
        if isinstance(value, bool):
            return value
        self.report((*at, key), f"{quote(key)} must be true or false, not {type_name(value)}")
        return None

    def expect_array(
        self, at: Position, table: Mapping[str, Any], key: str, kind: type
    ) -> list[Any] | None:
        value = table[key]
        kind_name = "integers" if kind is int else "strings"
        if not isinstance(value, list):
            self.report(
                (*at, key), f"{quote(key)} must be an array of {kind_name}, not {type_name(value)}"
            )
            return None
        good = True
        for position, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, kind):
                self.report(
                    (*at, key, position),
                    f"{quote(key)} must be an array of {kind_name}, "
                    f"but item {position + 1} is {type_name(item)}",
                )
                good = False
        return value if good else None

    # -- values --

    def check_id(self, at: Position, target_id: str, service: str | None) -> None:
        where = (*at, "id")
        prefix, slash, name = target_id.partition("/")
        if not slash:
            self.report(where, f'id {quote(target_id)} must be "service/name"')
            return
        if service is not None and prefix != service:
            self.report(where, f'id {quote(target_id)} must start with its service "{service}/"')
        if not NAME_RE.match(name):
            self.report(
                where, f'id {quote(target_id)}: the name after "/" must match {NAME_PATTERN}'
            )
        self.id_seen(where, target_id)

    def check_by_kind(
        self, at: Position, table: Mapping[str, Any], values: dict[str, Any], check: str
    ) -> None:
        """The rules that depend on the check: which keys it takes, what their values may be."""
        allowed = ALLOWED_BY_CHECK[check]
        self.check_allowed_keys(at, table, check, allowed)
        if check in HOST_CHECKS:
            self.check_host(at, table, values, check)
        else:
            self.check_url(at, table, values, check)
        if check == "tcp" and "ports" not in table:
            self.report(at, 'missing required key "ports" for check "tcp"')
        ports = values.get("ports")
        if "ports" in allowed and isinstance(ports, list):
            self.check_numbers(at, "ports", ports, (1, 65535), "port", "out of range 1..65535")
        expect_asn = values.get("expect_asn")
        if isinstance(expect_asn, list):
            self.check_numbers(
                at,
                "expect_asn",
                expect_asn,
                (ASN_MIN, ASN_MAX),
                "AS number",
                "is not a valid AS number",
            )
        self.check_optional_values(at, values, allowed)

    def check_allowed_keys(
        self, at: Position, table: Mapping[str, Any], check: str, allowed: set[str]
    ) -> None:
        for key in table:
            if key in TARGET_KEYS and key not in REQUIRED_KEYS and key not in allowed:
                why = WHY_NOT_ALLOWED.get(key, {}).get(check)
                self.report(
                    (*at, key),
                    f"{quote(key)} is not allowed for check {quote(check)}"
                    + (f" ({why})" if why else ""),
                )

    def check_host(
        self, at: Position, table: Mapping[str, Any], values: dict[str, Any], check: str
    ) -> None:
        if "host" not in table:
            self.report(at, f'missing required key "host" for check {quote(check)}')
        host = values.get("host")
        if isinstance(host, str):
            problem = host_problem(host)
            if problem:
                self.report((*at, "host"), f"host {quote(host)} {problem}")
            elif check == "tls" and "sni" not in table and is_ip(host):
                self.report((*at, "host"), 'check "tls" with an IP address host needs "sni"')

    def check_url(
        self, at: Position, table: Mapping[str, Any], values: dict[str, Any], check: str
    ) -> None:
        if "url" not in table:
            self.report(at, f'missing required key "url" for check {quote(check)}')
        url = values.get("url")
        if isinstance(url, str):
            problem = url_problem(url, check)
            if problem:
                self.report((*at, "url"), problem)

    def check_optional_values(
        self, at: Position, values: dict[str, Any], allowed: set[str]
    ) -> None:
        """sni, dc, stun_port, transports, tags and ca, where the check allows them."""
        sni = values.get("sni")
        if "sni" in allowed and isinstance(sni, str):
            problem = host_problem(sni)
            if problem:
                self.report((*at, "sni"), f"sni {quote(sni)} {problem}")
            elif is_ip(sni):
                self.report((*at, "sni"), f"sni {quote(sni)} must be a hostname, not an IP address")
        dc = values.get("dc")
        if (
            "dc" in allowed
            and isinstance(dc, int)
            and (dc == 0 or not DC_ID_MIN <= dc <= DC_ID_MAX)
        ):
            self.report((*at, "dc"), f"dc {dc} is not a DC id ({DC_ID_MIN}..{DC_ID_MAX}, not 0)")
        stun_port = values.get("stun_port")
        if "stun_port" in allowed and isinstance(stun_port, int) and not 1 <= stun_port <= 65535:
            self.report((*at, "stun_port"), f"stun_port {stun_port} out of range 1..65535")
        transports = values.get("transports")
        if "transports" in allowed and isinstance(transports, list):
            self.check_names(at, "transports", transports, TRANSPORTS, "transport")
        tags = values.get("tags")
        if isinstance(tags, list):
            for position, tag in enumerate(tags):
                if not tag.strip():
                    self.report((*at, "tags", position), f"tag {position + 1} is empty")
        ca = values.get("ca")
        if "ca" in allowed and isinstance(ca, str):
            self.check_ca(at, ca)

    def check_ca(self, at: Position, ca: str) -> None:
        if self.ca_dir is None:
            self.report(
                (*at, "ca"),
                f"ca {quote(ca)}: a file cannot be named here (send its certificates instead)",
            )
            return
        problem = ca_problem(ca, self.ca_dir)
        if problem:
            self.report((*at, "ca"), problem)

    def check_numbers(
        self,
        at: Position,
        key: str,
        numbers: list[int],
        bounds: tuple[int, int],
        what: str,
        out_of_range: str,
    ) -> None:
        if not numbers:
            self.report((*at, key), f"{quote(key)} must not be empty")
        low, high = bounds
        seen: set[int] = set()
        for position, number in enumerate(numbers):
            if not low <= number <= high:
                self.report((*at, key, position), f"{what} {number} {out_of_range}")
            elif number in seen:
                self.report((*at, key, position), f"duplicate {what} {number}")
            seen.add(number)

    def check_names(
        self, at: Position, key: str, names: list[str], known: tuple[str, ...], what: str
    ) -> None:
        if not names:
            self.report((*at, key), f"{quote(key)} must not be empty")
        seen: set[str] = set()
        for position, name in enumerate(names):
            if name not in known:
                self.report(
                    (*at, key, position),
                    f"unknown {what} {quote(name)} (known: {', '.join(known)})",
                )
            elif name in seen:
                self.report((*at, key, position), f"duplicate {what} {quote(name)}")
            seen.add(name)
