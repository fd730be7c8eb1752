"""Targets: what the probe measures, and the lists it reads them from.

`model` holds the `Target` and `TargetList` the rest of the probe works with, and a target's
one wire format (`Target.to_wire` / `Target.from_wire`: its ``[[targets]]`` table as JSON, the
shape records carry and the control server receives). `loader` reads the TOML lists
(DESIGN.md "Contract: target lists", docs/targets.md) and reports every problem as
``file:line: message``; `checks` and `fields` are the per-target and per-value rules the loader
and `from_wire` share, `positions` finds the line of a key (tomllib keeps none), `schema` the
constants and `text` how values are quoted in problems. Import from here: the names below are
the package's interface.
"""

from probe.targets.checks import TargetChecker
from probe.targets.fields import ca_problem, host_problem, is_ip, url_problem
from probe.targets.loader import (
    LoadResult,
    bundled_list_dir,
    bundled_list_paths,
    load_lists,
    parse_list_text,
    validate_paths,
)
from probe.targets.model import (
    MAX_WIRE_CHARS,
    MAX_WIRE_ITEMS,
    MEASURE_KEYS,
    Target,
    TargetList,
    TargetWireError,
    describe_targets,
    target_endpoints,
    target_from_wire,
)
from probe.targets.positions import _PositionScanner, scan_positions, toml_error
from probe.targets.schema import (
    BASELINE_SERVICE,
    CHECKS,
    DC_ID_MAX,
    DC_ID_MIN,
    DEFAULT_PORTS,
    DEFAULT_TRANSPORTS,
    HOST_CHECKS,
    LIST_KEYS,
    MAX_CA_BYTES,
    MAX_LIST_BYTES,
    NAME_PATTERN,
    SERVICE_PATTERN,
    TARGET_KEYS,
    TRANSPORTS,
    URL_CHECKS,
    Position,
)
from probe.targets.text import MAX_QUOTED, quote

__all__ = [
    "BASELINE_SERVICE",
    "CHECKS",
    "DC_ID_MAX",
    "DC_ID_MIN",
    "DEFAULT_PORTS",
    "DEFAULT_TRANSPORTS",
    "HOST_CHECKS",
    "LIST_KEYS",
    "MAX_CA_BYTES",
    "MAX_LIST_BYTES",
    "MAX_QUOTED",
    "MAX_WIRE_CHARS",
    "MAX_WIRE_ITEMS",
    "MEASURE_KEYS",
    "NAME_PATTERN",
    "SERVICE_PATTERN",
    "TARGET_KEYS",
    "TRANSPORTS",
    "URL_CHECKS",
    "LoadResult",
    "Position",
    "Target",
    "TargetChecker",
    "TargetList",
    "TargetWireError",
    "_PositionScanner",
    "bundled_list_dir",
    "bundled_list_paths",
    "ca_problem",
    "describe_targets",
    "host_problem",
    "is_ip",
    "load_lists",
    "parse_list_text",
    "quote",
    "scan_positions",
    "target_endpoints",
    "target_from_wire",
    "toml_error",
    "url_problem",
    "validate_paths",
]
