"""What a volunteer reads after a round: one row per service, in plain words, and the same
facts as one JSON object for scripts (`probe run --json`)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from probe.round.records import RecordTally, ServiceTally
from probe.round.runner import RoundResult

SERVICE_NAMES = {
    "telegram": "Telegram",
    "whatsapp": "WhatsApp",
    "signal": "Signal",
    "facebook_messenger": "Facebook Messenger",
    "baseline": "Baseline sites",
}
STATUS_ORDER = ("blocked", "down", "inconclusive", "ok")


def _yes_no(value: bool | None) -> str:
    return {True: "yes", False: "no"}.get(value, "unknown")  # type: ignore[arg-type]


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
        "control_failure": result.control_failure,
        "bytes_sent": result.bytes_sent,
        "bytes_received": result.bytes_received,
        "services": service_rows(result),
    }


def _headline(row: dict[str, Any]) -> str:
    parts = []
    if row["data_centres"]:
        dc = row["data_centres"]
        parts.append(f"data centres reachable {dc['reachable']}/{dc['total']}")
    if row["web"]:
        web = row["web"]
        parts.append(f"web {web['reachable']}/{web['total']}")
    counts = row["counts"]
    parts.append(", ".join(f"{n} {s}" for s, n in counts.items() if n))
    return "; ".join(p for p in parts if p)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def print_summary(result: RoundResult, console: Console) -> None:
    """The final table per service, the reasons for whatever is not ok, and the round's cost."""
    print_rows(service_rows(result), console, offline=result.offline)
    _print_notes(result, console)
    console.print(
        f"Round {result.report_id}: {len(result.records)} targets in {result.runtime:.1f} s, "
        f"sent {_size(result.bytes_sent)}, received {_size(result.bytes_received)}. "
        f"Results: {result.path}",
        highlight=False,
        markup=False,
    )


def print_rows(
    rows: list[dict[str, Any]],
    console: Console,
    *,
    offline: bool,
    title: str = "probe: results of this round",
) -> None:
    """The table per service, then one sentence per target that is not ok (or, when the
    probe was offline, the one sentence that says so)."""
    console.print(_table(rows, title))
    if offline:
        console.print(
            "[bold]This probe appears to be offline[/bold]: no baseline site and no control "
            "server could be reached, so nothing here is called blocked."
        )
        return
    for row in rows:
        for reason in row["reasons"][:8]:
            # markup=False: a reason may quote a page ("[scrubbed]" is not a style)
            console.print(f"  - {reason}", highlight=False, markup=False)


def _table(rows: list[dict[str, Any]], title: str) -> Table:
    """One row per service: status, the two answers, how it is blocked, the headline."""
    table = Table(title=escape(title), title_justify="left")
    table.add_column("service")
    table.add_column("status")
    table.add_column("usable?")
    table.add_column("interfered?")
    table.add_column("how")
    table.add_column("details")
    colours = {"ok": "green", "blocked": "red", "down": "yellow", "inconclusive": "magenta"}
    answer_colours = {"yes": "green", "no": "red", "unknown": "magenta"}
    for row in rows:
        how = ", ".join(row["methods"]) or "-"
        if row["fingerprints"]:
            how += " (confirmed: " + ", ".join(row["fingerprints"]) + ")"
        name = escape(SERVICE_NAMES.get(row["service"], row["service"]))
        colour = colours.get(row["status"], "white")
        usable = _yes_no(row["usable"]) if row["service"] != "baseline" else "-"
        interfered = _yes_no(row["interfered"]) if row["service"] != "baseline" else "-"
        if row["service"] != "baseline":
            usable = f"[{answer_colours[usable]}]{usable}[/{answer_colours[usable]}]"
            # "interfered: yes" is the alarming answer
            ic = {"yes": "red", "no": "green"}.get(interfered, "magenta")
            interfered = f"[{ic}]{interfered}[/{ic}]"
        table.add_row(
            name,
            f"[{colour}]{row['status']}[/{colour}]",
            usable,
            interfered,
            escape(how),
            escape(_headline(row)),
        )
    return table


def _print_notes(result: RoundResult, console: Console) -> None:
    """What limits this round's verdicts: an unidentified network, the vantage's notes, no
    control."""
    if result.vantage.probe_asn == "AS0" and not result.offline:
        if result.address_learned:
            why = (
                "its public address is not in the network data (refresh it with "
                "`probe geoip update`)"
            )
        else:
            why = (
                "its public address could not be learned (no address-discovery server and no "
                "control answered), so every address in pages and headers was redacted"
            )
        console.print(
            f"[yellow]note:[/yellow] This probe's network could not be identified: {why}. "
            "The records say AS0 and country ZZ.",
            highlight=False,
        )
    for note in result.vantage.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    if result.control_failure:
        console.print(
            f"No control server answered ({result.control_failure}); verdicts rely on this "
            "vantage alone and say inconclusive where that is not enough."
        )
