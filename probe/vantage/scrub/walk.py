"""The record walker: every string of a record (dict keys too) looked at once, copy on write.

The walker descends the record and the path trie (`probe.vantage.scrub.paths.TRIE`) together, so
each
string is scanned as what it is: structured (only an own address goes), free text (redacted in
redaction mode) or bytes. A subtree in which nothing changed is returned as it is (the same
object); a changed dict or list is copied once.

Speed: most strings of a record cannot change (field names, vocabulary, times, the addresses of
what was measured), and most of them come again in the next record. `Cache` remembers, across
records, the strings that came out unchanged in a way that does not depend on the record (on
what it measured); the walker then only looks them up. The cache belongs to one scrubber and is
emptied when its own addresses or allowed networks change; it is bounded. It also holds a copy
of each steady subtree (`paths.STEADY_PATHS`: written alike into every record of a round) that
came out unchanged, so an equal one is passed after one C-level comparison (`Walker._steady`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from probe.vantage.scrub.candidates import SHORT, TRIGGER_SEARCH
from probe.vantage.scrub.paths import B64, FREE, HEX, INTERIOR, STRUCT, Node
from probe.vantage.scrub.text import Run, scrub_binary, scrub_text

if TYPE_CHECKING:
    from probe.vantage.scrub.scrubber import Scrubber

#: Bounds of `Cache`: strings remembered, their characters in all, and the longest one (longer
#: strings are bodies, seldom seen twice).
MAX_CACHED = 8192
MAX_CACHED_CHARS = 1 << 20
MAX_CACHED_LENGTH = 4096

#: a memo entry for a short string that came out unchanged
_UNCHANGED: tuple[str | None, int, int] = (None, 0, 0)

#: `Walker._rest`'s mark for a value not looked at yet
_PENDING = object()

#: the types of values the walker returns as they are (JSON's other scalars)
_SCALARS = frozenset({type(None), bool, int, float})


class Cache:
    """Strings that a scrubber found unchanged, per way of scanning: own addresses only
    (`own`), redaction with nothing kept (`free`: unchanged with nothing kept means unchanged
    whatever a record keeps), and the same for base64 and hex fields. Valid while `token` (the
    scrubber's own addresses, prefixes and allowed networks) is."""

    __slots__ = (
        "b64_free",
        "b64_own",
        "chars",
        "entries",
        "free",
        "hex_free",
        "hex_own",
        "own",
        "packed",
        "token",
        "trees_free",
        "trees_own",
    )

    def __init__(self) -> None:
        self.token: object = None
        #: `Scrubber.packed()` for `token`, once asked for
        self.packed: list[tuple[bytes, int]] | None = None
        self.entries = 0
        self.chars = 0
        self.own: set[str] = set()
        self.free: set[str] = set()
        self.b64_own: set[str] = set()
        self.b64_free: set[str] = set()
        self.hex_own: set[str] = set()
        self.hex_free: set[str] = set()
        #: per steady node (`paths.STEADY_PATHS`), a copy of the last subtree there that came
        #: out unchanged with nothing kept, own addresses only and redacting
        self.trees_own: dict[Node, Any] = {}
        self.trees_free: dict[Node, Any] = {}

    def check(self, token: object) -> None:
        """Empty the cache unless it was made for `token`."""
        if token != self.token:
            self.clear()
            self.token = token
            self.packed = None

    def clear(self) -> None:
        for store in (
            self.own,
            self.free,
            self.b64_own,
            self.b64_free,
            self.hex_own,
            self.hex_free,
            self.trees_own,
            self.trees_free,
        ):
            store.clear()
        self.entries = self.chars = 0

    def clean(self, redact: bool) -> tuple[set[str], ...]:
        """The set to look a string up in, by its node's kind (see `probe.vantage.scrub.paths`):
        strings where no field is named and free text are redacted in redaction mode."""
        if redact:
            return (self.free, self.own, self.free, self.b64_free, self.hex_free)
        return (self.own, self.own, self.own, self.b64_own, self.hex_own)

    def remember(self, store: set[str], value: str) -> None:
        length = len(value)
        if length > MAX_CACHED_LENGTH:
            return
        if self.entries >= MAX_CACHED or self.chars + length > MAX_CACHED_CHARS:
            self.clear()
        store.add(value)
        self.entries += 1
        self.chars += length


assert (INTERIOR, STRUCT, FREE, B64, HEX) == (0, 1, 2, 3, 4)  # the order of `Cache.clean`


class Walker:
    """One scrub of one record (see `Scrubber.scrub_record`)."""

    __slots__ = ("cache", "clean", "run", "scrubber", "trees")

    def __init__(self, scrubber: Scrubber, run: Run, cache: Cache) -> None:
        self.scrubber = scrubber
        self.run = run
        self.cache = cache
        self.clean = cache.clean(run.redact)
        self.trees = cache.trees_free if run.redact else cache.trees_own

    def walk(self, value: Any, node: Node) -> Any:
        kind = type(value)
        if kind is str:
            return value if value in self.clean[node.kind] else self.string(value, node.kind)
        if kind is dict:
            return self.walk_dict(value, node)
        if kind is list or kind is tuple:
            return self.walk_list(value, node)
        return value

    def string(self, value: str, kind: int) -> str:
        """A string that is not known to stay unchanged."""
        run = self.run
        kept = run.kept
        if kind >= B64:
            cache = self.cache
            if cache.packed is None:
                cache.packed = self.scrubber.packed()
            done = scrub_binary(self.scrubber, value, kind, run, run.redact, cache.packed)
        elif len(value) > SHORT:
            done = scrub_text(self.scrubber, value, run, run.redact and kind != STRUCT)
        else:
            return self._short(value, kind)
        if done is value and run.kept == kept:
            self.cache.remember(self.clean[kind], value)
        return done

    def _short(self, value: str, kind: int) -> str:
        # Short strings repeat within a record (a header value is in headers_list and headers).
        run = self.run
        redact = run.redact and kind != STRUCT
        memo = run.memo_free if redact else run.memo
        seen = memo.get(value)
        if seen is not None:
            done, replaced, redacted = seen
            if done is None:
                return value  # this very object: unchanged subtrees stay identical
            run.replaced += replaced
            run.redacted += redacted
            return done
        if not TRIGGER_SEARCH(value):
            self.cache.remember(self.clean[kind], value)
            return value
        replaced, redacted, kept = run.replaced, run.redacted, run.kept
        done = scrub_text(self.scrubber, value, run, redact)
        if done is value:
            memo[value] = _UNCHANGED
            if run.kept == kept:
                self.cache.remember(self.clean[kind], value)
        else:
            memo[value] = (done, run.replaced - replaced, run.redacted - redacted)
        return done

    def walk_list(self, value: list[Any] | tuple[Any, ...], node: Node) -> Any:
        star = node.fallback
        clean = self.clean[star.kind]
        inner = self.clean[star.fallback.kind]
        new: list[Any] | None = None
        done: Any
        for index, item in enumerate(value):
            kind = type(item)
            if kind is str:
                if item in clean:
                    if new is None:
                        continue
                    done = item
                else:
                    done = self.string(item, star.kind)
            elif kind is dict:
                done = self.walk_dict(item, star)
            elif kind is list or kind is tuple:
                # A list of strings known clean (a header's name and value) stays as it is:
                # a non-string is never in `inner`, and one that cannot be hashed means no.
                try:
                    same = inner.issuperset(item)
                except TypeError:  # a dict or list among the items
                    same = False
                done = item if same else self.walk_list(item, star)
            else:
                if new is None:
                    continue
                done = item
            if new is None:
                if done is item:
                    continue
                new = list(value[:index])
            new.append(done)
        if new is None:
            return value
        return tuple(new) if type(value) is tuple else new

    def walk_dict(self, value: dict[Any, Any], node: Node, again: bool = False) -> dict[Any, Any]:
        # Runs for every key of every record, and nearly always finds nothing to change: this
        # loop does only that case (the key known clean, its value unchanged) and hands the
        # first key that is not known clean, or the first change, to `_rest`.
        if node.steady and not again:
            return self._steady(value, node)
        lookup = node.lookup
        clean = self.clean
        items = iter(value.items())
        done: Any
        for key, item in items:
            try:  # a subscript, not a call: this runs for every key
                child, key_kind = lookup[key]
            except KeyError:
                child, key_kind = node.step(key)
            # (The trie's own keys, kind 0, cannot hold an address: `paths.Node._finish`
            # checks.) A key that is not a string is in no set, and `_rest` passes it.
            if key_kind and key not in clean[key_kind]:
                return self._rest(value, node, items, key, item, _PENDING)
            kind = type(item)
            if kind is str:
                if item in clean[child.kind]:
                    continue
                done = self.string(item, child.kind)
            elif kind in _SCALARS:
                continue
            elif kind is dict:
                done = self.walk_dict(item, child)
            elif kind is list or kind is tuple:
                done = self.walk_list(item, child)
            else:
                continue
            if done is not item:
                return self._rest(value, node, items, key, item, done)
        return value

    def _steady(self, value: dict[Any, Any], node: Node) -> dict[Any, Any]:
        """A subtree the round writes alike into every record (`paths.STEADY_PATHS`).

        One equal (==) to a copy of one that came out unchanged is unchanged: the walk is a
        function of the strings and the keys, and the copy was made when nothing had been kept
        yet in its record (`Run.kept` 0: no result of that walk, memo included, relied on what
        that record keeps; keeping more only spares more). The copy holds only JSON's exact
        types, so all of it was scanned; whatever is not of those types in `value` the walker
        passes as it is anyway."""
        trees = self.trees
        if value == trees.get(node):
            return value
        done = self.walk_dict(value, node, again=True)
        if done is value and self.run.kept == 0:
            try:
                trees[node] = _copy(value)
            except _NotJSON:
                trees.pop(node, None)
        return done

    def _rest(
        self,
        value: dict[Any, Any],
        node: Node,
        items: Iterator[tuple[Any, Any]],
        key: Any,
        item: Any,
        done: Any,
    ) -> dict[Any, Any]:
        """`walk_dict` from `key` on (`items` holds the keys after it): `done` is what `item`
        became, or `_PENDING` when nothing of `key` was looked at yet."""
        new: dict[Any, Any] | None = None
        lookup = node.lookup
        clean = self.clean
        pending = True
        while True:
            if pending:
                pending = False
            else:
                try:
                    key, item = next(items)
                except StopIteration:
                    break
                done = _PENDING
            new_key = key
            if done is _PENDING:
                try:
                    child, key_kind = lookup[key]
                except KeyError:
                    child, key_kind = node.step(key)
                if key_kind and type(key) is str and key not in clean[key_kind]:
                    new_key = self.string(key, key_kind)
                done = self.walk(item, child)
            if new is None:
                if done is item and new_key is key:
                    continue
                new = {}
                for before, earlier in value.items():  # what came before this key, unchanged
                    if before is key:
                        break
                    new[before] = earlier
            new.setdefault(new_key, done)
        if new is None:
            return value
        body = value.get("body")
        if isinstance(body, str) and new.get("body") is not body and new.get("x_body_sha256"):
            # The hash of the original body would confirm a guessed address.
            new["x_body_sha256"] = None
            self.run.hashes_cleared += 1
        return new


class _NotJSON(Exception):
    """A value `_copy` does not copy."""


def _copy(value: Any) -> Any:
    """A deep copy of a tree of JSON's exact types (str keys; tuples stay tuples)."""
    kind = type(value)
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _NotJSON
            out[key] = _copy(item)
        return out
    if kind is list:
        return [_copy(item) for item in value]
    if kind is tuple:
        return tuple(_copy(item) for item in value)
    if kind is str or kind in _SCALARS:
        return value
    raise _NotJSON
