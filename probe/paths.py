"""Where the probe keeps its files on this device: the per-user data directory (results and
GeoIP updates) and the default results directory inside it.

`$PROBE_DATA_DIR` points the data directory elsewhere (tests, or a probe run from a USB stick);
otherwise it is the platform's: `~/.local/share/probe` on Linux (`$XDG_DATA_HOME/probe`),
`~/Library/Application Support/probe` on macOS.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Points the per-user data directory elsewhere.
DATA_DIR_ENV = "PROBE_DATA_DIR"


def user_data_dir() -> Path:
    """The per-user data directory: $PROBE_DATA_DIR, else the platform's (XDG_DATA_HOME)."""
    configured = os.environ.get(DATA_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return platformdirs.user_data_path("probe", appauthor=False)


def default_results_dir() -> Path:
    """Where `probe run` writes its records unless `--out` or the config's `out` says
    otherwise (an absolute path)."""
    return Path(os.path.abspath(user_data_dir() / "results"))


def spool_path() -> Path:
    """The upload spool (probe/upload/spool.py): records not yet delivered to the collector."""
    return Path(os.path.abspath(user_data_dir() / "upload" / "spool.sqlite3"))
