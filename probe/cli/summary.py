"""What a volunteer reads after a round: one row per service, in plain words, and the same
facts as one JSON object for scripts (`probe run --json`)."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from rich.console import Console
from rich.table import Table

from probe.analysis.service_rules import TargetVerdict, usable_and_interfered
from probe.round.runner import RoundResult

SERVICE_NAMES = {
    "telegram": "Telegram",
    "whatsapp": "WhatsApp",
    "signal": "Signal",
    "facebook_messenger": "Facebook Messenger",
    "baseline": "Baseline sites",
}
STATUS_ORDER = ("blocked", "down", "inconclusive", "ok")


def _service_of(record: dict[str, Any]) -> str:
    return str(record.get("test_name") or "unknown")


def _verdict(record: dict[str, Any]) -> dict[str, Any]:
    return (record.get("test_keys") or {}).get("verdict") or {}


def _check(record: dict[str, Any]) -> str:
    return str(((record.get("test_keys") or {}).get("target") or {}).get("check") or "")


def _tags(record: dict[str, Any]) -> tuple[str, ...]:
    tags = ((record.get("test_keys") or {}).get("target") or {}).get("tags") or ()
    return tuple(str(t) for t in tags) if isinstance(tags, list | tuple) else ()


def _yes_no(value: bool | None) -> str:
    return {True: "yes", False: "no"}.get(value, "unknown")  # type: ignore[arg-type]


def service_rows(result: RoundResult) -> list[dict[str, Any]]:
    """Per service: counts by status, methods, confirmed fingerprints, a one-line headline."""
    by_service: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in result.records:
        by_service[_service_of(record)].append(record)
    rows = []
    for service in sorted(by_service, key=lambda s: (s == "baseline", s)):
        records = by_service[service]
        statuses = Counter(_verdict(r).get("status", "inconclusive") for r in records)
        methods = Counter(
            _verdict(r).get("blocking") for r in records if _verdict(r).get("status") == "blocked"
        )
        fingerprints = sorted({f for r in records for f in _verdict(r).get("fingerprints") or []})
        dcs = [r for r in records if _check(r) == "mtproto"]
        dc_ok = sum(1 for r in dcs if _verdict(r).get("status") == "ok")
        web = [r for r in records if _check(r) in ("http", "https")]
        web_ok = sum(1 for r in web if _verdict(r).get("status") == "ok")
        usable, interfered = usable_and_interfered(
            [
                TargetVerdict(
                    str(r.get("input")),
                    _check(r),
                    _tags(r),
                    str(_verdict(r).get("status", "inconclusive")),
                )
                for r in records
            ]
        )
        if statuses.get("blocked"):
            status = "blocked"
        elif statuses.get("ok"):
            status = "ok"
        elif statuses.get("down"):
            status = "down"
        else:
            status = "inconclusive"
        rows.append(
            {
                "service": service,
                "status": status,
                "usable": usable,
                "interfered": interfered,
                "targets": len(records),
                "counts": {s: statuses.get(s, 0) for s in STATUS_ORDER},
                "methods": [m for m, _ in methods.most_common() if m],
                "fingerprints": fingerprints,
                "data_centres": {"reachable": dc_ok, "total": len(dcs)} if dcs else None,
                "web": {"reachable": web_ok, "total": len(web)} if web else None,
                "reasons": [
                    f"{r.get('input')}: {_verdict(r).get('reason')}"
                    for r in records
                    if _verdict(r).get("status") != "ok"
                ][:20],
            }
        )
    return rows


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
    rows = service_rows(result)
    table = Table(title="probe: results of this round", title_justify="left")
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
        name = SERVICE_NAMES.get(row["service"], row["service"])
        colour = colours.get(row["status"], "white")
        usable = _yes_no(row["usable"]) if row["service"] != "baseline" else "-"
        interfered = _yes_no(row["interfered"]) if row["service"] != "baseline" else "-"
        if row["service"] != "baseline":
            usable = f"[{answer_colours[usable]}]{usable}[/{answer_colours[usable]}]"
            # "interfered: yes" is the alarming answer
            ic = {"yes": "red", "no": "green"}.get(interfered, "magenta")
            interfered = f"[{ic}]{interfered}[/{ic}]"
        table.add_row(
            name, f"[{colour}]{row['status']}[/{colour}]", usable, interfered, how, _headline(row)
        )
    console.print(table)
    if result.offline:
        console.print(
            "[bold]This probe appears to be offline[/bold]: no baseline site and no control "
            "server could be reached, so nothing here is called blocked."
        )
    else:
        # One sentence per target that is not ok (the offline case needs only the one above).
        for row in rows:
            for reason in row["reasons"][:8]:
                console.print(f"  - {reason}", highlight=False)
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
    console.print(
        f"Round {result.report_id}: {len(result.records)} targets in {result.runtime:.1f} s, "
        f"sent {_size(result.bytes_sent)}, received {_size(result.bytes_received)}. "
        f"Results: {result.path}",
        highlight=False,
    )
