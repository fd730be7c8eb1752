"""`probe proxy check LINK...`: does an MTProxy link work from here, and which kinds get through?

Each link gets a real handshake through the proxy (probe/steps/mtproxy/), concurrently (a
semaphore bounds it). Links can come from the command line or, with ``-``, from standard input,
which keeps their secrets out of the shell's history and the process list. A secret is sent only
to its proxy: never printed, logged or written (the links are named by server and port), and no
control server is asked (docs/mtproxy.md). Exit status 0 when every link was checked (a proxy
that does not work is a result), 2 for a link that cannot be parsed (named by its position,
without its secret)."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TYPE_CHECKING

import click

from probe.cli.common import EXIT_OK, BadInput, config_path_in_use, parse_resolver
from probe.cli.localized import LocalizedCommand, LocalizedSubgroup, lang_option
from probe.i18n import N_, _, render

if TYPE_CHECKING:
    from probe.analysis.mtproxy import ProxyVerdict
    from probe.observations.mtproxy import MTProxyCheck
    from probe.steps.mtproxy import ProxyLink

#: links checked at once
CONCURRENCY = 8
#: more links than this in one command is surely a mistake (or a list meant for another tool)
MAX_LINKS = 200


@click.group("proxy", cls=LocalizedSubgroup, help=N_("Check MTProxy links (Telegram proxies)."))
@lang_option()
def proxy_group() -> None:
    """Check MTProxy links (Telegram proxies)."""


def _read_links(links: tuple[str, ...]) -> list[str]:
    texts: list[str] = []
    for link in links:
        if link == "-":
            texts.extend(line.strip() for line in sys.stdin if line.strip())
        else:
            texts.append(link)
    if not texts:
        raise BadInput(_("no proxy link given (standard input was empty)"))
    if len(texts) > MAX_LINKS:
        raise BadInput(_("at most {count} links at once").format(count=MAX_LINKS))
    return texts


@proxy_group.command(
    "check",
    cls=LocalizedCommand,
    help=N_(
        "Check MTProxy links (tg://proxy?… or https://t.me/proxy?…) with a real handshake "
        "through each proxy, and say which kinds of proxy (plain, padded dd, fake-TLS ee) get "
        "through from here. A secret is sent only to its proxy, and never shown or stored. "
        "Give - to read the links from standard input."
    ),
)
@lang_option()
@click.argument("links", nargs=-1, required=True, metavar="LINK...")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1, max=300.0),
    default=10.0,
    metavar="SECONDS",
    help=N_("Timeout of each step (default 10)."),
)
@click.option("--resolver", metavar="IP[:PORT]", help=N_("The only DNS server used."))
@click.option(
    "--dc",
    type=click.IntRange(1, 5),
    default=2,
    help=N_("The Telegram data centre the proxy is asked to reach (default 2)."),
)
@click.option("--json", "as_json", is_flag=True, help=N_("One JSON object per link on stdout."))
@click.option(
    "--yes",
    "assume_yes",
    is_flag=True,
    help=N_("I have read the risks and accept them: do not ask (also PROBE_ACCEPT_RISKS=1)."),
)
def proxy_check_command(
    links: tuple[str, ...],
    timeout: float,
    resolver: str | None,
    dc: int,
    as_json: bool,
    assume_yes: bool,
) -> int:
    """Check MTProxy links with a real handshake through each proxy."""
    from probe.cli import consent
    from probe.steps.mtproxy import LinkError, parse_link

    parsed = []
    for index, text in enumerate(_read_links(links), start=1):
        try:
            parsed.append(parse_link(text))
        except LinkError as exc:
            problem = _(exc.template).format(**exc.args_)
            raise BadInput(
                _("link {index}: {problem}").format(index=index, problem=problem)
            ) from None
    server = parse_resolver(resolver)
    consent.require_for_run(assume_yes, config_path_in_use())
    checks = asyncio.run(_check_all(parsed, server, timeout, dc))
    _show(checks, as_json)
    return EXIT_OK


async def _check_all(
    links: list[ProxyLink], server: tuple[str, int] | None, timeout: float, dc: int
) -> list[MTProxyCheck]:
    from probe.steps import dns
    from probe.steps.mtproxy import mtproxy_check

    pool = dns.GetaddrinfoPool() if server is None else None
    resolver = dns.Resolver(server, pool=pool)
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(link: ProxyLink) -> MTProxyCheck:
        async with limit:
            return await mtproxy_check(link, resolver=resolver, timeout=timeout, dc=dc)

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(link)) for link in links]
    finally:
        if pool is not None:
            pool.close()
    return [task.result() for task in tasks]


def _kind_names(kinds: list[str]) -> str:
    from probe.analysis.mtproxy import KIND_NAMES

    return ", ".join(render(KIND_NAMES[kind]) for kind in kinds) or _("none")


def _show(checks: list[MTProxyCheck], as_json: bool) -> None:
    from probe.analysis.mtproxy import KIND_NAMES, WORKS, proxy_verdicts

    verdicts = proxy_verdicts(checks)
    if as_json:
        for check, verdict in zip(checks, verdicts, strict=True):
            record = check.to_dict()
            record["verdict"] = {"status": verdict.status, "reason": verdict.reason.english()}
            click.echo(json.dumps(record, sort_keys=True))
        return
    for verdict in verdicts:
        kind = render(KIND_NAMES[verdict.kind])
        if verdict.status == WORKS:
            line = _("{proxy} {kind}: works — {reason}.")
        else:
            line = _("{proxy} {kind}: does not work from here — {reason}.")
        click.echo(line.format(proxy=verdict.proxy, kind=kind, reason=render(verdict.reason)))
    _show_kinds(verdicts)


def _show_kinds(verdicts: list[ProxyVerdict]) -> None:
    from probe.analysis.mtproxy import kinds_summary

    through, blocked = kinds_summary(verdicts)
    click.echo(_("Proxy kinds that got through: {kinds}.").format(kinds=_kind_names(through)))
    if blocked:
        click.echo(_("Proxy kinds that did not: {kinds}.").format(kinds=_kind_names(blocked)))
