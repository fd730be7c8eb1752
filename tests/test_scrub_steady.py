"""The walker's steady subtrees (`probe.vantage.scrub.paths.STEADY_PATHS`): one equal to a
subtree that came out unchanged passes at once, and that memory never spares an address the
next record must lose. No test sends a packet anywhere."""

from __future__ import annotations

import copy
from typing import Any

from probe.failures import SCRUBBED
from probe.vantage.scrub import Scrubber
from probe.vantage.scrub.paths import STEADY_PATHS, TRIE
from tests.test_scrub import OWN4, make_record

STRANGER = "74.125.18.1"  # public, identifying, not measured by `make_record`'s record


def _with_discovery(failure: str | None, server: str = "stun.example:3478") -> dict[str, Any]:
    record = make_record()
    record["test_keys"]["x_ip_discovery"] = {
        "ipv4": {"found": False, "answers": 0, "agreed": 0},
        "observations": [
            {
                "method": "stun",
                "server": server,
                "server_address": None,
                "public": False,
                "failure": failure,
                "t0": 0.003723,
                "t": 0.325651,
            }
        ],
    }
    return record


def _discovery(record: dict[str, Any]) -> Any:
    return record["test_keys"]["x_ip_discovery"]


def test_the_steady_paths_are_nodes_of_the_trie() -> None:
    for path in STEADY_PATHS:
        node = TRIE
        for key in path.split("."):
            node = node.children[key]
        assert node.steady
    assert not TRIE.children["test_keys"].steady


def test_an_equal_clean_subtree_passes_unchanged() -> None:
    scrubber = Scrubber(redact_unknown=True)
    for _ in range(3):
        record = _with_discovery("dns_nxdomain_error")
        out, report = scrubber.scrub_record(record)
        assert _discovery(out) is _discovery(record)
        assert report.redacted == 0


def test_an_own_address_after_a_clean_subtree_is_scrubbed() -> None:
    scrubber = Scrubber()
    assert scrubber.add(OWN4)
    scrubber.scrub_record(_with_discovery("dns_nxdomain_error"))
    for server in (f"{OWN4}:3478", "stun.example:3478"):
        record = _with_discovery(f"timed out from {OWN4}", server)
        out, report = scrubber.scrub_record(record)
        assert OWN4 not in str(_discovery(out))
        assert SCRUBBED in _discovery(out)["observations"][0]["failure"]
        assert report.replaced >= 1
        assert OWN4 in str(_discovery(record))  # copy on write


def test_what_one_record_keeps_is_redacted_in_the_next() -> None:
    """A subtree left as it was only because its record kept an address is not remembered:
    the next record, which keeps nothing, loses the address."""
    scrubber = Scrubber(redact_unknown=True)
    failure = f"connection_refused by {STRANGER}"
    kept, _ = scrubber.scrub_record(_with_discovery(failure), keep=[STRANGER])
    assert _discovery(kept)["observations"][0]["failure"] == failure
    out, report = scrubber.scrub_record(_with_discovery(failure))
    assert _discovery(out)["observations"][0]["failure"] == f"connection_refused by {SCRUBBED}"
    assert report.redacted == 1


def test_a_keep_earlier_in_the_record_is_not_trusted_for_the_subtree() -> None:
    """The same address kept in an earlier field of the record (the memo then holds it as
    unchanged) does not make the subtree remembered either."""
    scrubber = Scrubber(redact_unknown=True)
    failure = f"connection_refused by {STRANGER}"
    first = _with_discovery(failure)
    first["test_keys"]["list"] = {"name": failure}  # walked before x_ip_discovery
    scrubber.scrub_record(first, keep=[STRANGER])
    out, _ = scrubber.scrub_record(_with_discovery(failure))
    assert STRANGER not in str(_discovery(out))


def test_a_subtree_of_other_types_is_walked_every_time() -> None:
    """A subtree holding a value of no JSON type is not remembered (its copy could hold
    something the walker never scanned)."""

    class Opaque:
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = object.__hash__

    scrubber = Scrubber()
    assert scrubber.add(OWN4)
    odd = _with_discovery(None)
    _discovery(odd)["ipv4"]["found"] = Opaque()
    out, _ = scrubber.scrub_record(odd)
    assert _discovery(out) is _discovery(odd)
    later = _with_discovery(f"from {OWN4}")
    out, _ = scrubber.scrub_record(copy.deepcopy(later))
    assert OWN4 not in str(_discovery(out))
