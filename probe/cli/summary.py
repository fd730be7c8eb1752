"""What a volunteer reads after a round: one row per service, in plain words, and the same
facts as one JSON object for scripts (`probe run --json`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from probe.analysis.service_rules import DISPLAY_NAMES
from probe.i18n import C, Names, _, pgettext, render, text_of
from probe.i18n.message import Msg
from probe.round.records import RecordTally, ServiceTally
from probe.round.runner import RoundResult

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

#: how the summary names a service (a name it does not know is shown as it is)
SERVICE_NAMES: dict[str, Msg] = {**DISPLAY_NAMES, "baseline": C("service", "Baseline sites")}
STATUS_ORDER = ("blocked", "down", "inconclusive", "ok")
#: a status as the table says it
STATUS_WORDS = {
    "ok": C("status", "ok"),
    "blocked": C("status", "blocked"),
    "down": C("status", "down"),
    "inconclusive": C("status", "inconclusive"),
}


def _count_words(status: str, count: int) -> Msg:
    """ "5 blocked": a count of targets with a status."""
    return {
        "blocked": C("summary", "{count} blocked", count=count),
        "down": C("summary", "{count} down", count=count),
        "inconclusive": C("summary", "{count} inconclusive", count=count),
    }.get(status) or C("summary", "{count} ok", count=count)


def status_word(status: str) -> str:
    """A target's or a service's status in the volunteer's language."""
    word = STATUS_WORDS.get(status)
    return render(word) if word is not None else status


def _yes_no(value: bool | None) -> str:
    return {True: "yes", False: "no"}.get(value, "unknown")  # type: ignore[arg-type]


def _answer_word(answer: str) -> str:
    return {
        "yes": pgettext("answer", "yes"),
        "no": pgettext("answer", "no"),
        "unknown": pgettext("answer", "unknown"),
    }.get(answer, answer)


def _service_name(service: str) -> str:
    name = SERVICE_NAMES.get(service)
    return render(name) if name is not None else service


def service_rows(result: RoundResult) -> list[dict[str, Any]]:
    """Per service: counts by status, methods, confirmed fingerprints, a one-line headline
    (from the round's tally of its records, records.RecordTally)."""
    return tally_rows(result.records)


def tally_rows(records: RecordTally) -> list[dict[str, Any]]:
    """`service_rows` of a tally: of a round just run, or of one read back (`probe results`)."""
    services = records.services
    return [_row(services[name]) for name in sorted(services, key=lambda s: (s == "baseline", s))]


def _row(tally: ServiceTally) -> dict[str, Any]:
    statuses = tally.statuses
    usable, interfered = tally.usable_and_interfered()
    if statuses.get("blocked"):
        status = "blocked"
    elif statuses.get("ok"):
        status = "ok"
    elif statuses.get("down"):
        status = "down"
    else:
        status = "inconclusive"
    return {
        "service": tally.name,
        "status": status,
        "usable": usable,
        "interfered": interfered,
        "targets": tally.targets,
        "counts": {s: statuses.get(s, 0) for s in STATUS_ORDER},
        "methods": [m for m, _ in tally.methods.most_common() if m],
        "fingerprints": sorted(tally.fingerprints),
        "data_centres": (
            {"reachable": tally.dc_ok, "total": tally.dc_total} if tally.dc_total else None
        ),
        "web": {"reachable": tally.web_ok, "total": tally.web_total} if tally.web_total else None,
        "reasons": list(tally.reasons),  # the first records.MAX_REASONS
    }


def round_summary(result: RoundResult) -> dict[str, Any]:
    """The `--json` object for one round (no addresses, nothing identifying)."""
    return {
        "report_id": result.report_id,
        "measurement_start_time": result.start.strftime("%Y-%m-%d %H:%M:%S"),
        "runtime": result.runtime,
        "results_file": result.path,
        "targets": len(result.records),
        "interrupted": result.interrupted,
        "probe_asn": result.vantage.probe_asn,
        "probe_cc": result.vantage.probe_cc,
        "network_type": result.vantage.network_type,
        "address_learned": result.address_learned,
        "vantage": result.x_vantage,
        "offline": result.offline,
        "shutdown": result.shutdown,
        "control_failure": result.control_failure,
        "bytes_sent": result.bytes_sent,
        "bytes_received": result.bytes_received,
        "services": service_rows(result),
    }


def _headline(row: dict[str, Any]) -> str:
    parts: list[str] = []
    if row["data_centres"]:
        dc = row["data_centres"]
        parts.append(
            _("data centres reachable {reachable}/{total}").format(
                reachable=dc["reachable"], total=dc["total"]
            )
        )
    if row["web"]:
        web = row["web"]
        parts.append(
            _("web {reachable}/{total}").format(reachable=web["reachable"], total=web["total"])
        )
    counts = row["counts"]
    found = [_count_words(s, n) for s, n in counts.items() if n]
    parts.append(render(Names(tuple(found))) if found else "")
    return pgettext("clause separator", "; ").join(p for p in parts if p)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def print_summary(result: RoundResult, console: Console) -> None:
    """The final table per service, the reasons for whatever is not ok, and the round's cost."""
    print_rows(service_rows(result), console, offline=result.offline, shutdown=result.shutdown)
    _print_notes(result, console)
    console.print(
        _(
            "Round {report_id}: {targets} targets in {seconds} s, sent {sent}, received "
            "{received}. Results: {path}"
        ).format(
            report_id=result.report_id,
            targets=len(result.records),
            seconds=f"{result.runtime:.1f}",
            sent=_size(result.bytes_sent),
            received=_size(result.bytes_received),
            path=result.path,
        ),
        highlight=False,
        markup=False,
    )


def print_rows(
    rows: list[dict[str, Any]],
    console: Console,
    *,
    offline: bool,
    title: str | None = None,
    shutdown: bool = False,
) -> None:
    """The table per service, then one sentence per target that is not ok (or, when the
    probe was offline or cut off from abroad, the one sentence that says so), in the
    volunteer's language."""
    console.print(_table(rows, title if title is not None else _("probe: results of this round")))
    if shutdown:
        console.print(
            _(
                "[bold]International connectivity looks down[/bold]: sites inside the country "
                "answered, but no international baseline site and no control server did. This "
                "looks like an internet shutdown or a network that lets through only an "
                "allowlist, so nothing here is called blocked."
            )
        )
        return
    if offline:
        console.print(
            _(
                "[bold]This probe appears to be offline[/bold]: no baseline site and no control "
                "server could be reached, so nothing here is called blocked."
            )
        )
        return
    for row in rows:
        for reason in row["reasons"][:8]:
            # markup=False: a reason may quote a page ("[scrubbed]" is not a style)
            console.print(f"  - {render(text_of(reason))}", highlight=False, markup=False)


def _table(rows: list[dict[str, Any]], title: str) -> Table:
    """One row per service: status, the two answers, how it is blocked, the headline."""
    # rich is imported here: `probe run --json` never draws a table (~0.19 G instructions)
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title), title_justify="left")
    table.add_column(escape(_("service")))
    table.add_column(escape(_("status")))
    table.add_column(escape(_("usable?")))
    table.add_column(escape(_("interfered?")))
    table.add_column(escape(_("how")))
    table.add_column(escape(_("details")))
    colours = {"ok": "green", "blocked": "red", "down": "yellow", "inconclusive": "magenta"}
    answer_colours = {"yes": "green", "no": "red", "unknown": "magenta"}
    for row in rows:
        # methods and fingerprint names are technical tokens, shown as they are
        how = ", ".join(row["methods"]) or "-"
        if row["fingerprints"]:
            how = _("{methods} (confirmed: {fingerprints})").format(
                methods=how, fingerprints=", ".join(row["fingerprints"])
            )
        name = _service_name(row["service"])
        colour = colours.get(row["status"], "white")
        usable = _yes_no(row["usable"]) if row["service"] != "baseline" else "-"
        interfered = _yes_no(row["interfered"]) if row["service"] != "baseline" else "-"
        if row["service"] != "baseline":
            word = escape(_answer_word(usable))
            usable = f"[{answer_colours[usable]}]{word}[/{answer_colours[usable]}]"
            # "interfered: yes" is the alarming answer
            ic = {"yes": "red", "no": "green"}.get(interfered, "magenta")
            interfered = f"[{ic}]{escape(_answer_word(interfered))}[/{ic}]"
        status = escape(status_word(row["status"]))
        table.add_row(
            escape(name),
            f"[{colour}]{status}[/{colour}]",
            usable,
            interfered,
            escape(how),
            escape(_headline(row)),
        )
    return table


def _print_notes(result: RoundResult, console: Console) -> None:
    """What limits this round's verdicts: an unidentified network, the vantage's notes, no
    control."""
    from rich.markup import escape

    label = _("note:")
    note = f"[yellow]{escape(label)}[/yellow]"
    if result.vantage.probe_asn == "AS0" and not result.offline:
        if result.address_learned:
            text = _(
                "This probe's network could not be identified: its public address is not in "
                "the network data (refresh it with `probe geoip update`). The records say AS0 "
                "and country ZZ."
            )
        else:
            text = _(
                "This probe's network could not be identified: its public address could not "
                "be learned (no address-discovery server and no control answered), so every "
                "address in pages and headers was redacted. The records say AS0 and country ZZ."
            )
        console.print(f"{note} {escape(text)}", highlight=False)
    for said in result.vantage.notes:
        console.print(f"{note} {escape(render(text_of(said)))}")
    if result.control_failure:
        console.print(
            _(
                "No control server answered ({failure}); verdicts rely on this vantage alone "
                "and say inconclusive where that is not enough."
            ).format(failure=result.control_failure),
            markup=False,
        )
