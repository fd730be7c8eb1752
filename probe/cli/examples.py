"""A short example at the end of every command's `--help` (click's epilog), in one place so
that every command has one (tests/test_local_data.py checks) and they are translated together
(the localized commands translate their epilog when help is shown: probe/cli/localized.py).

Lines after ``\\b`` are printed as written (click does not rewrap them)."""

from __future__ import annotations

import click

from probe.i18n import N_

#: the examples of the commands whose help is translated (`cls=LocalizedCommand`) are marked
#: with N_ and shown in the volunteer's language; the commands' names, options and paths in
#: them stay as they are, only the words (and the comments after `#`) are translated
EXAMPLES: dict[str, str] = {
    "probe": N_(
        """\
Examples:
  probe run                      # measure once, then see the table
  probe results                  # the rounds measured so far
  probe run --help               # every option of a command"""
    ),
    "probe run": N_(
        """\
Examples:
  probe run                                 # every bundled list, once
  probe run --only 'telegram/*'             # Telegram only (and the baseline sites)
  probe run --control https://control.example.org --every 1h
  probe run my-list.toml --out ./my-results --keep-days 30
  probe run --country IR                    # with Iran's domestic sites: shutdown, not offline
  probe run --domestic-baselines my-sites.toml   # your own sites inside the country
  probe run --throttle-check 192.0.2.7:8443 # also time downloads (probe control bulk)
  probe run --locate-censor                 # how many hops away blocking starts
  probe run --neutral-server 203.0.113.5:8443 --residual-window 120   # how TLS is blocked"""
    ),
    "probe results": N_(
        """\
Examples:
  probe results                  # one line per round
  probe results show 17d18232    # one round's table, by report id"""
    ),
    "probe results list": N_(
        """\
Examples:
  probe results list --last 10
  probe results list --json --out ./my-results"""
    ),
    "probe results show": N_(
        """\
Example:
  probe results show 17d18232    # the first characters of a report id are enough"""
    ),
    "probe proxy": N_(
        """\
Example:
  probe proxy check 'tg://proxy?server=proxy.example.org&port=443&secret=ee…'"""
    ),
    "probe proxy check": N_(
        """\
Examples:
  probe proxy check 'tg://proxy?server=proxy.example.org&port=443&secret=dd…'
  probe proxy check - < my-proxies.txt     # one link a line: secrets stay out of history
  probe proxy check --json LINK1 LINK2     # one JSON object per link, without secrets"""
    ),
    "probe purge": N_(
        """\
Examples:
  probe purge                    # lists what it will remove, then asks
  probe purge --yes              # for scripts: no question"""
    ),
    "probe id": N_(
        """\
Examples:
  probe id show                  # the random id written in your records
  probe id rotate                # a new one: future records are not linked to past ones"""
    ),
    "probe id show": N_(
        """\
Example:
  probe id show"""
    ),
    "probe id rotate": N_(
        """\
Example:
  probe id rotate"""
    ),
    "probe upload": N_(
        """\
Examples:
  probe upload --to https://collector.example.org     # everything waiting, and your results
  probe upload --status                               # what is waiting, and why
  probe upload --proxy socks5h://127.0.0.1:1080 ~/.local/share/probe/results"""
    ),
    "probe targets": """\
Example:
  probe targets list             # what `probe run` measures""",
    "probe targets validate": """\
Example:
  probe targets validate targets/   # every problem as file:line: message""",
    "probe targets list": """\
Examples:
  probe targets list
  probe targets list targets/telegram.toml""",
    "probe targets import-citizenlab": """\
Example:
  probe targets import-citizenlab ir.csv -o targets/citizenlab-ir.toml --category COMT""",
    "probe analyze": """\
Example:
  probe analyze ~/.local/share/probe/results/2026-11-28/*.jsonl""",
    "probe report": """\
Examples:
  probe report                                    # your own results
  probe report results/ ooni-downloads/ --html report.html --since 2026-11-01
  probe report results/ --ooni-archive ooni-mirror/ --cc IR --since 2026-01-01
  probe report --ooni-archive ooni-mirror/raw --test-name telegram,web_connectivity
  probe report /srv/probe-collector --engine spark           # the same report, on Spark
  probe report /shared/collector --engine spark --spark-master spark://head:7077 \\
      --spark-scratch /shared/tmp    # a cluster: scratch on storage the workers share""",
    "probe control": """\
Example:
  probe control serve --host 0.0.0.0 --port 8080 --token SECRET""",
    "probe control serve": """\
Examples:
  probe control serve --host 0.0.0.0 --port 8080 --token SECRET
  probe control serve --host 0.0.0.0 --port 8080 --neutral-quic-port 443  # UDP 443 check
  probe control serve --host 0.0.0.0 --neutral-tls-port 8443   # + a TLS server for any name""",
    "probe control bulk": """\
Example:
  probe control bulk --host 0.0.0.0 --port 8443
  probe run --throttle-check 192.0.2.7:8443   # on the volunteer's side""",
    "probe collector": """\
Examples:
  probe collector serve /srv/probe-collector --tokens /etc/probe/collector-tokens
  probe report /srv/probe-collector       # everything the volunteers sent""",
    "probe collector serve": """\
Examples:
  probe collector serve /srv/probe-collector --tokens /etc/probe/collector-tokens
  probe collector serve ./collected --rebuild-index   # after restoring Parquet files
  kill -HUP <pid>                                     # read the tokens file again""",
    "probe geoip show": """\
Example:
  probe geoip show               # the databases in use and their dates""",
    "probe geoip update": """\
Example:
  probe geoip update             # DB-IP's lite files of this month""",
    "probe schedule": N_(
        """\
Examples:
  probe schedule install --every 1h
  probe schedule remove"""
    ),
    "probe schedule install": N_(
        """\
Example:
  probe schedule install --every 6h   # a round every 6 hours, with jitter"""
    ),
    "probe schedule remove": N_(
        """\
Example:
  probe schedule remove"""
    ),
}


def _walk(command: click.Command, path: str, every: bool) -> list[tuple[str, click.Command]]:
    """`command` and the commands below it; `every`: also the root's subcommands not imported
    yet (probe/cli/__init__.py imports each on first use)."""
    found = [(path, command)]
    if isinstance(command, click.Group):
        if every:
            context = click.Context(command)
            subs = [
                (name, command.get_command(context, name))
                for name in command.list_commands(context)
            ]
        else:
            subs = list(command.commands.items())
        for name, sub in subs:
            if sub is not None:
                found += _walk(sub, f"{path} {name}", every)
    return found


def add_examples(root: click.Command, path: str = "probe") -> None:
    """Set the epilog of `root` (named `path`) and of every command below it that has an
    example here (a command whose own help already shows examples keeps it)."""
    for where, command in _walk(root, path, every=False):
        text = EXAMPLES.get(where)
        if text is not None and not command.epilog:
            command.epilog = "\b\n" + text


def commands(root: click.Command) -> list[tuple[str, click.Command]]:
    """Every command path under `root` ("probe", "probe run", ...)."""
    return _walk(root, "probe", every=True)
