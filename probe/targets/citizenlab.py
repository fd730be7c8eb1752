"""Import a Citizen Lab test list (CSV) as one of our target lists (TOML).

The CSV format (github.com/citizenlab/test-lists, reference/FACTS.md §8) has the exact header
``url,category_code,category_description,date_added,source,notes``. Every row becomes an
``http``/``https`` target (by URL scheme) whose id is derived from the URL alone
(`citizenlab_target_id`), so importing a newer version of the same CSV keeps the ids of the
URLs it shares with the old one. The CSV's own problems are reported like a list's:
``file:line: message``, all of them, and nothing is produced when there is any. The TOML
strings and the atomic write of the produced list are `probe.targets.toml_out`'s.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

from probe.targets import NAME_PATTERN, SERVICE_PATTERN, parse_list_text, quote, url_problem
from probe.targets.toml_out import toml_string

HEADER = ("url", "category_code", "category_description", "date_added", "source", "notes")
DEFAULT_SERVICE = "web"
#: a test list larger than this is refused unread (global.csv is about 150 kB)
MAX_CSV_BYTES = 32 * 1024 * 1024
#: the readable part taken from a URL's path and query in an id
SLUG_LENGTH = 40
#: hex digits of the URL's SHA-256 in an id (40 bits: a clash is reported, never silent)
DIGEST_LENGTH = 10

CATEGORY_CODE_RE = re.compile(r"[A-Z][A-Z0-9]{1,7}\Z")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_SLUG_JUNK = re.compile(r"[^a-z0-9]+")
_LIST_NAME_JUNK = re.compile(r"[^a-z0-9._-]+")


@dataclass(frozen=True)
class CitizenLabRow:
    line: int
    url: str
    category_code: str
    category_description: str
    date_added: str
    source: str
    notes: str


@dataclass(frozen=True)
class ImportResult:
    """The TOML text of the converted list (empty when there are problems) and the problems."""

    text: str = ""
    rows: tuple[CitizenLabRow, ...] = ()
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def normalized_url(url: str) -> str:
    """The URL with scheme and host in lower case (host as IDNA ASCII) and a default port dropped.

    Two rows with the same normalized URL are duplicates; the id is derived from this form.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = _ascii_host(parts.hostname or "")
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port in (None, {"http": 80, "https": 443}.get(scheme)) else f"{host}:{port}"
    path = parts.path or "/"
    query = f"?{parts.query}" if parts.query else ""
    fragment = f"#{parts.fragment}" if parts.fragment else ""
    return f"{scheme}://{netloc}{path}{query}{fragment}"


def citizenlab_target_id(url: str, service: str = DEFAULT_SERVICE) -> str:
    """The id of the target for `url` (which must be a valid http/https URL).

    - ``https://host/`` (no path, query, fragment or explicit port) → ``service/host``
    - ``http://host/`` → ``service/host_http``
    - anything else → ``service/host_<slug>_<digest>``: slug = path and query in lower case,
      runs of other characters as ``-``, at most 40 characters; digest = the first 10 hex
      digits of the SHA-256 of the normalized URL. IPv6 hosts are written ``ipv6-<addr with
      - for :>`` and always take this form.

    Hostnames never contain ``_``, so the three forms cannot collide with one another; the id
    depends on the URL alone, never on the other rows.
    """
    normal = normalized_url(url)
    parts = urlsplit(normal)
    host = parts.hostname or ""
    is_root = (
        parts.path == "/"
        and not parts.query
        and not parts.fragment
        and ":" not in (parts.netloc.rsplit("]", 1)[-1])
    )
    if ":" in host:
        host = "ipv6-" + host.replace(":", "-")
        is_root = False
    if is_root:
        return f"{service}/{host}" if parts.scheme == "https" else f"{service}/{host}_http"
    path_and_query = parts.path + (f"?{parts.query}" if parts.query else "")
    slug = _SLUG_JUNK.sub("-", path_and_query.lower()).strip("-")[:SLUG_LENGTH].strip("-")
    digest = hashlib.sha256(normal.encode("utf-8")).hexdigest()[:DIGEST_LENGTH]
    return f"{service}/{host}_{slug}_{digest}" if slug else f"{service}/{host}_{digest}"


def import_citizenlab(
    path: str,
    *,
    categories: Iterable[str] = (),
    service: str = DEFAULT_SERVICE,
    list_name: str | None = None,
    updated: date | None = None,
) -> ImportResult:
    """Read and convert the CSV at `path` (see `convert_citizenlab_text`)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CSV_BYTES + 1)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return ImportResult(problems=[f"{path}:1: cannot read: {reason}"])
    if len(data) > MAX_CSV_BYTES:
        return ImportResult(problems=[f"{path}:1: file too large (over {MAX_CSV_BYTES} bytes)"])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return ImportResult(problems=[f"{path}:{line}: not UTF-8 text (byte {exc.start + 1})"])
    return convert_citizenlab_text(
        text,
        path,
        categories=categories,
        service=service,
        list_name=list_name,
        updated=updated,
    )


def convert_citizenlab_text(
    text: str,
    path: str,
    *,
    categories: Iterable[str] = (),
    service: str = DEFAULT_SERVICE,
    list_name: str | None = None,
    updated: date | None = None,
) -> ImportResult:
    """Check every row of a Citizen Lab CSV and convert the rows in `categories` (all if empty).

    `list_name` defaults to ``citizenlab-<file stem>``; `updated` to today. The produced text is
    loaded back with the list validator before it is returned: a conversion that would not
    validate is reported, never written.
    """
    wanted = tuple(categories)
    problems: list[str] = []
    for code in wanted:
        if not CATEGORY_CODE_RE.match(code):
            problems.append(
                f"{path}:1: --category {quote(code)} is not a category code (e.g. COMT)"
            )
    if not re.fullmatch(SERVICE_PATTERN, service):
        problems.append(f"{path}:1: --service {quote(service)} must match {SERVICE_PATTERN}")
    name = list_name if list_name is not None else default_list_name(path)
    if not re.fullmatch(NAME_PATTERN, name):
        problems.append(f"{path}:1: list name {quote(name)} must match {NAME_PATTERN}")
    if problems:
        return ImportResult(problems=problems)

    rows, row_problems = read_rows(text, path, service)
    problems.extend(row_problems)
    selected = tuple(row for row in rows if not wanted or row.category_code in wanted)
    if not problems and not selected:
        which = f" in categories {', '.join(wanted)}" if wanted else ""
        problems.append(f"{path}:1: no rows{which}: nothing to import")
    if problems:
        return ImportResult(problems=problems)

    toml_text = render_list(
        selected,
        path=path,
        service=service,
        list_name=name,
        updated=updated or date.today(),
        categories=wanted,
    )
    check = parse_list_text(toml_text, str(Path(path).with_suffix(".toml")))
    if check.problems:  # a bug in the conversion: say so rather than write a broken list
        return ImportResult(problems=[f"{path}:1: conversion failed: {p}" for p in check.problems])
    return ImportResult(text=toml_text, rows=selected)


def default_list_name(path: str) -> str:
    stem = _LIST_NAME_JUNK.sub("-", Path(path).stem.lower()).strip("-._")
    if not stem or stem.startswith("citizenlab"):
        return stem or "citizenlab"
    return f"citizenlab-{stem}"


def read_rows(text: str, path: str, service: str) -> tuple[list[CitizenLabRow], list[str]]:
    """Every row with its starting line, and every problem of the CSV (all rows are checked)."""
    problems: list[str] = []
    rows: list[CitizenLabRow] = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    first_seen: dict[str, int] = {}  # normalized url -> line
    ids: dict[str, int] = {}
    header_seen = False
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(f"{path}:{start}: invalid CSV: {quote(str(exc))[1:-1]}")
            break
        line = start
        if not header_seen:
            header_seen = True
            if tuple(record) != HEADER:
                problems.append(
                    f"{path}:{line}: header must be {quote(','.join(HEADER))}, "
                    f"not {quote(','.join(record))}"
                )
                break
            continue
        if not record or record == [""]:
            continue  # a blank line
        if len(record) != len(HEADER):
            problems.append(f"{path}:{line}: expected {len(HEADER)} columns, found {len(record)}")
            continue
        row = CitizenLabRow(line, *(value.strip() for value in record))
        row_problems = check_row(row)
        problems.extend(f"{path}:{line}: {message}" for message in row_problems)
        if row_problems:
            continue
        normal = normalized_url(row.url)
        if normal in first_seen:
            problems.append(
                f"{path}:{line}: duplicate url {quote(row.url)} "
                f"(first on line {first_seen[normal]})"
            )
            continue
        first_seen[normal] = line
        target_id = citizenlab_target_id(row.url, service)
        if target_id in ids:
            problems.append(
                f"{path}:{line}: the id {quote(target_id)} of this url "
                f"clashes with line {ids[target_id]}"
            )
            continue
        ids[target_id] = line
        rows.append(row)
    if not header_seen:
        problems.append(f"{path}:1: empty file (expected the header {quote(','.join(HEADER))})")
    return rows, problems


def check_row(row: CitizenLabRow) -> list[str]:
    """What is wrong with one data row (its url, category code and description, date)."""
    problems: list[str] = []
    scheme = row.url.split("://", 1)[0].lower() if "://" in row.url else ""
    if scheme not in ("http", "https"):
        problems.append(f"url {quote(row.url)} must start with http:// or https://")
    else:
        problem = url_problem(row.url, scheme)
        if problem:
            problems.append(problem)
    if not CATEGORY_CODE_RE.match(row.category_code):
        problems.append(
            f"category code {quote(row.category_code)} must be upper-case letters (e.g. COMT)"
        )
    if not row.category_description:
        problems.append("empty category description")
    if not _DATE_RE.match(row.date_added) or not _is_date(row.date_added):
        problems.append(f"date_added {quote(row.date_added)} must be a date as YYYY-MM-DD")
    return problems


def render_list(
    rows: Iterable[CitizenLabRow],
    *,
    path: str,
    service: str,
    list_name: str,
    updated: date,
    categories: tuple[str, ...] = (),
) -> str:
    """Our TOML list for `rows`; each target carries a comment with its CSV line and source."""
    source_name = Path(path).name
    description = f"Citizen Lab test list {source_name}"
    if categories:
        description += f" (categories {', '.join(categories)})"
    out = [
        f"# Imported from the Citizen Lab test list {source_name} by"
        " `probe targets import-citizenlab`.",
        "# Ids are derived from the URL alone (docs/targets.md); re-importing keeps them.",
        "",
        "[list]",
        f"name = {toml_string(list_name)}",
        f"description = {toml_string(description)}",
        f"updated = {updated.isoformat()}",
    ]
    for row in rows:
        scheme = urlsplit(row.url).scheme.lower()
        comment = f"{source_name} line {row.line}, added {row.date_added}"
        if row.source:
            comment += f", source {row.source}"
        out += [
            "",
            f"# {_one_line(comment)}",
            "[[targets]]",
            f"id = {toml_string(citizenlab_target_id(row.url, service))}",
            f"service = {toml_string(service)}",
            f"check = {toml_string(scheme)}",
            f"url = {toml_string(row.url)}",
            f"tags = [{toml_string('citizenlab')}, {toml_string('category:' + row.category_code)}]",
        ]
        if row.notes:
            out.append(f"note = {toml_string(row.notes)}")
    return "\n".join(out) + "\n"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _ascii_host(host: str) -> str:
    try:
        return host.encode("ascii").decode("ascii").lower()
    except UnicodeEncodeError:
        import idna

        try:
            return idna.encode(host, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError, ValueError):
            return host.lower()
