"""What `probe upload` says: the status of the spool (`--status`, in plain words or JSON),
what was queued, what a session delivered or why records were kept for the next upload."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

import click

from probe.i18n import _, ngettext
from probe.upload import Outcome, QueueReport, Spool, Status


def _iso(when: float | None) -> str | None:
    if when is None:
        return None
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration(seconds: float) -> str:
    """A duration in the largest unit that fits (minutes, hours, days)."""
    if seconds < 60:
        return _("less than a minute")
    minutes = round(seconds / 60)
    if minutes < 120:
        return ngettext("{count} minute", "{count} minutes", minutes).format(count=minutes)
    hours = round(minutes / 60)
    if hours < 48:
        return ngettext("{count} hour", "{count} hours", hours).format(count=hours)
    days = round(hours / 24)
    return ngettext("{count} day", "{count} days", days).format(count=days)


def size(count: int) -> str:
    if count < 1024 * 1024:
        return _("{kb} KB").format(kb=max(1, round(count / 1024)) if count else 0)
    return _("{mb:.1f} MB").format(mb=count / (1024 * 1024))


def status_dict(status: Status, path: str, url: str | None, now: float) -> dict[str, Any]:
    """The status as `--json` prints it (English keys, UTC times)."""
    return {
        "spool": path,
        "collector": url,
        "pending": status.pending,
        "delivered": status.delivered,
        "rejected": status.rejected,
        "pending_bytes": status.pending_bytes,
        "oldest_pending": _iso(status.oldest_pending),
        "oldest_pending_age_seconds": (
            None if status.oldest_pending is None else round(now - status.oldest_pending)
        ),
        "next_attempt": _iso(status.next_attempt),
        "last_attempt": _iso(status.last_attempt),
        "last_delivery": _iso(status.last_delivery),
        "last_error": status.last_error,
        "not_queued_spool_full": status.refused,
        "spool_bytes": status.file_bytes,
        "rejected_reasons": [{"reason": r, "count": n} for r, n in status.rejected_reasons],
    }


def show(spool: Spool, url: str | None, as_json: bool, now: float | None = None) -> None:
    now = time.time() if now is None else now
    status = spool.status()
    if as_json:
        print(json.dumps(status_dict(status, str(spool.path), url, now), ensure_ascii=False))
        return
    lines = [
        _("Upload spool: {path} ({size})").format(path=spool.path, size=size(status.file_bytes))
    ]
    lines.append(
        _("  collector: {url}").format(url=url)
        if url
        else _("  collector: none configured (probe upload --to URL, or url in [upload])")
    )
    lines += _pending_lines(status, now)
    lines.append(
        ngettext(
            "  delivered: {count} record", "  delivered: {count} records", status.delivered
        ).format(count=status.delivered)
    )
    if status.rejected:
        lines.append(
            ngettext(
                "  refused by the collector (not sent again): {count} record",
                "  refused by the collector (not sent again): {count} records",
                status.rejected,
            ).format(count=status.rejected)
        )
        lines += [f"    {count} × {reason}" for reason, count in status.rejected_reasons]
    if status.refused:
        lines.append(
            ngettext(
                "  the spool is full: {count} record was not queued (it is still in its result "
                "file; run probe upload on the file once the records waiting are sent)",
                "  the spool is full: {count} records were not queued (they are still in their "
                "result files; run probe upload on the files once the records waiting are sent)",
                status.refused,
            ).format(count=status.refused)
        )
    click.echo("\n".join(lines))


def _pending_lines(status: Status, now: float) -> list[str]:
    if not status.pending:
        return [_("  waiting to be sent: nothing")]
    lines = [
        ngettext(
            "  waiting to be sent: {count} record ({size}), the oldest queued {age} ago",
            "  waiting to be sent: {count} records ({size}), the oldest queued {age} ago",
            status.pending,
        ).format(
            count=status.pending,
            size=size(status.pending_bytes),
            age=duration(now - (status.oldest_pending or now)),
        )
    ]
    due = status.next_attempt or now
    if due <= now:
        lines.append(_("  next attempt: at the next probe run or probe upload"))
    else:
        lines.append(
            _("  next attempt: in {wait} ({time} UTC), or now with probe upload").format(
                wait=duration(due - now), time=datetime.fromtimestamp(due, UTC).strftime("%H:%M")
            )
        )
    if status.last_error:
        lines.append(_("  last error: {error}").format(error=status.last_error))
    return lines


def queued(report: QueueReport, as_json: bool) -> None:
    if as_json:
        return  # the outcome line that follows says it all for scripts
    err(
        ngettext(
            "queued {count} record for upload ({known} were queued or sent before)",
            "queued {count} records for upload ({known} were queued or sent before)",
            report.added,
        ).format(count=report.added, known=report.known)
    )
    if report.refused:
        err(
            ngettext(
                "the spool is full: {count} record was not queued",
                "the spool is full: {count} records were not queued",
                report.refused,
            ).format(count=report.refused)
        )
    for problem in report.unreadable[:5]:
        err(_("skipped {problem}").format(problem=problem))
    if len(report.unreadable) > 5:
        err(_("skipped {count} more unreadable lines").format(count=len(report.unreadable) - 5))


def outcome(done: Outcome, as_json: bool) -> None:
    if as_json:
        fields = ("delivered", "stored", "duplicate", "rejected", "kept", "error")
        print(json.dumps({name: getattr(done, name) for name in fields}, ensure_ascii=False))
        return
    if done.delivered or not done.error:
        err(
            ngettext(
                "sent {count} record to the collector",
                "sent {count} records to the collector",
                done.delivered,
            ).format(count=done.delivered)
        )
    if done.rejected:
        err(
            ngettext(
                "{count} record was refused by the collector (see probe upload --status)",
                "{count} records were refused by the collector (see probe upload --status)",
                done.rejected,
            ).format(count=done.rejected)
        )
    if done.error:
        err(kept_line(done.kept, done.error))


def kept_line(count: int, error: str) -> str:
    """'3 records kept for the next upload: collector unreachable'."""
    return ngettext(
        "{count} record kept for the next upload: {error}",
        "{count} records kept for the next upload: {error}",
        count,
    ).format(count=count, error=error)


def busy(as_json: bool) -> None:
    if as_json:
        print(json.dumps({"error": "another upload from this device is running"}))
        return
    err(_("another upload from this device is running: nothing sent"))


def stopped(pending: int, as_json: bool) -> None:
    err(
        ngettext(
            "stopped: {count} record kept for the next upload",
            "stopped: {count} records kept for the next upload",
            pending,
        ).format(count=pending)
    )


def err(text: str) -> None:
    """One line on stderr, never wrapped (scripts and tests read it whole)."""
    sys.stderr.write(" ".join(text.split()) + "\n")
    sys.stderr.flush()
