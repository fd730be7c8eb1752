"""Loading target lists: `load_lists(paths)` reads list files (or directories of ``*.toml``)
and returns every target in list order together with *every* problem found, each one line of the
form ``file:line: message``. It never raises on bad input."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from probe.i18n.message import C, M, Said
from probe.targets.list_file import FileChecker, Place
from probe.targets.model import Target, TargetList
from probe.targets.schema import MAX_LIST_BYTES
from probe.targets.text import one_line, os_message


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
    loader = Loader()
    for path in paths:
        for file_path in loader.expand(str(path)):
            loader.load_file(file_path)
    return loader.result()


def validate_paths(paths: Iterable[str]) -> list[str]:
    """Every problem of the lists at `paths`, as ``file:line: message`` lines (empty: valid)."""
    return load_lists(paths).problems


def parse_list_text(text: str, path: str = "<string>") -> LoadResult:
    """Check one list given as text; `path` names it in problems and anchors relative `ca` paths."""
    loader = Loader()
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
    package = Path(__file__).resolve().parent.parent  # probe/
    checkout = package.parent
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
    return package / "data" / "targets"


# --- loading ------------------------------------------------------------------------------


class Loader:
    """Accumulates lists and problems over several files (ids are unique across them)."""

    def __init__(self) -> None:
        self.lists: list[TargetList] = []
        self.problems: list[str] = []
        self.seen_files: set[Path] = set()
        self.ids: dict[str, Place] = {}  # id -> where it was first defined
        self.list_names: dict[str, Place] = {}

    def result(self) -> LoadResult:
        return LoadResult(lists=tuple(self.lists), problems=list(self.problems))

    def expand(self, path: str) -> list[str]:
        """The list files a command-line path stands for (a directory: its ``*.toml``)."""
        try:
            as_path = Path(path)
            if as_path.is_dir():
                found = sorted(str(p) for p in as_path.glob("*.toml") if p.is_file())
                if not found:
                    self.problems.append(
                        Said(
                            M(
                                "{where}: no *.toml target lists in this directory",
                                where=_first_line(path),
                            )
                        )
                    )
                return found
            if not as_path.exists():
                self.problems.append(
                    Said(M("{where}: no such file or directory", where=_first_line(path)))
                )
                return []
        except (OSError, ValueError, RuntimeError) as exc:
            self.problems.append(_cannot_read(path, exc))
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
            self.problems.append(_cannot_read(path, exc))
            return
        if len(data) > MAX_LIST_BYTES:
            self.problems.append(
                Said(
                    M(
                        "{where}: file too large (over {limit} bytes): is this a target list?",
                        where=_first_line(path),
                        limit=MAX_LIST_BYTES,
                    )
                )
            )
            return
        self.load_bytes(path, data)

    def load_bytes(self, path: str, data: bytes) -> None:
        checker = FileChecker(path, data, self)
        try:
            checker.run()
        except RecursionError:
            checker.report_at(1, "nested too deeply")
        except Exception as exc:  # never a traceback on any input; the fuzz tests look for this
            checker.report_at(1, f"internal error while checking ({type(exc).__name__}: {exc})")
        checker.problems.sort(key=lambda item: item[0])
        self.problems.extend(_located(path, line, message) for line, message in checker.problems)
        if not checker.problems and checker.target_list is not None:
            self.lists.append(checker.target_list)
            self.ids.update(checker.new_ids)
            self.list_names.update(checker.new_list_names)
        else:
            # Ids of a broken file still count, so one problem does not hide another.
            for target_id, where in checker.new_ids.items():
                self.ids.setdefault(target_id, where)


def _first_line(path: str) -> str:
    return f"{path}:1"


def _cannot_read(path: str, exc: BaseException) -> str:
    where, error = _first_line(path), os_message(exc)
    return Said(M("{where}: cannot read: {error}", where=where, error=error))


def _located(path: str, line: int, message: str) -> str:
    """``file:line: message``, one line (the message's words translatable when they are)."""
    where = f"{path}:{line}"
    if isinstance(message, Said):
        problem = message.message
        text = Said(C("problem", "{where}: {problem}", where=where, problem=problem))
        if one_line(text) == text:
            return text
    return f"{where}: {one_line(message)}"
