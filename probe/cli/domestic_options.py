"""The domestic baselines of `probe run` (issue 19 item 5): which list file (`--domestic-baselines`,
`--country`, or the country of the latest rounds), its targets tagged `domestic`, and whether a
list chosen by country is worth measuring in this round. Kept apart from run_options.py, which
declares and checks the options themselves."""

from __future__ import annotations

from collections.abc import Sequence

from probe.cli.common import BadInput
from probe.i18n import _
from probe.targets import Target, TargetList


def domestic_list(path: str | None, country: str | None, out_dir: str) -> str | None:
    """The domestic baselines' list file: `--domestic-baselines`, else the bundled one for
    `--country` (targets/domestic/<cc>.toml), else for the country the GeoIP data gave the
    latest rounds in `out_dir` (during a shutdown this round cannot learn it: that needs the
    way out), else none."""
    from probe.targets.domestic import domestic_list_path

    if path is not None:
        return path  # read with the other lists: a problem in it is named like theirs
    return domestic_list_path(country or last_known_country(out_dir))


def last_known_country(out_dir: str, rounds: int = 3) -> str | None:
    """The country of the newest of the last `rounds` rounds that knew one (never raises:
    unreadable files and directories give none)."""
    from probe.localdata import round_countries

    try:
        countries = round_countries(out_dir, rounds)
    except (OSError, ValueError):
        return None
    for probe_cc, network_type in reversed(countries):
        if probe_cc != "ZZ" and network_type != "vpn":
            return probe_cc
    return None


def mark_domestic(lists: Sequence[TargetList], domestic: str | None) -> list[Target]:
    """Every target of `lists`; those of the domestic list tagged `domestic` (bad input when
    one is not a baseline)."""
    from probe.targets.domestic import as_domestic, same_file

    targets: list[Target] = []
    for target_list in lists:
        if domestic is None or not same_file(target_list.path, domestic):
            targets.extend(target_list.targets)
            continue
        found, others = as_domestic(target_list.targets)
        if others:
            raise BadInput(
                _('{file}: {id}: a domestic baseline needs service = "baseline"').format(
                    file=domestic, id=others[0]
                )
            )
        targets.extend(found)
    return targets


def domestic_if_useful(
    lists: list[TargetList], targets: list[Target], domestic: str
) -> tuple[list[TargetList], list[Target]]:
    """The domestic list chosen by country only where it tells something: next to
    international baselines, in a round that measures public addresses (a loopback or lab list
    contacts no one of its own accord, and gets no public sites added)."""
    from probe.targets.domestic import same_file
    from probe.vantage.facts import only_private_targets

    others = [t for t in targets if not t.is_domestic]
    if any(t.is_baseline for t in others) and not only_private_targets(others):
        return lists, targets
    kept = [lst for lst in lists if not same_file(lst.path, domestic)]
    names = {lst.name for lst in kept}
    return kept, [t for t in targets if not t.is_domestic or t.list_name in names]
