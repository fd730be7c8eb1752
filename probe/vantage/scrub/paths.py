"""Where things are in a record: which strings are structured, free text or bytes.

A path is dotted keys; "*" is any list item or any dict value. Observation paths (one DNS query,
one TCP connect, ...) are written once and placed under every place observations appear:
test_keys, test_keys.control, and test_keys.x_doh.<name>[] (queries only). The paths become a
trie (`TRIE`) that the record walker (`probe.vantage.scrub.walk`) descends with the record, so each
string's kind is known without building its path. Also here: `measured_addresses`, the
addresses a record measured (what redaction keeps), and `changed_paths` for the report.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from probe.addresses import IPAddress
from probe.vantage.scrub.candidates import SHORT, TRIGGER, literals

_QUERY_STRUCTURED = (
    "engine",
    "failed_operation",
    "hostname",
    "query_type",
    "resolver_address",
    "answers.*.answer_type",
    "answers.*.ipv4",
    "answers.*.ipv6",
    "answers.*.hostname",
    "answers.*.as_org_name",
)
_OBSERVATIONS_STRUCTURED = (
    "tcp_connect.*.ip",
    "tcp_connect.*.failed_operation",
    "tls_handshakes.*.network",
    "tls_handshakes.*.address",
    "tls_handshakes.*.server_name",
    "tls_handshakes.*.tls_version",
    "tls_handshakes.*.cipher_suite",
    "tls_handshakes.*.negotiated_protocol",
    "tls_handshakes.*.failed_operation",
    "tls_handshakes.*.peer_certificates.*.format",
    "requests.*.request.method",
    "requests.*.response.x_body_sha256",
    "requests.*.request.x_address",
    "requests.*.failed_operation",
    "network_events.*.operation",
    "network_events.*.address",
    "network_events.*.proto",
    "mtproto.*.address",
    "mtproto.*.transport",
    "mtproto.*.reply",
    "mtproto.*.failed_operation",
    "mtproto.*.server_public_key_fingerprints",
)

#: Free text: strings a peer, a middlebox or an exception message put there (observation paths
#: relative to test_keys, test_keys.control, test_keys.x_doh.<name>[] for the query ones). In
#: redaction mode every identifying literal in them that is not a measured address is redacted.
#: Every string *not* in `STRUCTURED_PATHS` is treated the same way, so a field added later is
#: redacted until someone decides otherwise; this list names the ones we know of.
FREE_TEXT_PATHS: tuple[str, ...] = (
    "resolver_ip",  # the whoami answer can be the household's own resolver (see safe_resolver_ip)
    "test_keys.failure",
    "test_keys.control_failure",
    "test_keys.verdict.reason",
    "test_keys.x_endpoints.*.failure",
    "queries.*.failure",
    "queries.*.raw_response",  # binary (base64)
    "tcp_connect.*.status.failure",
    "tls_handshakes.*.failure",
    "tls_handshakes.*.peer_certificates.*.data",  # binary (base64)
    "requests.*.request.url",  # after the first hop: where a redirect pointed
    "requests.*.request.headers_list",  # Host of a redirect hop
    "requests.*.request.headers",
    "requests.*.response.headers_list",
    "requests.*.response.headers",
    "requests.*.response.body",
    "requests.*.response.x_title",
    "requests.*.failure",
    "requests.*.x_location",
    "network_events.*.failure",
    "mtproto.*.failure",
    "mtproto.*.first_bytes",  # binary (hex)
    "test_keys.x_service",  # the service's tallies (named only to be one of `STEADY_PATHS`)
)

#: Never redacted (only an own address is scrubbed from them): what was measured (DNS answers,
#: the addresses connected to, the target definition), the round's own facts and vocabulary.
STRUCTURED_PATHS: tuple[str, ...] = (
    "annotations",
    "data_format_version",
    "input",
    "measurement_start_time",
    "probe_asn",
    "probe_cc",
    "probe_id",  # random (probe/identity.py): nothing of the machine, not personal data
    "probe_ip",
    "probe_network_name",
    "report_id",
    "resolver_asn",
    "resolver_network_name",
    "software_name",
    "software_version",
    "test_name",
    "test_start_time",
    "test_version",
    "test_keys.target",
    "test_keys.list",
    "test_keys.x_vantage",
    "test_keys.verdict.status",
    "test_keys.verdict.blocking",
    "test_keys.verdict.fingerprints",
    "test_keys.x_endpoints.*.address",
    "test_keys.x_endpoints.*.transport",
    "test_keys.x_endpoints.*.outcome",
    "test_keys.x_endpoints.*.blocking",
    "test_keys.x_endpoints.*.failed_operation",
    # how the public address was learned (publicip): the servers asked, never the answer
    "test_keys.x_ip_discovery.observations.*.method",
    "test_keys.x_ip_discovery.observations.*.server",
    "test_keys.x_ip_discovery.observations.*.server_address",
    "test_keys.x_ip_discovery.observations.*.failed_operation",
)

#: Fields holding bytes: (path, encoding).
BINARY_PATHS: tuple[tuple[str, str], ...] = (
    ("queries.*.raw_response", "base64"),
    ("tls_handshakes.*.peer_certificates.*.data", "base64"),
    ("mtproto.*.first_bytes", "hex"),
)

#: Where the addresses of what was measured are; in redaction mode they (and every IP literal in
#: the target definition, the x_endpoints and x_ip_discovery servers, and `PUBLIC_RESOLVERS`)
#: are kept in free text too, e.g. the answers named in verdict.reason.
MEASURED_ADDRESS_PATHS: tuple[str, ...] = (
    "queries.*.answers.*.ipv4",
    "queries.*.answers.*.ipv6",
    "queries.*.resolver_address",
    "tcp_connect.*.ip",
    "tls_handshakes.*.address",
    "requests.*.request.x_address",
    "network_events.*.address",
    "mtproto.*.address",
)

_OBSERVATION_ROOTS = ("test_keys", "test_keys.control")
_QUERY_ROOTS = ("test_keys.queries.*", "test_keys.control.queries.*", "test_keys.x_doh.*.*")
_OBSERVATION_KEYS = (
    "queries",
    "tcp_connect",
    "tls_handshakes",
    "requests",
    "network_events",
    "mtproto",
)


def _expand(path: str) -> list[str]:
    """An observation-relative path under every root; other paths as they are."""
    first = path.split(".", 1)[0]
    if first == "queries":
        rest = path.split(".", 2)[2] if path.count(".") >= 2 else ""
        return [f"{root}.{rest}" if rest else root for root in _QUERY_ROOTS]
    if first in _OBSERVATION_KEYS:
        return [f"{root}.{path}" for root in _OBSERVATION_ROOTS]
    return [path]


#: What the strings at a node are: INTERIOR (none named: free text), STRUCT (only an own
#: address is scrubbed), FREE (redacted in redaction mode), B64 and HEX (bytes).
INTERIOR, STRUCT, FREE, B64, HEX = range(5)


class Node:
    """One step of the path trie: what the strings below it are (`kind`), its children, and
    the node for anything else (`fallback`: the "*" child, or a leaf of this node's kind)."""

    __slots__ = ("children", "fallback", "kind", "lookup", "star", "steady")

    def __init__(self, kind: int = INTERIOR) -> None:
        self.kind = kind
        #: one of `STEADY_PATHS`
        self.steady = False
        self.children: dict[str, Node] = {}
        self.star: Node | None = None
        self.fallback: Node = self
        #: key -> (child, how the key itself is scanned): the children (0: a key of the trie
        #: is never scanned), and keys met before that are not the trie's (their `fallback`;
        #: STRUCT or FREE, see `step`), so the walker finds both with one subscript
        self.lookup: dict[Any, tuple[Node, int]] = {}

    def step(self, key: Any) -> tuple[Node, int]:
        """`lookup` for a key not in it yet: the fallback, remembered (a bounded number). Such
        a key is scanned as structured below a structured node, else as free text (header
        names come from the peer: response.headers is keyed by them) — unless it cannot hold
        an address at all (short, nothing that starts one: what `_finish` asks of the trie's
        own keys), which no scan in any mode changes (`Walker._short`): kind 0, not scanned."""
        if type(key) is str and len(key) <= SHORT and not TRIGGER.search(key):
            entry = (self.fallback, INTERIOR)
        else:
            entry = (self.fallback, STRUCT if self.fallback.kind == STRUCT else FREE)
        if len(self.lookup) < MAX_LEARNED:
            self.lookup[key] = entry
        return entry

    def _finish(self) -> None:
        """Set every `fallback`, and check that no key of the trie can hold an address: the
        walker does not scan the keys it finds here (header names, which it does scan, come
        from the peer and are never in the trie)."""
        if self.star is not None:
            self.fallback = self.star
        else:
            # Below a leaf everything is the leaf's kind; an unknown field is free text.
            self.fallback = _STRUCT_LEAF if self.kind == STRUCT else _FREE_LEAF
        for key, node in self.children.items():
            if len(key) > SHORT or TRIGGER.search(key):
                raise ValueError(f"a record path key that could hold an address: {key!r}")
            node._finish()
        self.lookup = {key: (node, INTERIOR) for key, node in self.children.items()}
        if self.star is not None:
            self.star._finish()


#: Bound of the keys a `Node.lookup` learns (header names come from peers: any number)
MAX_LEARNED = 512

_STRUCT_LEAF = Node(STRUCT)  # its own fallback
_FREE_LEAF = Node(FREE)


def _build_trie(entries: Iterable[tuple[str, int]]) -> Node:
    root = Node()
    for path, kind in entries:
        node = root
        for key in path.split("."):
            if key == "*":
                if node.star is None:
                    node.star = Node()
                node = node.star
            else:
                node = node.children.setdefault(key, Node())
        node.kind = kind
    root._finish()
    return root


def _paths(paths: Iterable[str]) -> list[str]:
    return [p for path in paths for p in _expand(path)]


TRIE = _build_trie(
    [(p, STRUCT) for p in _paths(STRUCTURED_PATHS)]
    + [(p, STRUCT) for p in _paths("queries.*." + q for q in _QUERY_STRUCTURED)]
    + [(p, STRUCT) for p in _paths(_OBSERVATIONS_STRUCTURED)]
    + [(p, FREE) for p in _paths(FREE_TEXT_PATHS)]
    + [(p, B64 if enc == "base64" else HEX) for path, enc in BINARY_PATHS for p in _expand(path)]
)

#: Subtrees the round writes alike into every record of a run, or of a service (the platform,
#: how the public address was learned, the vantage's baselines, the list's provenance, the
#: service's tallies): the walker remembers one that came out unchanged and passes an equal one
#: on at once (`probe.vantage.scrub.walk.Walker._steady`).
STEADY_PATHS = (
    "annotations",
    "test_keys.x_ip_discovery",
    "test_keys.x_vantage",
    "test_keys.list",
    "test_keys.x_service",
)


def _mark_steady(root: Node, paths: Iterable[str]) -> None:
    for path in paths:
        node = root
        for key in path.split("."):
            node = node.children[key]  # a KeyError here: a path the trie does not have
        node.steady = True


_mark_steady(TRIE, STEADY_PATHS)


def _measured_trie(paths: Iterable[str]) -> dict[str | None, Any]:
    """The paths as nested dicts; the key None marks "a value here"."""
    root: dict[str | None, Any] = {}
    for path in paths:
        node = root
        for key in path.split("."):
            node = node.setdefault(key, {})
        node[None] = {}
    return root


_MEASURED = _measured_trie(
    [
        *_paths(MEASURED_ADDRESS_PATHS),
        "test_keys.x_endpoints.*.address",
        "test_keys.x_ip_discovery.observations.*.server_address",
    ]
)


# --- what a record measured -------------------------------------------------------------------


def _strings_at(value: Any, node: dict[str | None, Any], out: set[str]) -> None:
    """Add to `out` the strings at the paths of `node` (see `_measured_trie`) below `value`.
    A loop over a stack rather than a call per step (it runs for every record)."""
    stack = [(value, node)]
    pop, push = stack.pop, stack.append
    while stack:
        value, node = pop()
        for key, child in node.items():
            if key is None:
                if isinstance(value, str):
                    out.add(value)
            elif key == "*":
                if isinstance(value, dict):
                    for item in value.values():
                        push((item, child))
                elif isinstance(value, list | tuple):
                    for item in value:
                        push((item, child))
            elif isinstance(value, dict) and key in value:
                push((value[key], child))


def _strings(value: Any, out: set[str]) -> None:
    if isinstance(value, str):
        out.add(value)
    elif isinstance(value, dict):
        for item in value.values():
            _strings(item, out)
    elif isinstance(value, list | tuple):
        for item in value:
            _strings(item, out)


def measured_addresses(record: dict[str, Any]) -> frozenset[IPAddress]:
    """The addresses this record measured (`MEASURED_ADDRESS_PATHS`, x_endpoints) and every IP
    literal in its target definition and input: what redaction keeps in free text."""
    texts: set[str] = set()
    _strings_at(record, _MEASURED, texts)
    test_keys = record.get("test_keys")
    target = test_keys.get("target") if isinstance(test_keys, dict) else None
    _strings([target, record.get("input")], texts)
    found: set[IPAddress] = set()
    for text in texts:  # each distinct string once: a flow's address is in all its events
        found.update(literals(text))
    return frozenset(found)


def changed_paths(old: Any, new: Any, path: str) -> Iterator[str]:
    """The paths where `new` differs from `old` (copy on write: equal subtrees are identical)."""
    if old is new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        old_keys = list(old)
        new_keys = list(new)
        if old_keys != new_keys:
            yield f"{path}{{keys}}" if path else "{keys}"
        for key, value in new.items():
            if key in old:
                yield from changed_paths(old[key], value, f"{path}.{key}" if path else str(key))
        return
    if isinstance(old, list | tuple) and isinstance(new, list | tuple):
        for index, (a, b) in enumerate(zip(old, new, strict=False)):
            yield from changed_paths(a, b, f"{path}[{index}]")
        return
    yield path
