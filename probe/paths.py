"""Where the probe keeps its files on this device: the per-user data directory (results and
GeoIP updates), the default results directory inside it, and the per-user cache directory
(files the probe can always rebuild, e.g. the parsed fingerprint database).

`$PROBE_DATA_DIR` points the data directory elsewhere (tests, or a probe run from a USB stick);
otherwise it is the platform's: `~/.local/share/probe` on Linux (`$XDG_DATA_HOME/probe`),
`~/Library/Application Support/probe` on macOS. `$PROBE_CACHE_DIR` does the same for the cache
directory: `~/.cache/probe` on Linux (`$XDG_CACHE_HOME/probe`), `~/Library/Caches/probe` on
macOS.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Points the per-user data directory elsewhere.
DATA_DIR_ENV = "PROBE_DATA_DIR"
#: Points the per-user cache directory elsewhere.
CACHE_DIR_ENV = "PROBE_CACHE_DIR"


def user_data_dir() -> Path:
    """The per-user data directory: $PROBE_DATA_DIR, else the platform's (XDG_DATA_HOME)."""
    configured = os.environ.get(DATA_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return platformdirs.user_data_path("probe", appauthor=False)


def user_cache_dir() -> Path:
    """The per-user cache directory: $PROBE_CACHE_DIR, else the platform's (XDG_CACHE_HOME).
    Nothing in it is needed: a file missing or unreadable there is rebuilt."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return platformdirs.user_cache_path("probe", appauthor=False)


def default_results_dir() -> Path:
    """Where `probe run` writes its records unless `--out` or the config's `out` says
    otherwise (an absolute path)."""
    return Path(os.path.abspath(user_data_dir() / "results"))


def spool_path() -> Path:
    """The upload spool (probe/upload/spool.py): records not yet delivered to the collector."""
    return Path(os.path.abspath(user_data_dir() / "upload" / "spool.sqlite3"))
