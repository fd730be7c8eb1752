"""Domestic baselines: sites inside one country that stay reachable when the way out is cut.

During Iran's shutdowns (November 2019, 2022) the national network kept working while
international traffic stopped, and some networks let through only an allowlist. The
international baselines alone call that "offline"; one domestic site that answers tells the
two apart (`VantageFacts.connectivity`). The bundled lists live in ``targets/domestic/<cc>.toml``
and are chosen by the vantage's country (`--country`, the config's `country`, else the
country of the latest rounds: probe/cli/run_options.py), or given with
`--domestic-baselines FILE`. Their targets are baselines (`service = "baseline"`) tagged
``domestic``; a file given by hand gets the tag added.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from probe.targets.loader import bundled_list_dir
from probe.targets.model import Target
from probe.targets.schema import BASELINE_SERVICE, DOMESTIC_TAG


def domestic_list_path(country: str | None) -> str | None:
    """The bundled domestic list for a two-letter country code, if there is one."""
    if not country or len(country) != 2 or not country.isalpha():
        return None
    path = bundled_list_dir() / "domestic" / f"{country.lower()}.toml"
    return str(path) if path.is_file() else None


def as_domestic(targets: Sequence[Target]) -> tuple[list[Target], list[str]]:
    """The baselines among `targets`, each tagged ``domestic``; and the ids of the targets that
    are not baselines (a domestic list holds nothing else)."""
    found = [_tagged(t) for t in targets if t.service == BASELINE_SERVICE]
    return found, [t.id for t in targets if t.service != BASELINE_SERVICE]


def _tagged(target: Target) -> Target:
    if DOMESTIC_TAG in target.tags:
        return target
    tags = (*target.tags, DOMESTIC_TAG)
    definition = target.definition
    if definition:
        definition = {**definition, "tags": list(tags)}
    return replace(target, tags=tags, definition=definition)


def same_file(a: str, b: str) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except (OSError, RuntimeError):
        return False
