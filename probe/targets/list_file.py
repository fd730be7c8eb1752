"""One target-list file: decode it, parse its TOML, check its `[list]` table and every
`[[targets]]` table, and build the list's `Target`s from the tables that pass.

`FileChecker` collects every problem of the file as (line, message) pairs, the line looked up
only when a problem is reported (`Place` defers it for the places ids and list names were
first defined). Which files to read, ids unique across files, and turning the pairs into
``file:line: message`` lines is `probe.targets.loader`'s part.
"""

from __future__ import annotations

import hashlib
import sys
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from probe.i18n.message import M, Said
from probe.targets.checks import TargetChecker, report_unknown_keys
from probe.targets.model import Target, TargetList
from probe.targets.plain_toml import parse_plain
from probe.targets.positions import scan_positions, toml_error
from probe.targets.schema import LIST_KEYS, NAME_PATTERN, NAME_RE, Position
from probe.targets.text import jsonable, quote, type_name

if TYPE_CHECKING:
    from probe.targets.loader import Loader


class Place:
    """Where an id or a list name was first defined, as "file:line" when formatted. The line is
    looked up only then: finding the line of every key of a file costs ~25 us a target (a third
    of loading a list), and a clean list never needs one."""

    __slots__ = ("checker", "where")

    def __init__(self, checker: FileChecker, where: Position) -> None:
        self.checker = checker
        self.where = where

    def __str__(self) -> str:
        return f"{self.checker.path}:{self.checker.line_of(self.where)}"


class ListTargetChecker(TargetChecker):
    """The target checks, plus ids unique across every list loaded together."""

    def __init__(self, file: FileChecker) -> None:
        super().__init__(file.report, Path(file.path).parent)
        self.file = file

    def id_seen(self, where: Position, target_id: str) -> None:
        file = self.file
        first = file.loader.ids.get(target_id) or file.new_ids.get(target_id)
        if first is not None:
            self.report(where, f"duplicate id {quote(target_id)} (first at {first})")
        else:
            file.new_ids[target_id] = Place(file, where)


class FileChecker:
    """Checks one list file; collects (line, message) problems."""

    def __init__(self, path: str, data: bytes, loader: Loader) -> None:
        self.path = path
        self.data = data
        self.loader = loader
        self.problems: list[tuple[int, str]] = []
        self.text: str | None = None  # once it parsed as TOML: the lines of keys are in it
        self._lines: dict[Position, int] | None = None
        self.target_list: TargetList | None = None
        self.new_ids: dict[str, Place] = {}
        self.new_list_names: dict[str, Place] = {}

    # -- reporting --

    def report_at(self, line: int, message: str) -> None:
        self.problems.append((line, message))

    def report(self, where: Position, message: str) -> None:
        self.report_at(self.line_of(where), message)

    @property
    def lines(self) -> dict[Position, int]:
        """The line of each table, key and array element (scanned on first use)."""
        if self._lines is None:
            self._lines = scan_positions(self.text) if self.text is not None else {}
        return self._lines

    def line_of(self, where: Position) -> int:
        """The line of `where`, or of its closest enclosing table/array that has one."""
        lines = self.lines
        while where:
            if where in lines:
                return lines[where]
            where = where[:-1]
        return 1

    # -- the whole file --

    def run(self) -> None:
        try:
            text = self.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = self.data[: exc.start].count(b"\n") + 1
            self.report_at(line, Said(M("not UTF-8 text (byte {byte})", byte=exc.start + 1)))
            return
        text = text.removeprefix("\ufeff")
        document = parse_plain(text)
        if document is None:
            # Imported here: a list of the plain shape (the usual one) never needs tomllib.
            import tomllib

            try:
                document = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                line, message = toml_error(exc, text)
                self.report_at(line, Said(M("invalid TOML: {message}", message=message)))
                return
        self.text = text
        self.check_document(document)

    def check_document(self, document: dict[str, Any]) -> None:
        for key in document:
            if key not in ("list", "targets"):
                self.report(
                    (key,),
                    f"unknown key {quote(key)} at top level (expected [list] and [[targets]])",
                )
        list_table = document.get("list")
        header: tuple[str, date, str] | None = None
        if list_table is None:
            self.report_at(1, "missing [list] table")
        elif not isinstance(list_table, dict):
            self.report(("list",), f'"list" must be a table, not {type_name(list_table)}')
        else:
            header = self.check_list_table(list_table)
        targets = self.check_targets(document.get("targets"), header[0] if header else "")
        if header is not None and not self.problems:
            name, updated, description = header
            self.target_list = TargetList(
                name=name,
                updated=updated,
                path=self.path,
                sha256=hashlib.sha256(self.data).hexdigest(),
                description=description,
                targets=tuple(targets),
            )

    def check_targets(self, raw_targets: Any, list_name: str) -> list[Target]:
        """The targets of the ``[[targets]]`` array that passed every check."""
        if raw_targets is None:
            self.report_at(1, "no [[targets]] in this list")
            return []
        if not isinstance(raw_targets, list) or not all(isinstance(t, dict) for t in raw_targets):
            self.report(
                ("targets",),
                f'"targets" must be an array of tables ([[targets]]), not {type_name(raw_targets)}',
            )
            return []
        if not raw_targets:
            self.report(("targets",), "no [[targets]] in this list")
            return []
        checker = ListTargetChecker(self)
        targets: list[Target] = []
        for index, raw_table in enumerate(raw_targets):
            table = _shared_strings(raw_table)
            fields = checker.check(("targets", index), table)
            if fields is not None:
                targets.append(_target(fields, list_name, jsonable(table)))
        return targets

    def check_list_table(self, table: dict[str, Any]) -> tuple[str, date, str] | None:
        report_unknown_keys(self.report, ("list",), table, LIST_KEYS, "[list]")
        name = self.check_list_name(table)
        ok = name is not None
        updated = table.get("updated")
        if updated is None:
            self.report(("list",), 'missing required key "updated" in [list]')
            ok = False
        elif isinstance(updated, datetime) or not isinstance(updated, date):
            self.report(
                ("list", "updated"),
                f'"updated" must be a TOML date (YYYY-MM-DD, no quotes), not {type_name(updated)}',
            )
            ok = False
        description = table.get("description", "")
        if not isinstance(description, str):
            self.report(
                ("list", "description"),
                f'"description" must be a string, not {type_name(description)}',
            )
            ok = False
        if not ok:
            return None
        assert isinstance(name, str) and isinstance(updated, date) and isinstance(description, str)
        return name, updated, description

    def check_list_name(self, table: dict[str, Any]) -> str | None:
        """The list's name when it is a good one and no list loaded before has it."""
        name = table.get("name")
        if name is None:
            self.report(("list",), 'missing required key "name" in [list]')
        elif not isinstance(name, str):
            self.report(("list", "name"), f'"name" must be a string, not {type_name(name)}')
        elif not NAME_RE.match(name):
            self.report(("list", "name"), f"list name {quote(name)} must match {NAME_PATTERN}")
        elif (first := self.loader.list_names.get(name)) is not None:
            self.report(("list", "name"), f"duplicate list name {quote(name)} (first at {first})")
        else:
            self.new_list_names[name] = Place(self, ("list", "name"))
            return name
        return None


#: Keys whose values repeat from target to target (a handful of services, checks, tags).
_REPEATED_VALUES = frozenset({"service", "check", "transports", "tags", "expect_asn"})


def _shared_strings(table: dict[str, Any]) -> dict[str, Any]:
    """The target's table with its keys, and the values that repeat across targets, as one
    shared string each. The TOML parser makes a new string for every key of every table: of
    the ~0.8 KB a loaded target kept, a third was copies of "id", "service", "check", "https"
    (bench/memory.py; a list of 100,000 targets is held for the whole round). The Target's
    fields are taken from this table, so they share the same strings."""
    shared: dict[str, Any] = {}
    for key, value in table.items():
        key = sys.intern(key) if isinstance(key, str) else key
        if key in _REPEATED_VALUES:
            if isinstance(value, str):
                value = sys.intern(value)
            elif isinstance(value, list):
                value = [sys.intern(v) if isinstance(v, str) else v for v in value]
        shared[key] = value
    return shared


def _target(fields: dict[str, Any], list_name: str, definition: dict[str, Any]) -> Target:
    """The loaded target, without a copy of its table when its fields give the same table
    (the same keys in the same order with the same values: the record is then identical)."""
    target = Target(**fields, list_name=list_name, definition=None)
    table = target.table_as_written()
    if table == definition and list(table) == list(definition):  # equal values, same order
        return target
    return Target(**fields, list_name=list_name, definition=definition)
