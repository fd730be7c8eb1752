"""`probe run`'s SNI swap options (--neutral-sni, --neutral-server, --residual-window): their
declarations (listed in run_options.OPTIONS) and the check that turns their text into the
flows' settings, bad input naming the option (exit status 2). See
probe/round/measure/sni_swap.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from probe.cli.common import option_error
from probe.i18n import N_, _

if TYPE_CHECKING:
    from probe.round.measure import MeasureConfig

#: the options' declarations, added to the end of run_options.OPTIONS
OPTIONS: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
    click.option(
        "--neutral-sni",
        metavar="NAME",
        default="www.example.com",
        show_default=True,
        help=N_(
            "When a TLS handshake fails, try this harmless name on the same address: "
            "it tells a filtered name from a filtered address."
        ),
    ),
    click.option(
        "--neutral-server",
        metavar="IP[:PORT]",
        help=N_(
            "A TLS server that accepts any name (probe control serve --neutral-tls-port): "
            "a failed handshake's name is tried there too."
        ),
    ),
    click.option(
        "--residual-window",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help=N_(
            "After a blocked handshake, re-test a harmless one to the same address for up to "
            "SECONDS (at most 600) and record how long the censor keeps blocking it "
            "(default 0: off)."
        ),
    ),
]


def sni_swap_config(
    measure: MeasureConfig,
    neutral_sni: str | None,
    neutral_server: str | None,
    residual_window: float,
) -> MeasureConfig:
    """The flows' configuration with the SNI swap's settings, after checking them."""
    import dataclasses
    import re

    from probe.addresses import is_ip_literal
    from probe.round.measure.sni_swap import MAX_RESIDUAL_WINDOW
    from probe.steps.dns import parse_resolver as parse_address

    name = (neutral_sni or "").strip().rstrip(".").lower()
    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,62}\.)+[a-z]{2,63}", name) or is_ip_literal(name):
        raise option_error("neutral_sni", neutral_sni, _("use a host name such as www.example.com"))
    server: tuple[str, int] | None = None
    if neutral_server is not None:
        text = neutral_server.strip()
        try:
            ip, port = parse_address(text)
        except ValueError:
            raise option_error(
                "neutral_server", neutral_server, _("use IP[:PORT] or [IPv6]:PORT")
            ) from None
        explicit = text.count(":") == 1 or (text.startswith("[") and "]:" in text)
        server = (ip, port if explicit else 443)
    if not 0 <= residual_window <= MAX_RESIDUAL_WINDOW:
        raise option_error(
            "residual_window",
            residual_window,
            _("must be between 0 and {most}").format(most=int(MAX_RESIDUAL_WINDOW)),
        )
    return dataclasses.replace(
        measure, neutral_sni=name, neutral_server=server, residual_window=residual_window
    )
