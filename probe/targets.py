"""Target lists: the TOML schema (DESIGN.md "Contract: target lists"), loading and validation.

`load_lists(paths)` reads list files (or directories of ``*.toml``) and returns every target in
list order together with *every* problem found, each one line of the form ``file:line: message``.
It never raises on bad input. `tomllib` keeps no positions, so a small scanner of the source
text (`_scan_positions`) maps each table, key and array element to the line it starts on.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import re
import tomllib
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CHECKS = ("dns", "tcp", "tls", "http", "https", "mtproto")
TRANSPORTS = ("abridged", "intermediate", "padded_intermediate", "obfuscated2")
DEFAULT_TRANSPORTS = ("obfuscated2", "intermediate")
BASELINE_SERVICE = "baseline"

#: checks that name a `host`; the others (http, https) name a `url`
HOST_CHECKS = ("dns", "tcp", "tls", "mtproto")
URL_CHECKS = ("http", "https")
#: `ports` when the list gives none (tcp has no default: it must say which ports)
DEFAULT_PORTS: dict[str, tuple[int, ...]] = {"tls": (443,), "mtproto": (443,)}
#: `dc` (mtproto only): the DC id an obfuscated2 header carries, a signed 16-bit number, not 0
DC_ID_MIN, DC_ID_MAX = -32768, 32767

#: a list file larger than this is refused unread (lists are a few kB)
MAX_LIST_BYTES = 1024 * 1024
#: a CA file larger than this is refused (a bundle of every public root is ~250 kB)
MAX_CA_BYTES = 1024 * 1024
#: values quoted in problems are cut to this many characters
MAX_QUOTED = 200

#: the name part of an id (after "service/") and a list's name
NAME_PATTERN = "[a-z0-9][a-z0-9._-]*"
SERVICE_PATTERN = "[a-z0-9][a-z0-9_-]*"
_NAME_RE = re.compile(NAME_PATTERN + r"\Z")
_SERVICE_RE = re.compile(SERVICE_PATTERN + r"\Z")
_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
_TOML_ERROR_POSITION = re.compile(
    r"\s*\((?:at line (?P<line>\d+), column (?P<column>\d+)|at end of document)\)\s*\Z"
)
_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n.*?-----END CERTIFICATE-----", re.DOTALL
)

# The position scanner's tokens, matched with regular expressions rather than a character at
# a time in Python: loading 2,000 targets took 145 ms, 60 of them in the scanner.
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_BLANK = re.compile(r"[ \t]*")
_BLANK_LINES = re.compile(r"(?:[ \t\r\n]|#[^\n]*)*")  # whitespace, newlines and comments
_SCALAR = re.compile(r"[^,\]}\n#]*")  # a number, date, boolean... up to what ends a value
_NEWLINE = re.compile(r"\n")

LIST_KEYS = ("name", "description", "updated")
TARGET_KEYS = (
    "id",
    "service",
    "check",
    "host",
    "url",
    "ports",
    "sni",
    "expect_asn",
    "transports",
    "dc",
    "ca",
    "note",
    "tags",
)
#: which optional keys each check accepts (id, service and check are always required)
_ALLOWED_BY_CHECK = {
    "dns": {"host", "expect_asn", "note", "tags"},
    "tcp": {"host", "ports", "expect_asn", "note", "tags"},
    "tls": {"host", "ports", "sni", "expect_asn", "ca", "note", "tags"},
    "http": {"url", "expect_asn", "note", "tags"},
    "https": {"url", "expect_asn", "ca", "note", "tags"},
    "mtproto": {"host", "ports", "expect_asn", "transports", "dc", "note", "tags"},
}
_WHY_NOT_ALLOWED = {
    "ports": {
        "http": "the port comes from the url",
        "https": "the port comes from the url",
        "dns": "a dns check connects nowhere",
    },
    "host": {"http": 'use "url"', "https": 'use "url"'},
    "url": {c: 'use "host"' for c in HOST_CHECKS},
    "dc": {c: "only mtproto talks to a DC" for c in CHECKS if c != "mtproto"},
}

Position = tuple[str | int, ...]


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
        return _url_hostname(self.url or "")

    @property
    def is_baseline(self) -> bool:
        return self.service == BASELINE_SERVICE

    def endpoint_ports(self) -> tuple[int, ...]:
        """Ports measured: the list's `ports`, or the URL's port for http/https."""
        if self.url is not None:
            return (_url_port(self.url),)
        return self.ports


# A target's URL is asked for its host and port several times per measurement (runner, flow,
# record, control); urlsplit's own cache holds only 128 URLs, fewer than the targets in flight.
@lru_cache(maxsize=4096)
def _url_hostname(url: str) -> str:
    return urlsplit(url).hostname or ""


@lru_cache(maxsize=4096)
def _url_port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


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


@dataclass(frozen=True)
class LoadResult:
    """The lists that loaded cleanly, and every problem (``file:line: message``) of the others.

    A file with any problem contributes no list: callers refuse to run when `problems` is not
    empty (exit status 2), so a half-loaded list is never measured.
    """

    lists: tuple[TargetList, ...] = ()
    problems: list[str] = field(default_factory=list)

    @property
    def targets(self) -> tuple[Target, ...]:
        """Every target of every list, in list order and then file order."""
        return tuple(target for target_list in self.lists for target in target_list.targets)

    @property
    def ok(self) -> bool:
        return not self.problems


# --- public entry points ----------------------------------------------------------------------


def load_lists(paths: Iterable[str]) -> LoadResult:
    """Load list files and directories of ``*.toml`` (sorted by name), checking everything.

    Ids must be unique across all the lists loaded together; a duplicate is reported at its
    second occurrence, naming the first.
    """
    loader = _Loader()
    for path in paths:
        for file_path in loader.expand(str(path)):
            loader.load_file(file_path)
    return loader.result()


def validate_paths(paths: Iterable[str]) -> list[str]:
    """Every problem of the lists at `paths`, as ``file:line: message`` lines (empty: valid)."""
    return load_lists(paths).problems


def parse_list_text(text: str, path: str = "<string>") -> LoadResult:
    """Check one list given as text; `path` names it in problems and anchors relative `ca` paths."""
    loader = _Loader()
    loader.load_bytes(path, text.encode("utf-8", "surrogatepass"))
    return loader.result()


def bundled_list_paths() -> list[str]:
    """The list files shipped with the probe, sorted by name.

    From a source checkout these are the repository's ``targets/*.toml`` (what maintainers
    edit); from an installed wheel, the package data ``probe.data.targets`` (pyproject.toml maps
    the top-level ``targets/`` directory there).
    """
    return sorted(str(p) for p in bundled_list_dir().glob("*.toml"))


def bundled_list_dir() -> Path:
    """The directory holding the bundled lists (and their CA files)."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "targets").is_dir():
        return checkout / "targets"
    try:
        from importlib.resources import files

        root = files("probe.data.targets")
        # A namespace package gives a MultiplexedPath; an installed wheel has one directory.
        for entry in root.iterdir():
            if isinstance(entry, Path):
                return entry.parent
    except (ImportError, OSError, TypeError, ValueError):
        pass
    return Path(__file__).resolve().parent / "data" / "targets"


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


# --- loading ------------------------------------------------------------------------------


class _Loader:
    """Accumulates lists and problems over several files (ids are unique across them)."""

    def __init__(self) -> None:
        self.lists: list[TargetList] = []
        self.problems: list[str] = []
        self.seen_files: set[Path] = set()
        self.ids: dict[str, _Place] = {}  # id -> where it was first defined
        self.list_names: dict[str, _Place] = {}

    def result(self) -> LoadResult:
        return LoadResult(lists=tuple(self.lists), problems=list(self.problems))

    def expand(self, path: str) -> list[str]:
        """The list files a command-line path stands for (a directory: its ``*.toml``)."""
        try:
            as_path = Path(path)
            if as_path.is_dir():
                found = sorted(str(p) for p in as_path.glob("*.toml") if p.is_file())
                if not found:
                    self.problems.append(f"{path}:1: no *.toml target lists in this directory")
                return found
            if not as_path.exists():
                self.problems.append(f"{path}:1: no such file or directory")
                return []
        except (OSError, ValueError, RuntimeError) as exc:
            self.problems.append(f"{path}:1: cannot read: {_os_message(exc)}")
            return []
        return [path]

    def load_file(self, path: str) -> None:
        try:
            resolved = Path(path).resolve()
            if resolved in self.seen_files:
                return  # the same file named twice (e.g. a file and its directory)
            self.seen_files.add(resolved)
            with open(path, "rb") as handle:
                data = handle.read(MAX_LIST_BYTES + 1)
        except (OSError, ValueError, RuntimeError) as exc:
            self.problems.append(f"{path}:1: cannot read: {_os_message(exc)}")
            return
        if len(data) > MAX_LIST_BYTES:
            self.problems.append(
                f"{path}:1: file too large (over {MAX_LIST_BYTES} bytes): is this a target list?"
            )
            return
        self.load_bytes(path, data)

    def load_bytes(self, path: str, data: bytes) -> None:
        checker = _FileChecker(path, data, self)
        try:
            checker.run()
        except RecursionError:
            checker.report_at(1, "nested too deeply")
        except Exception as exc:  # never a traceback on any input; the fuzz tests look for this
            checker.report_at(1, f"internal error while checking ({type(exc).__name__}: {exc})")
        checker.problems.sort(key=lambda item: item[0])
        self.problems.extend(
            f"{path}:{line}: {_one_line(message)}" for line, message in checker.problems
        )
        if not checker.problems and checker.target_list is not None:
            self.lists.append(checker.target_list)
            self.ids.update(checker.new_ids)
            self.list_names.update(checker.new_list_names)
        else:
            # Ids of a broken file still count, so one problem does not hide another.
            for target_id, where in checker.new_ids.items():
                self.ids.setdefault(target_id, where)


class _Place:
    """Where an id or a list name was first defined, as "file:line" when formatted. The line is
    looked up only then: finding the line of every key of a file costs ~25 us a target (a third
    of loading a list), and a clean list never needs one."""

    __slots__ = ("checker", "where")

    def __init__(self, checker: _FileChecker, where: Position) -> None:
        self.checker = checker
        self.where = where

    def __str__(self) -> str:
        return f"{self.checker.path}:{self.checker.line_of(self.where)}"


class _FileChecker:
    """Checks one list file; collects (line, message) problems."""

    def __init__(self, path: str, data: bytes, loader: _Loader) -> None:
        self.path = path
        self.data = data
        self.loader = loader
        self.problems: list[tuple[int, str]] = []
        self.text: str | None = None  # once it parsed as TOML: the lines of keys are in it
        self._lines: dict[Position, int] | None = None
        self.target_list: TargetList | None = None
        self.new_ids: dict[str, _Place] = {}
        self.new_list_names: dict[str, _Place] = {}

    # -- reporting --

    def report_at(self, line: int, message: str) -> None:
        self.problems.append((line, message))

    def report(self, where: Position, message: str) -> None:
        self.report_at(self.line_of(where), message)

    @property
    def lines(self) -> dict[Position, int]:
        """The line of each table, key and array element (scanned on first use)."""
        if self._lines is None:
            self._lines = _scan_positions(self.text) if self.text is not None else {}
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
            self.report_at(line, f"not UTF-8 text (byte {exc.start + 1})")
            return
        text = text.removeprefix("\ufeff")
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            line, message = _toml_error(exc, text)
            self.report_at(line, f"invalid TOML: {message}")
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
            self.report(("list",), f'"list" must be a table, not {_type_name(list_table)}')
        else:
            header = self.check_list_table(list_table)

        raw_targets = document.get("targets")
        targets: list[Target] = []
        if raw_targets is None:
            self.report_at(1, "no [[targets]] in this list")
        elif not isinstance(raw_targets, list) or not all(isinstance(t, dict) for t in raw_targets):
            self.report(
                ("targets",),
                '"targets" must be an array of tables ([[targets]]), '
                f"not {_type_name(raw_targets)}",
            )
        elif not raw_targets:
            self.report(("targets",), "no [[targets]] in this list")
        else:
            list_name = header[0] if header else ""
            for index, table in enumerate(raw_targets):
                target = self.check_target(index, table, list_name)
                if target is not None:
                    targets.append(target)

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

    def check_list_table(self, table: dict[str, Any]) -> tuple[str, date, str] | None:
        self.unknown_keys(("list",), table, LIST_KEYS, "[list]")
        ok = True
        name = table.get("name")
        if name is None:
            self.report(("list",), 'missing required key "name" in [list]')
            ok = False
        elif not isinstance(name, str):
            self.report(("list", "name"), f'"name" must be a string, not {_type_name(name)}')
            ok = False
        elif not _NAME_RE.match(name):
            self.report(("list", "name"), f"list name {quote(name)} must match {NAME_PATTERN}")
            ok = False
        else:
            first = self.loader.list_names.get(name)
            if first is not None:
                self.report(
                    ("list", "name"), f"duplicate list name {quote(name)} (first at {first})"
                )
                ok = False
            else:
                self.new_list_names[name] = _Place(self, ("list", "name"))
        updated = table.get("updated")
        if updated is None:
            self.report(("list",), 'missing required key "updated" in [list]')
            ok = False
        elif isinstance(updated, datetime) or not isinstance(updated, date):
            self.report(
                ("list", "updated"),
                f'"updated" must be a TOML date (YYYY-MM-DD, no quotes), not {_type_name(updated)}',
            )
            ok = False
        description = table.get("description", "")
        if not isinstance(description, str):
            self.report(
                ("list", "description"),
                f'"description" must be a string, not {_type_name(description)}',
            )
            ok = False
        if not ok:
            return None
        assert isinstance(name, str) and isinstance(updated, date) and isinstance(description, str)
        return name, updated, description

    def unknown_keys(
        self, where: Position, table: Mapping[str, Any], known: Iterable[str], what: str
    ) -> None:
        known = tuple(known)
        for key in table:
            if key not in known:
                guess = difflib.get_close_matches(key, known, n=1)
                hint = f' (did you mean "{guess[0]}"?)' if guess else ""
                self.report((*where, key), f"unknown key {quote(key)} in {what}{hint}")

    # -- one [[targets]] table --

    def check_target(self, index: int, table: dict[str, Any], list_name: str) -> Target | None:
        at: Position = ("targets", index)
        before = len(self.problems)
        self.unknown_keys(at, table, TARGET_KEYS, "[[targets]]")

        values: dict[str, Any] = {}
        for key in ("id", "service", "check", "host", "url", "sni", "ca", "note"):
            if key in table:
                values[key] = self.expect_string(at, table, key)
        for key in ("ports", "expect_asn"):
            if key in table:
                values[key] = self.expect_array(at, table, key, int)
        for key in ("transports", "tags"):
            if key in table:
                values[key] = self.expect_array(at, table, key, str)
        if "dc" in table:
            values["dc"] = self.expect_integer(at, table, "dc")
        for key in ("id", "service", "check"):
            if key not in table:
                self.report(at, f"missing required key {quote(key)}")

        service = values.get("service")
        if isinstance(service, str) and not _SERVICE_RE.match(service):
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

        if len(self.problems) > before:
            return None
        assert isinstance(check, str) and isinstance(target_id, str) and isinstance(service, str)
        ports = tuple(values.get("ports") or DEFAULT_PORTS.get(check, ()))
        transports: tuple[str, ...] = ()
        if check == "mtproto":
            transports = tuple(values.get("transports") or DEFAULT_TRANSPORTS)
        ca = values.get("ca")
        return Target(
            id=target_id,
            service=service,
            check=check,
            host=values.get("host"),
            url=values.get("url"),
            ports=ports,
            sni=values.get("sni"),
            expect_asn=tuple(values.get("expect_asn") or ()),
            transports=transports,
            dc=values.get("dc"),
            ca=str(self.ca_path(ca)) if isinstance(ca, str) else None,
            note=values.get("note"),
            tags=tuple(values.get("tags") or ()),
            list_name=list_name,
            definition=_jsonable(table),
        )

    def expect_string(self, at: Position, table: dict[str, Any], key: str) -> str | None:
        value = table[key]
        if isinstance(value, str):
            return value
        self.report((*at, key), f"{quote(key)} must be a string, not {_type_name(value)}")
        return None

    def expect_integer(self, at: Position, table: dict[str, Any], key: str) -> int | None:
        value = table[key]
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        self.report((*at, key), f"{quote(key)} must be an integer, not {_type_name(value)}")
        return None

    def expect_array(
        self, at: Position, table: dict[str, Any], key: str, kind: type
    ) -> list[Any] | None:
        value = table[key]
        kind_name = "integers" if kind is int else "strings"
        if not isinstance(value, list):
            self.report(
                (*at, key), f"{quote(key)} must be an array of {kind_name}, not {_type_name(value)}"
            )
            return None
        good = True
        for position, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, kind):
                self.report(
                    (*at, key, position),
                    f"{quote(key)} must be an array of {kind_name}, "
                    f"but item {position + 1} is {_type_name(item)}",
                )
                good = False
        return value if good else None

    def check_id(self, at: Position, target_id: str, service: str | None) -> None:
        where = (*at, "id")
        prefix, slash, name = target_id.partition("/")
        if not slash:
            self.report(where, f'id {quote(target_id)} must be "service/name"')
            return
        if service is not None and prefix != service:
            self.report(where, f'id {quote(target_id)} must start with its service "{service}/"')
        if not _NAME_RE.match(name):
            self.report(
                where, f'id {quote(target_id)}: the name after "/" must match {NAME_PATTERN}'
            )
        first = self.loader.ids.get(target_id) or self.new_ids.get(target_id)
        if first is not None:
            self.report(where, f"duplicate id {quote(target_id)} (first at {first})")
        else:
            self.new_ids[target_id] = _Place(self, where)

    def check_by_kind(
        self, at: Position, table: dict[str, Any], values: dict[str, Any], check: str
    ) -> None:
        allowed = _ALLOWED_BY_CHECK[check]
        for key in table:
            if key in TARGET_KEYS and key not in ("id", "service", "check") and key not in allowed:
                why = _WHY_NOT_ALLOWED.get(key, {}).get(check)
                self.report(
                    (*at, key),
                    f"{quote(key)} is not allowed for check {quote(check)}"
                    + (f" ({why})" if why else ""),
                )
        if check in HOST_CHECKS:
            if "host" not in table:
                self.report(at, f'missing required key "host" for check {quote(check)}')
            host = values.get("host")
            if isinstance(host, str):
                problem = host_problem(host)
                if problem:
                    self.report((*at, "host"), f"host {quote(host)} {problem}")
                elif check == "tls" and "sni" not in table and _is_ip(host):
                    self.report((*at, "host"), 'check "tls" with an IP address host needs "sni"')
        else:
            if "url" not in table:
                self.report(at, f'missing required key "url" for check {quote(check)}')
            url = values.get("url")
            if isinstance(url, str):
                problem = url_problem(url, check)
                if problem:
                    self.report((*at, "url"), problem)
        if check == "tcp" and "ports" not in table:
            self.report(at, 'missing required key "ports" for check "tcp"')
        ports = values.get("ports")
        if "ports" in allowed and isinstance(ports, list):
            self.check_numbers(at, "ports", ports, 1, 65535, "port", "out of range 1..65535")
        expect_asn = values.get("expect_asn")
        if isinstance(expect_asn, list):
            self.check_numbers(
                at, "expect_asn", expect_asn, 1, 4294967295, "AS number", "is not a valid AS number"
            )
        sni = values.get("sni")
        if "sni" in allowed and isinstance(sni, str):
            problem = host_problem(sni)
            if problem:
                self.report((*at, "sni"), f"sni {quote(sni)} {problem}")
            elif _is_ip(sni):
                self.report((*at, "sni"), f"sni {quote(sni)} must be a hostname, not an IP address")
        dc = values.get("dc")
        if (
            "dc" in allowed
            and isinstance(dc, int)
            and (dc == 0 or not DC_ID_MIN <= dc <= DC_ID_MAX)
        ):
            self.report((*at, "dc"), f"dc {dc} is not a DC id ({DC_ID_MIN}..{DC_ID_MAX}, not 0)")
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
            problem = self.ca_problem(ca)
            if problem:
                self.report((*at, "ca"), problem)

    def check_numbers(
        self,
        at: Position,
        key: str,
        numbers: list[int],
        low: int,
        high: int,
        what: str,
        out_of_range: str,
    ) -> None:
        if not numbers:
            self.report((*at, key), f"{quote(key)} must not be empty")
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

    def ca_path(self, ca: str) -> Path:
        return (Path(self.path).parent / ca).resolve()

    def ca_problem(self, ca: str) -> str | None:
        if not ca or "\x00" in ca:
            return f"ca {quote(ca)} is not a file name"
        try:
            path = self.ca_path(ca)
            with open(path, "rb") as handle:
                data = handle.read(MAX_CA_BYTES + 1)
        except FileNotFoundError:
            return f"ca file {quote(ca)} not found ({self.ca_path(ca)})"
        except (OSError, ValueError, RuntimeError) as exc:
            return f"ca file {quote(ca)} cannot be read: {_os_message(exc)}"
        if len(data) > MAX_CA_BYTES:
            return f"ca file {quote(ca)} is too large (over {MAX_CA_BYTES} bytes)"
        blocks = _PEM_CERTIFICATE.findall(data)
        if not blocks:
            return f"ca file {quote(ca)} contains no PEM certificate"
        from cryptography import x509

        for number, block in enumerate(blocks, start=1):
            try:
                x509.load_pem_x509_certificate(block)
            except ValueError as exc:
                return f"ca file {quote(ca)}: certificate {number} does not parse ({exc})"
        return None


# --- addresses and URLs -------------------------------------------------------------------


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return "%" not in text


def host_problem(host: str) -> str | None:
    """Why `host` is not a hostname (IDNA allowed) or a bare IPv4/IPv6 literal; None if it is."""
    if not host:
        return "is empty"
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in host):
        return "contains whitespace or control characters"
    if host.startswith("[") or host.endswith("]"):
        return "is not a valid address (write IPv6 addresses without brackets)"
    if ":" in host:
        if "%" in host:
            return "is not a valid IPv6 address (zone ids are not allowed)"
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return "is not a valid IPv6 address"
        return None
    labels = host.split(".")
    if all(label.isdigit() for label in labels if label) and labels[-1].isdigit():
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return "is not a valid IPv4 address"
        return None
    return _hostname_problem(host)


def _hostname_problem(host: str) -> str | None:
    if host.endswith("."):
        return 'is not a valid hostname (no trailing ".")'
    try:
        ascii_host = host.encode("ascii").decode("ascii")
    except UnicodeEncodeError:
        try:
            import idna

            ascii_host = idna.encode(host, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError, ValueError):
            return "is not a valid hostname (IDNA encoding fails)"
    ascii_host = ascii_host.lower()
    if len(ascii_host) > 253:
        return "is not a valid hostname (longer than 253 characters)"
    for label in ascii_host.split("."):
        if not _LABEL_RE.match(label):
            return f"is not a valid hostname (bad label {quote(label)})"
    if ascii_host.rsplit(".", 1)[-1].isdigit():
        return "is not a valid hostname (the last label is all digits)"
    return None


def url_problem(url: str, check: str) -> str | None:
    """Why `url` cannot be fetched by `check` (http or https); None if it can."""
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return f"url {quote(url)} contains whitespace or control characters"
    try:
        parts = urlsplit(url)
    except ValueError:
        return f"url {quote(url)} is not a valid URL (bad host)"
    if parts.scheme.lower() != check:
        return f"url scheme {quote(parts.scheme)} does not match check {quote(check)}"
    if not url.lower().startswith(f"{check}://"):
        return f'url {quote(url)} must start with "{check}://"'
    if "@" in parts.netloc:
        return f"url {quote(url)} must not contain user info"
    try:
        port = parts.port
    except ValueError:
        return f"url {quote(url)} has an invalid port"
    host = parts.hostname
    if not host:
        return f"url {quote(url)} has no host"
    if port == 0:
        return f"url {quote(url)} has an invalid port"
    if parts.netloc.rsplit("]", 1)[-1].endswith(":"):
        return f"url {quote(url)} has an empty port"
    bracketed = parts.netloc.startswith("[")
    if bracketed != (":" in host):
        return f"url {quote(url)} has an invalid host"
    problem = host_problem(host)
    if problem:
        return f"url host {quote(host)} {problem}"
    return None


# --- helpers ------------------------------------------------------------------------------


def quote(text: str) -> str:
    """`text` in double quotes for a one-line message: quotes, backslashes and anything not
    printable (newlines, control and line-separator characters) escaped; long text shortened."""
    if len(text) > MAX_QUOTED:
        text = text[:MAX_QUOTED] + "…"
    return '"' + "".join("\\" + c if c in '"\\' else _printable(c) for c in text) + '"'


def _printable(char: str) -> str:
    if char.isprintable():
        return char
    code = ord(char)
    return (
        f"\\x{code:02x}"
        if code <= 0xFF
        else f"\\u{code:04x}"
        if code <= 0xFFFF
        else f"\\U{code:08x}"
    )


def _one_line(message: str) -> str:
    """Defence in depth: a problem is always one line, whatever text it quotes."""
    return "".join(_printable(c) for c in message)


def _type_name(value: Any) -> str:
    """The TOML name of a loaded value's type, with an article."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, datetime):
        return "a date-time"
    if isinstance(value, date):
        return "a date"
    if isinstance(value, time):
        return "a time"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _jsonable(value: Any) -> Any:
    """The loaded TOML value with dates and times as ISO strings (for JSON records)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, date | time):
        return value.isoformat()
    return value


def _os_message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _toml_error(exc: tomllib.TOMLDecodeError, text: str) -> tuple[int, str]:
    """tomllib's own position (line, column) of a syntax error, and its message without it."""
    message = str(exc)
    match = _TOML_ERROR_POSITION.search(message)
    if match is None:
        return 1, message
    bare = message[: match.start()]
    if match.group("line"):
        return int(match.group("line")), f"{bare} (column {match.group('column')})"
    last_line = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
    return last_line, f"{bare} (at end of file)"


# --- positions: where each table, key and array element starts ------------------------------


def _scan_positions(text: str) -> dict[Position, int]:
    """Map structural paths to 1-based line numbers in valid TOML `text`.

    A path is a tuple of keys and array indices, e.g. ``("targets", 2, "ports", 1)`` for the
    second port of the third ``[[targets]]``. Best effort: whatever was mapped before an
    unexpected construct is kept, and callers fall back to the enclosing table's line.
    """
    scanner = _PositionScanner(text)
    try:
        scanner.document()
    except (_ScanError, IndexError, ValueError, RecursionError):
        pass
    return scanner.lines


class _ScanError(Exception):
    pass


class _PositionScanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.lines: dict[Position, int] = {}
        self.newlines = [m.start() for m in _NEWLINE.finditer(text)]
        self.array_tables: dict[Position, int] = {}  # [[x]] path -> how many seen so far

    def line(self) -> int:
        return bisect_right(self.newlines, self.i - 1) + 1

    def peek(self, n: int = 1) -> str:
        return self.text[self.i : self.i + n]

    def skip_blank(self) -> None:
        self.i = _BLANK.match(self.text, self.i).end()  # type: ignore[union-attr]  # always

    def skip_blank_lines(self) -> None:
        """Whitespace, newlines and comments (as between statements or array items)."""
        self.i = _BLANK_LINES.match(self.text, self.i).end()  # type: ignore[union-attr]

    def document(self) -> None:
        current: Position = ()
        while True:
            self.skip_blank_lines()
            if self.i >= len(self.text):
                return
            line = self.line()
            if self.peek(2) == "[[":
                self.i += 2
                keys = self.key()
                self.expect("]]")
                parent = self.resolve(keys[:-1])
                array_path = (*parent, keys[-1])
                count = self.array_tables.get(array_path, 0)
                self.array_tables[array_path] = count + 1
                self.lines.setdefault(array_path, line)
                current = (*array_path, count)
                self.lines[current] = line
            elif self.peek() == "[":
                self.i += 1
                keys = self.key()
                self.expect("]")
                current = self.resolve(keys)
                self.lines.setdefault(current, line)
            else:
                self.key_value(current)

    def resolve(self, keys: list[str]) -> Position:
        """A table header's path, descending into the latest element of arrays of tables."""
        path: Position = ()
        for key in keys:
            path = (*path, key)
            if path in self.array_tables:
                path = (*path, self.array_tables[path] - 1)
        return path

    def expect(self, token: str) -> None:
        self.skip_blank()
        if self.peek(len(token)) != token:
            raise _ScanError(token)
        self.i += len(token)

    def key_value(self, table: Position) -> None:
        line = self.line()
        keys = self.key()
        path = table
        for key in keys:
            path = (*path, key)
            self.lines.setdefault(path, line)
        self.expect("=")
        self.value(path)

    def key(self) -> list[str]:
        keys: list[str] = []
        while True:
            self.skip_blank()
            c = self.peek()
            if c == '"':
                raw = self.string()
                keys.append(tomllib.loads(f"k = {raw}")["k"])
            elif c == "'":
                keys.append(self.string()[1:-1])
            else:
                bare = _BARE_KEY.match(self.text, self.i)
                if bare is None:
                    raise _ScanError("key")
                self.i = bare.end()
                keys.append(bare.group())
            self.skip_blank()
            if self.peek() != ".":
                return keys
            self.i += 1

    def string(self) -> str:
        """Skip one string (basic, literal, or either multi-line); return its source text."""
        start = self.i
        quote = self.peek()
        if self.peek(3) == quote * 3:
            end = self.text.find(quote * 3, self.i + 3)
            while quote == '"' and end >= 0 and _escaped(self.text, end):
                end = self.text.find(quote * 3, end + 1)
            if end < 0:
                raise _ScanError("string")
            end += 3
            while self.text[end : end + 1] == quote:  # up to two quotes may end the content
                end += 1
            self.i = end
        else:
            end = self.text.find(quote, self.i + 1)
            while quote == '"' and end >= 0 and _escaped(self.text, end):
                end = self.text.find(quote, end + 1)
            if end < 0:
                raise _ScanError("string")
            self.i = end + 1
        return self.text[start : self.i]

    def value(self, path: Position) -> None:
        self.skip_blank()
        c = self.peek()
        if c in ('"', "'"):
            self.string()
        elif c == "[":
            self.i += 1
            index = 0
            while True:
                self.skip_blank_lines()
                if self.peek() == "]":
                    self.i += 1
                    return
                self.lines[(*path, index)] = self.line()
                self.value((*path, index))
                self.skip_blank_lines()
                if self.peek() == ",":
                    self.i += 1
                    index += 1
                elif self.peek() != "]":
                    raise _ScanError("array")
        elif c == "{":
            self.i += 1
            self.skip_blank()
            if self.peek() == "}":
                self.i += 1
                return
            while True:
                self.key_value(path)
                self.skip_blank()
                if self.peek() == ",":
                    self.i += 1
                elif self.peek() == "}":
                    self.i += 1
                    return
                else:
                    raise _ScanError("inline table")
        else:
            start = self.i
            self.i = _SCALAR.match(self.text, self.i).end()  # type: ignore[union-attr]
            if self.i == start:
                raise _ScanError("value")


def _escaped(text: str, index: int) -> bool:
    """True if the character at `index` is preceded by an odd number of backslashes."""
    backslashes = 0
    while index - backslashes - 1 >= 0 and text[index - backslashes - 1] == "\\":
        backslashes += 1
    return backslashes % 2 == 1
