"""Bounded replies: one target's result cut to its cap (`x_truncated` says what went), the whole
reply kept under its own cap as results arrive, and the reply's JSON text put together
(docs/control.md, "Limits"). Results are JSON text as soon as they are made: only targets in
flight hold their full observations."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from probe import failures
from probe.control.limits import CONTROL_KEPT_HTTP_CHARS, MAX_KEPT_HEADER_CHARS
from probe.observations import TRIMMED_HEADERS, Observations, bound_http
from probe.targets import Target

#: Room kept for a result's id wrapper and its `x_truncated` marker.
RESULT_OVERHEAD = 512


def dump(value: Any) -> str:
    """Compact JSON, as every part of a reply is written."""
    return json.dumps(value, separators=(",", ":"))


def strip_bodies(observations: Observations) -> Observations:
    """The control returns length, title, hash and headers of responses, never bodies."""
    for transaction in observations.requests:
        transaction.body = None
    return observations


def bound_observations(
    observations: Observations, cap: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """`observations` (bodies already stripped) as a dict whose JSON is at most `cap`
    characters, and what was cut to get there ({} when nothing was): response heads past
    CONTROL_KEPT_HTTP_CHARS keep TRIMMED_HEADERS headers; then, while over the cap, network
    events go, every response keeps TRIMMED_HEADERS headers of MAX_KEPT_HEADER_CHARS, and the
    last entries of the biggest lists go."""
    marks: dict[str, Any] = {}
    trimmed = bound_http(observations, CONTROL_KEPT_HTTP_CHARS)
    if trimmed:
        marks["http_responses_trimmed"] = trimmed
    doc = observations.to_dict()
    size = len(dump(doc))
    if size > cap and observations.network_events:
        marks["network_events_dropped"] = len(observations.network_events)
        doc["network_events"] = []
        size = len(dump(doc))
    if size > cap:
        cut = _cut_headers(observations)
        if cut:
            marks["headers_cut"] = cut
            doc["requests"] = [r.to_dict() for r in observations.requests]
            size = len(dump(doc))
    if size > cap:
        marks["dropped"] = _drop_last_entries(doc, size, cap)
    return doc, marks


def _cut_headers(observations: Observations) -> int:
    """Every response keeps TRIMMED_HEADERS headers of at most MAX_KEPT_HEADER_CHARS
    characters; how many responses had more."""
    cut = 0
    for transaction in observations.requests:
        headers = transaction.response_headers
        if len(headers) > TRIMMED_HEADERS or any(
            len(n) > MAX_KEPT_HEADER_CHARS or len(v) > MAX_KEPT_HEADER_CHARS for n, v in headers
        ):
            cut += 1
            transaction.response_headers = [
                (n[:MAX_KEPT_HEADER_CHARS], v[:MAX_KEPT_HEADER_CHARS])
                for n, v in headers[:TRIMMED_HEADERS]
            ]
    return cut


def _drop_last_entries(doc: dict[str, Any], size: int, cap: int) -> dict[str, int]:
    """The last entries of `doc`'s biggest lists go until its JSON (`size` characters now)
    fits `cap`; how many went from each list."""
    sizes = {k: [len(dump(x)) + 1 for x in v] for k, v in doc.items() if isinstance(v, list)}
    totals = {k: sum(v) for k, v in sizes.items()}
    dropped: dict[str, int] = {}
    while size > cap and any(totals.values()):
        key = max(totals, key=lambda k: totals[k])
        doc[key].pop()
        removed = sizes[key].pop()
        totals[key] -= removed
        size -= removed
        dropped[key] = dropped.get(key, 0) + 1
    return dropped


def bounded_result(target_id: str, observations: Observations, cap: int) -> tuple[str, bool]:
    """One result of the reply as JSON text of at most `cap` characters, and whether anything
    had to be cut for that (then said in its `x_truncated`)."""
    strip_bodies(observations)
    room = cap - RESULT_OVERHEAD - len(dump(target_id))
    doc, marks = bound_observations(observations, max(0, room))
    result: dict[str, Any] = {"id": target_id, "observations": doc}
    if marks:
        result["x_truncated"] = {"cap_bytes": cap, **marks}
    return dump(result), bool(marks)


class ReplyBudget:
    """The whole reply's limit, spent as results arrive: every target is owed room for a small
    stand-in result, and a full result that does not fit any more is replaced by it."""

    def __init__(self, targets: Sequence[Target], cap: int, envelope: int) -> None:
        self.cap = cap
        self.reserve = [len(dump({"id": t.id})) + RESULT_OVERHEAD for t in targets]
        self.used = envelope + sum(self.reserve)
        self.dropped = 0
        #: results that fit only once cut (`bounded_result`)
        self.trimmed = 0

    def take(self, index: int, text: str) -> bool:
        extra = len(text) + 1 - self.reserve[index]  # and its comma
        if self.used + extra > self.cap:
            self.dropped += 1
            return False
        self.used += max(0, extra)
        return True

    def admit(self, index: int, target_id: str, text: str, cut: bool) -> str:
        """`text` (the result of target `index`, `cut` to its own cap or not) when the reply
        still has room for it, else a stand-in that says it was dropped."""
        if self.take(index, text):
            self.trimmed += cut
            return text
        marker = {"reason": "reply_cap", "cap_bytes": self.cap}
        return dump({"id": target_id, "x_truncated": marker})


def reply_head(
    software_version: str, client: dict[str, Any], neutral_quic_port: int | None = None
) -> str:
    """The reply's JSON up to its first result (with the neutral QUIC endpoint's port when the
    control runs one)."""
    neutral = f'"x_neutral_quic_port":{neutral_quic_port},' if neutral_quic_port else ""
    return (
        f'{{"software_version":{dump(software_version)},"client":{dump(client)},{neutral}'
        '"results":['
    )


def reply_rest(
    targets: Sequence[Target], results: Sequence[str | None], budget: ReplyBudget, deadline: float
) -> str:
    """The reply's JSON from its first result on: a target left unfinished at the deadline
    (None) is a `generic_timeout_error`, and the reply says what was cut (`x_truncated`) and
    what the deadline left unfinished (`x_deadline`)."""
    unfinished = 0
    parts = []
    for target, text in zip(targets, results, strict=True):
        if text is None:
            unfinished += 1
            text = dump({"id": target.id, "failure": failures.GENERIC_TIMEOUT})
        parts.append(text)
    tail = "]"
    if budget.trimmed or budget.dropped:
        marks = {
            "cap_bytes": budget.cap,
            "results_trimmed": budget.trimmed,
            "results_dropped": budget.dropped,
        }
        tail += f',"x_truncated":{dump(marks)}'
    if unfinished:
        tail += f',"x_deadline":{dump({"seconds": deadline, "results_unfinished": unfinished})}'
    return ",".join(parts) + tail + "}"
