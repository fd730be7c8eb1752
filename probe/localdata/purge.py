"""`probe purge`: what the probe left on this device, and removing it.

Only the probe's own files are removed, one by one (never a whole tree): round files
(`files.round_files`) in the results directories, the config file, the GeoIP databases that
`probe geoip update` installed, the upload spool's files, and the directories that this
leaves empty. In a results directory that is not the probe's own (`--out`, or the config's
`out`), a round file goes only if its content is this probe's records too; everything else
there stays. The schedule is removed by the command itself (`round.schedule.remove`).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from probe import identity
from probe.i18n import _, ngettext
from probe.localdata.files import is_probe_result_file, round_files
from probe.localdata.retention import remove_empty_dirs

#: what `probe geoip update` leaves in its directory (`vantage.geoip.update`)
GEOIP_NAMES = ("asn.mmdb", "country.mmdb")
GEOIP_PARTIAL = (".download-", ".part")


@dataclass(frozen=True, slots=True)
class ResultsDir:
    path: Path
    #: the probe's own (the default in its data directory) or one the user chose
    own: bool


@dataclass(slots=True)
class PurgePlan:
    """Everything `probe purge` would remove, found before anything is removed."""

    results: dict[Path, list[Path]] = field(default_factory=dict)
    #: per results directory the user chose: round-named files that are not this probe's
    foreign: dict[Path, int] = field(default_factory=dict)
    config: Path | None = None
    geoip: list[Path] = field(default_factory=list)
    #: the file holding this installation's probe id, when there is one
    probe_id: Path | None = None
    #: the upload spool's files (probe/upload/spool.py): copies of records not yet uploaded
    spool: list[Path] = field(default_factory=list)
    #: the fingerprint cache's files (probe/analysis/fingerprints/cache.py): nothing personal,
    #: but a trace that the probe ran here
    cache: list[Path] = field(default_factory=list)
    #: directories to remove if they are empty afterwards, innermost first
    dirs: list[Path] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (
            any(self.results.values())
            or self.config
            or self.geoip
            or self.probe_id
            or self.spool
            or self.cache
        )

    def describe(self) -> list[str]:
        """One line per thing to remove, for the confirmation question (in the volunteer's
        language)."""
        lines = [
            ngettext(
                "{count} result file in {directory}", "{count} result files in {directory}", n
            ).format(count=n, directory=directory)
            for directory, files in self.results.items()
            if (n := len(files))
        ]
        if self.config is not None:
            lines.append(_("the config file {path}").format(path=self.config))
        if self.geoip:
            lines.append(
                _("the downloaded network data in {directory}").format(
                    directory=self.geoip[0].parent
                )
            )
        if self.probe_id is not None:
            lines.append(_("the probe id in {path}").format(path=self.probe_id))
        if self.spool:
            lines.append(
                _("the upload spool in {directory} (records not uploaded yet go with it)").format(
                    directory=self.spool[0].parent
                )
            )
        if self.cache:
            lines.append(
                _("the fingerprint cache in {directory}").format(directory=self.cache[0].parent)
            )
        return lines


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def plan_purge(
    results_dirs: list[ResultsDir],
    config: Path | None,
    data_dir: Path,
    cache_dir: Path | None = None,
) -> PurgePlan:
    """What to remove: round files of the results directories (only this probe's in one the
    user chose), the config file when it exists, `probe geoip update`'s files, the probe id,
    the upload spool and the fingerprint cache's files in `cache_dir`."""
    plan = PurgePlan()
    seen: set[str] = set()
    for entry in results_dirs:
        key = os.path.abspath(entry.path)
        if key in seen:
            continue
        seen.add(key)
        files = round_files(entry.path)
        ours = files if entry.own else [f for f in files if is_probe_result_file(f)]
        plan.results[entry.path] = [f.path for f in ours]
        if len(ours) != len(files):
            plan.foreign[entry.path] = len(files) - len(ours)
        plan.dirs += sorted({f.path.parent for f in ours})
        if entry.own:
            plan.dirs.append(entry.path)
    if config is not None and _is_regular(config):
        plan.config = config
        if config.parent.name == "probe":  # the probe's own config directory
            plan.dirs.append(config.parent)
    geoip_dir = data_dir / "geoip"
    try:
        names = sorted(os.listdir(geoip_dir))
    except OSError:
        names = []
    for name in names:
        partial = name.startswith(GEOIP_PARTIAL[0]) and name.endswith(GEOIP_PARTIAL[1])
        if (name in GEOIP_NAMES or partial) and _is_regular(geoip_dir / name):
            plan.geoip.append(geoip_dir / name)
    if _is_regular(data_dir / identity.FILE_NAME):
        plan.probe_id = data_dir / identity.FILE_NAME
    spool_dir = data_dir / "upload"
    names = ["spool.sqlite3" + suffix for suffix in ("", "-wal", "-shm", "-journal", ".lock")]
    plan.spool = [spool_dir / name for name in names if _is_regular(spool_dir / name)]
    plan.dirs += [geoip_dir, spool_dir, data_dir]
    if cache_dir is not None:
        plan.cache = _cache_files(cache_dir)
        plan.dirs.append(cache_dir)
    return plan


def _cache_files(cache_dir: Path) -> list[Path]:
    """The fingerprint cache's files, of any Python version (`fingerprints-FORMAT-TAG.bin`),
    and the temporary files of a write that was cut short (`.fingerprints-….tmp`)."""
    try:
        names = sorted(os.listdir(cache_dir))
    except OSError:
        return []
    ours = [
        name
        for name in names
        if (name.startswith("fingerprints-") and name.endswith(".bin"))
        or (name.startswith(".fingerprints-") and name.endswith(".tmp"))
    ]
    return [cache_dir / name for name in ours if _is_regular(cache_dir / name)]


@dataclass(slots=True)
class PurgeDone:
    removed: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def execute(plan: PurgePlan) -> PurgeDone:
    """Remove what the plan lists; directories only when empty. Goes on after an error."""
    done = PurgeDone()
    files = [f for group in plan.results.values() for f in group] + plan.geoip + plan.spool
    files += plan.cache
    if plan.probe_id is not None:
        files.append(plan.probe_id)
    if plan.config is not None:
        files.append(plan.config)
    for path in files:
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            done.errors.append(f"{path}: {exc.strerror or exc}")
            continue
        done.removed.append(path)
    done.removed += remove_empty_dirs(plan.dirs)
    return done
