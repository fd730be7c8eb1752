"""Small helpers shared by the rules: address and URL parsing, naming lists, sentences."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from probe import failures
from probe.addresses import parse_ip
from probe.analysis.vocabulary import MAX_NAMED, NOT_MEASURED
from probe.i18n.message import Arg, Names
from probe.i18n.message import sentence as sentence
from probe.observations import DNSAnswer, HTTPTransaction
from probe.observations.http import extract_title
from probe.urls import url_parts

# --- small helpers --------------------------------------------------------------------------


# The same few addresses come back in every step of a record (and the cache is bounded):
# parsing them once saves a fifth of the analysis's time.
@lru_cache(maxsize=4096)
def split_address(address: str | None) -> tuple[str, int] | None:
    """("ip", port) from "ip:port" or "[v6]:port"; None when it is not that."""
    if not address:
        return None
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port_text = rest.removeprefix(":")
    else:
        host, sep, port_text = address.rpartition(":")
        if not sep or ":" in host:
            return None
    parsed = parse_ip(host)
    if parsed is None or not port_text.isdigit():
        return None
    return str(parsed), int(port_text)


@lru_cache(maxsize=4096)
def norm_ip(ip: str) -> str:
    address = parse_ip(ip)
    return str(address) if address is not None else ip


@lru_cache(maxsize=1024)
def url_endpoint(url: str) -> tuple[str, int] | None:
    """(host, port) of a URL; a bare `host[:port][/path]` without a scheme is read as http."""
    try:
        parts = url_parts(url if "://" in url else "//" + url)
        port = parts.checked_port() or (443 if parts.split.scheme == "https" else 80)
    except ValueError:
        return None
    host = parts.hostname or ""
    return (host, port) if host else None


def name_list(items: Iterable[Arg], limit: int = MAX_NAMED) -> Names:
    """ "a, b, c and 2 more" ("nothing" when empty), each item named once."""
    return Names.of(items, limit)


def answer_label(answer: DNSAnswer) -> str:
    ip = answer.ip or "?"
    return f"{ip} (AS{answer.asn})" if answer.asn else ip


def title_of(transaction: HTTPTransaction) -> str | None:
    if transaction.title:
        return transaction.title
    if transaction.body:
        return extract_title(transaction.body[:65536])
    return None


def body_length(transaction: HTTPTransaction) -> int | None:
    if transaction.body_length is not None:
        return int(transaction.body_length)
    if transaction.body is not None:
        return len(transaction.body.encode("utf-8", errors="replace"))
    return None


def is_interrupted(failure: str | None) -> bool:
    return failure == failures.INTERRUPTED


def was_measured(failure: str | None) -> bool:
    return failure not in NOT_MEASURED
