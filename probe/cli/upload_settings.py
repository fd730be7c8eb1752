"""Where and how records are uploaded, from the options of `probe upload` and `probe run
--upload` and the config file's `[upload]` table (url, token, proxy, ca_file, timeout):

    [upload]
    url = "https://collector.example.org"
    token = "..."                        # or PROBE_UPLOAD_TOKEN
    proxy = "socks5h://127.0.0.1:1080"   # or PROBE_UPLOAD_PROXY, or --proxy

A configured `url` makes every `probe run` upload its records after the round
(`--no-upload` skips it once)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from probe.cli.common import BadInput, check_ca_files, option_error
from probe.i18n import _

if TYPE_CHECKING:
    from probe.upload import ClientSettings

TOKEN_ENV = "PROBE_UPLOAD_TOKEN"
DEFAULT_TIMEOUT = 300.0


def configured() -> dict[str, Any]:
    """The config file's `[upload]` values (click parameter → value), or {}."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return {}
    found = (ctx.find_root().default_map or {}).get("upload", {})
    return dict(found) if isinstance(found, dict) else {}


def proxy_of(given: str | None, param: str) -> str | None:
    """The proxy: the command line's, else `$PROBE_UPLOAD_PROXY`, else the config's."""
    from probe.upload import PROXY_ENV

    ctx = click.get_current_context()
    from_config = ctx.get_parameter_source(param) is click.core.ParameterSource.DEFAULT_MAP
    if given and not from_config:
        return given
    return os.environ.get(PROXY_ENV) or given


def client_settings(
    url: str,
    *,
    url_param: str,
    token: str | None,
    proxy: str | None,
    proxy_param: str,
    ca_files: tuple[str, ...],
    timeout: float,
) -> ClientSettings:
    """Checked settings for the uploads (BadInput naming the option or config line)."""
    # probe.upload (the spool, SQLite, gzip) is imported only when there is an upload to set
    # up: every `probe run` without one used to load it.
    from probe.upload import ClientSettings, parse_collector_url, parse_proxy

    try:
        base = parse_collector_url(url)
    except ValueError as exc:
        raise option_error(url_param, url, str(exc)) from None
    try:
        parsed = parse_proxy(proxy) if proxy else None
    except ValueError as exc:
        raise option_error(proxy_param, proxy, str(exc)) from None
    check_ca_files(ca_files)
    if not 1.0 <= timeout <= 3600.0:
        raise BadInput(
            _("--timeout {value}: must be between 1 and 3600 seconds").format(value=timeout)
        )
    return ClientSettings(base, token or None, parsed, tuple(ca_files), timeout)


def for_run(
    upload: str | None, no_upload: bool, upload_proxy: str | None, ca_files: tuple[str, ...]
) -> ClientSettings | None:
    """The upload after each round of `probe run`: `--upload URL`, else `[upload] url`;
    None with `--no-upload` or neither."""
    config = configured()
    url = upload or config.get("url")
    if no_upload or not url:
        return None
    from probe.upload import PROXY_ENV

    return client_settings(
        str(url),
        url_param="upload",
        token=os.environ.get(TOKEN_ENV) or config.get("token"),
        proxy=upload_proxy or os.environ.get(PROXY_ENV) or config.get("proxy"),
        proxy_param="upload_proxy",
        ca_files=(*ca_files, *config.get("ca_files", ())),
        timeout=float(config.get("timeout", DEFAULT_TIMEOUT)),
    )
