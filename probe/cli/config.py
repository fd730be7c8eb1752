"""The optional config file: defaults for `probe run` and `probe control serve`.

TOML at ``$XDG_CONFIG_HOME/probe/config.toml`` (``~/.config/probe/config.toml``; on macOS
``~/Library/Application Support/probe/config.toml``), or the path in ``--config`` /
``PROBE_CONFIG``. Options on the command line win over the file. Example::

    [run]
    control = ["https://control.example.org"]
    control_token = "..."
    out = "~/probe-results"   # ~ and $VARS are expanded; relative paths are relative to this file
    keep_days = 30        # delete local result files of rounds older than 30 days
    geoip_db = ["$HOME/dbip-asn-lite.mmdb", "/home/me/dbip-country-lite.mmdb"]
    country = "IR"        # where this probe is; a control that sees another country means VPN
    timeout = 10

    [upload]              # probe upload, and probe run uploads after each round (docs/upload.md)
    url = "https://collector.example.org"
    token = "..."
    proxy = "socks5h://127.0.0.1:1080"

    [control]
    port = 8080
    allow_net = []

    [consent]             # written by the first `probe run` at a terminal (probe/cli/consent.py)
    version = 1
    accepted = 2026-12-01
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A config problem, already phrased as ``file:line: message``."""


@dataclass(frozen=True, slots=True)
class Key:
    param: str  # the click parameter it sets
    kind: type | tuple[type, ...]
    many: bool = False


#: config key → click parameter, per command
KEYS: dict[str, dict[str, Key]] = {
    "run": {
        "control": Key("controls", str, many=True),
        "control_token": Key("control_token", str),
        "out": Key("out_dir", str),
        "keep_days": Key("keep_days", int),
        "timeout": Key("timeout", (int, float)),
        "concurrency": Key("concurrency", int),
        "resolver": Key("resolver", str),
        "ca_file": Key("ca_files", str, many=True),
        "geoip_db": Key("geoip_dbs", str, many=True),
        "fingerprints": Key("fingerprint_files", str, many=True),
        "source_address": Key("source_address", str),
        "body_cap": Key("body_cap", int),
        "country": Key("country", str),
        "ip_discovery": Key("ip_discovery", bool),
        "stun": Key("stun_servers", str, many=True),
        "ip_echo": Key("echo_urls", str, many=True),
        "own_net": Key("own_nets", str, many=True),
        "neutral_sni": Key("neutral_sni", str),
        "neutral_server": Key("neutral_server", str),
        "residual_window": Key("residual_window", (int, float)),
    },
    "upload": {
        "url": Key("url", str),
        "token": Key("token", str),
        "proxy": Key("proxy", str),
        "ca_file": Key("ca_files", str, many=True),
        "timeout": Key("timeout", (int, float)),
    },
    "control": {
        "host": Key("host", str),
        "port": Key("port", int),
        "allow_net": Key("allow_nets", str, many=True),
        "token": Key("token", str),
        "resolver": Key("resolver", str),
        "ca_file": Key("ca_files", str, many=True),
        "geoip_db": Key("geoip_dbs", str, many=True),
        "timeout": Key("timeout", (int, float)),
    },
}

#: click parameters whose values are file or directory paths: `~` and `$VAR` are expanded,
#: and a relative path is relative to the config file (not to wherever probe is started)
PATH_PARAMS = frozenset({"out_dir", "ca_files", "geoip_dbs", "fingerprint_files"})

#: sections that are not command defaults: [consent] is read by probe/cli/consent.py
OTHER_SECTIONS = ("consent",)


def default_path() -> Path:
    if "PROBE_CONFIG" in os.environ:
        return Path(os.environ["PROBE_CONFIG"])
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "probe" / "config.toml"
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "probe" / "config.toml"


def _line_of(text: str, section: str | None, key: str) -> int:
    """The line of `key` (inside `[section]` when given); 1 when not found."""
    current: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        header = re.match(r"\s*\[\s*([A-Za-z0-9_.-]+)\s*\]", line)
        if header:
            current = header.group(1)
            if section is None and current == key:
                return number
            continue
        if current == section and re.match(rf"\s*{re.escape(key)}\s*=", line):
            return number
    return 1


def _check(value: Any, kind: type | tuple[type, ...]) -> bool:
    return isinstance(value, kind) and not isinstance(value, bool)


def expand_path(value: str, base: Path, where: str) -> str:
    """`value` with `~` and `$VAR`/`${VAR}` expanded, then made relative to `base` (the config
    file's directory) when still relative. An unset variable is an error at `where`: expanding
    it to nothing would silently measure into the wrong directory."""
    for match in re.finditer(r"\$(?:\{(\w+)\}|(\w+))", value):
        name = match.group(1) or match.group(2)
        if name not in os.environ:
            raise ConfigError(f"{where} = {value!r}: ${name} is not set")
    expanded = os.path.expanduser(os.path.expandvars(value))
    return str(base / expanded)  # an absolute `expanded` replaces `base`


def load(
    path: Path | None = None,
    *,
    explicit: bool = False,
    sources: dict[str, dict[str, str]] | None = None,
) -> dict[str, dict[str, Any]]:
    """click `default_map` from the config file; {} when there is none (and none was asked
    for). Relative paths in the file are relative to the file. `sources`, when given, is
    filled with section → click parameter → "file:line: key", so that a bad value found later
    is reported where it was written."""
    path = path or default_path()
    if not path.exists():
        if explicit:
            raise ConfigError(f"{path}: config file not found")
        return {}
    try:
        text = path.read_text(encoding="utf-8-sig")  # editors on Windows add a BOM
        doc = tomllib.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}:1: cannot read config file ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None) or 1
        raise ConfigError(f"{path}:{line}: invalid TOML: {exc}") from None
    default_map: dict[str, dict[str, Any]] = {}
    for section, table in doc.items():
        if section in OTHER_SECTIONS:
            continue
        if section not in KEYS:
            known = ", ".join([*KEYS, *OTHER_SECTIONS])
            raise ConfigError(
                f"{path}:{_line_of(text, None, section)}: unknown section [{section}] ({known})"
            )
        if not isinstance(table, dict):
            raise ConfigError(f"{path}:{_line_of(text, None, section)}: {section} must be a table")
        values: dict[str, Any] = {}
        for key, value in table.items():
            line = _line_of(text, section, key)
            spec = KEYS[section].get(key)
            if spec is not None and sources is not None:
                sources.setdefault(section, {})[spec.param] = f"{path}:{line}: {key}"
            if spec is None:
                raise ConfigError(f"{path}:{line}: unknown key {key!r} in [{section}]")
            if spec.many:
                items = value if isinstance(value, list) else [value]
                if not all(_check(v, spec.kind) for v in items):
                    raise ConfigError(f"{path}:{line}: {key} must be a list of strings")
                if spec.param in PATH_PARAMS:
                    items = [expand_path(v, path.parent, f"{path}:{line}: {key}") for v in items]
                values[spec.param] = tuple(items)
            else:
                if not _check(value, spec.kind):
                    raise ConfigError(f"{path}:{line}: {key} has the wrong type")
                if spec.param in PATH_PARAMS:
                    value = expand_path(value, path.parent, f"{path}:{line}: {key}")
                values[spec.param] = value
        default_map[section] = values
    if "control" in default_map:
        default_map["control"] = {"serve": default_map["control"]}
    return default_map
