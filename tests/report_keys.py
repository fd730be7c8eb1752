"""Comparable keys of change events and gaps (`probe.report`) and of the ground truth
(tests/synthetic.py): what the per-volunteer tests compare."""

from __future__ import annotations

from typing import Any


def event_keys(events: Any) -> list[tuple[Any, ...]]:
    return sorted(
        (
            e.kind,
            e.input,
            e.probe_asn,
            e.probe_cc,
            e.probe_id or "",
            e.network_type,
            e.last_old,
            e.first_new,
        )
        for e in events
    )


def gap_keys(gaps: Any) -> list[tuple[Any, ...]]:
    return sorted(
        (g.input, g.probe_asn, g.probe_id or "", g.network_type, g.last_before, g.first_after)
        for g in gaps
    )
