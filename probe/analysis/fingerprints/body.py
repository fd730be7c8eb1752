"""The body prefilter: which patterns can match a body at all, found from the words any
matching body must hold, so that `match_http` searches only those (`BodyIndex`)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from probe.analysis.fingerprints.rows import Fingerprint

_WORD = re.compile(r"\w+")

# How a word of a pattern shows up among the words (maximal `\w+` runs) of any body that matches
# the pattern: as a whole word when the pattern bounds it on both sides (by its own non-word
# characters, or by the start/end of the text for `prefix`/`full`); as the start of a word when
# bounded only on the left; as the end of one when bounded only on the right; somewhere inside
# a word when not bounded at all (a pattern that is a single word).
WHOLE_WORD = "whole"
WORD_START = "start"
WORD_END = "end"
IN_WORD = "inside"
_KIND_RANK = {WHOLE_WORD: 3, WORD_START: 2, WORD_END: 2, IN_WORD: 1}  # cheapest test first

#: Words found in nearly every HTML page (tag and attribute names, the commonest English words)
#: or too short to select anything: a key on one of them lets the pattern be searched on every
#: page (e.g. 23 patterns have `title` as their longest bounded word), so a rarer word of the
#: same pattern is preferred when there is one. Only the choice depends on this list, never a
#: result.
_COMMON_WORDS = frozenset(
    "html head title body meta link script style div span class id href src http https www "
    "com org net img alt type text content name charset utf rel css js width height iframe "
    "form input button table tr td li ul ol br hr nbsp amp quot lt gt the and for you your "
    "are not this that with from was has have can will page site web access index info "
    "default please error home".split()
)


def _is_common(word: str) -> bool:
    return len(word) <= 2 or word.lower() in _COMMON_WORDS


#: Characters with a meaning in a regular expression (outside the VERBOSE flag, which a pattern
#: could only turn on with a leading `(?x)`; a leading `(` ends the literal prefix anyway).
_REGEX_SPECIAL = frozenset(".^$*+?{}[]\\|()")


def regex_literal_prefix(pattern: str) -> str:
    """The literal text any match of `pattern` starts with ("" when none is certain).

    Conservative: stops at the first special character or escape of a letter or digit (a class
    like \\s), drops a character a quantifier follows, and gives up on any `|` (an alternation
    at the top level would make the prefix optional)."""
    if "|" in pattern:
        return ""
    literal: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            escaped = pattern[i + 1 : i + 2]
            if not escaped or (escaped.isascii() and escaped.isalnum()):
                break
            c, step = escaped, 2
        elif c in _REGEX_SPECIAL:
            break
        else:
            step = 1
        if pattern[i + step : i + step + 1] in ("*", "+", "?", "{"):
            break  # `c` is quantified: it may be absent or repeated
        literal.append(c)
        i += step
    return "".join(literal)


def body_keys(fp: Fingerprint) -> list[tuple[str, str]]:
    """Every (kind, word) that any body matching `fp` holds (kinds above), the most selective
    first: not a common word, then the cheapest kind to test, then the longest. Empty for a
    regexp without a literal start and for patterns without a word character."""
    if fp.pattern_type == "regexp":
        literal, at_start, at_end = regex_literal_prefix(fp.pattern), False, False
    elif fp.pattern_type in ("contains", "full", "prefix"):
        literal = fp.pattern
        at_start = fp.pattern_type in ("full", "prefix")
        at_end = fp.pattern_type == "full"
    else:
        return []
    keys: dict[tuple[str, str], tuple[bool, int, int]] = {}
    for m in _WORD.finditer(literal):
        left = m.start() > 0 or at_start
        right = m.end() < len(literal) or at_end
        kind = (WHOLE_WORD if right else WORD_START) if left else (WORD_END if right else IN_WORD)
        word = m.group()
        keys[(kind, word)] = (not _is_common(word), _KIND_RANK[kind], len(word))
    return sorted(keys, key=keys.__getitem__, reverse=True)


def required_word(fp: Fingerprint) -> str | None:
    """The word of the most selective of `body_keys` (None when there is none)."""
    keys = body_keys(fp)
    return keys[0][1] if keys else None


#: Start and end keys are indexed by their first (last) SHORT_KEY characters, which any word
#: they start (end) starts (ends) with too: one set of such pieces per body then tests them all
#: at once, where a sorted search per key cost ~0.4 us each (150 keys: 60 us a body). The whole
#: key is still tested, for the few patterns the piece lets through.
SHORT_KEY = 4
_SHORT_START = "short-start"
_SHORT_END = "short-end"


# ASCII characters other than word characters ([A-Za-z0-9_]) become spaces; bytes of UTF-8
# sequences (0x80 and up) stay as they are.
_ASCII_NON_WORD_TO_SPACE = bytes(
    c if chr(c).isalnum() or c == ord("_") else ord(" ") for c in range(128)
) + bytes(range(128, 256))


def body_words(body: str) -> set[str]:
    """The distinct words (maximal `\\w+` runs) of `body`: what `set(re.findall(r"\\w+", body))`
    gives, about 2.5x faster on text that is mostly ASCII (bytes.translate and str.split run in C,
    where the regex costs ~35 ns a character: 75 us for a 2 KB page, 2.3 ms for 64 KiB).

    Every ASCII non-word character becomes a space; what `split()` then returns are words,
    except tokens holding other characters, which are split with the regex (they are bounded by
    non-word characters, so their words are whole words of the body)."""
    if body.isascii():
        return set(body.encode("ascii").translate(_ASCII_NON_WORD_TO_SPACE).decode("ascii").split())
    raw = body.encode("utf-8", "surrogatepass")
    if len(raw) - len(body) > len(body) // 16:  # mostly non-Latin text: the regex is cheaper
        return set(_WORD.findall(body))
    tokens = set(raw.translate(_ASCII_NON_WORD_TO_SPACE).decode("utf-8", "surrogatepass").split())
    odd = [token for token in tokens if not token.isascii()]
    if len(odd) * 4 > len(tokens):
        return set(_WORD.findall(body))
    tokens.difference_update(odd)
    for token in odd:
        tokens.update(_WORD.findall(token))
    return tokens


class _BodyWords:
    """The words of one body, and the views of them that `body_keys` are tested against (each
    built on first use)."""

    __slots__ = ("_joined", "_short_ends", "_short_starts", "words")

    def __init__(self, body: str) -> None:
        self.words = body_words(body)
        self._short_starts: set[str] | None = None
        self._short_ends: set[str] | None = None
        self._joined: str | None = None

    def short_starts(self) -> set[str]:
        """The first SHORT_KEY characters of every word at least that long."""
        if self._short_starts is None:
            self._short_starts = {w[:SHORT_KEY] for w in self.words if len(w) >= SHORT_KEY}
        return self._short_starts

    def short_ends(self) -> set[str]:
        """The last SHORT_KEY characters of every word at least that long."""
        if self._short_ends is None:
            self._short_ends = {w[-SHORT_KEY:] for w in self.words if len(w) >= SHORT_KEY}
        return self._short_ends

    def has_inside(self, part: str) -> bool:
        """Some word contains `part` (words are joined by a non-word character)."""
        return part in self.joined()

    def joined(self) -> str:
        """The words joined by a non-word character (a part of a word is in it, or not)."""
        if self._joined is None:
            self._joined = "\n".join(self.words)
        return self._joined


def _index_key(keys: list[tuple[str, str]]) -> tuple[str, str, list[tuple[str, str]]] | None:
    """How a pattern with `keys` (most selective first) is indexed: (kind, word, the keys left
    to test). A whole word if it has one; else a start or end of SHORT_KEY characters or more,
    indexed by that many; else a part of a word. None: test its keys on every body."""

    def others(key: tuple[str, str]) -> list[tuple[str, str]]:
        return [k for k in keys if k != key]

    whole = [(kind, word) for kind, word in keys if kind == WHOLE_WORD]
    for key in whole:
        if not _is_common(key[1]):
            return WHOLE_WORD, key[1], others(key)
    for kind, word in keys:
        if kind == WORD_START and len(word) >= SHORT_KEY and not _is_common(word):
            return _SHORT_START, word[:SHORT_KEY], keys
        if kind == WORD_END and len(word) >= SHORT_KEY and not _is_common(word):
            return _SHORT_END, word[-SHORT_KEY:], keys
    if whole:
        return WHOLE_WORD, whole[0][1], others(whole[0])
    for kind, word in keys:
        if kind == IN_WORD:
            return kind, word, others((kind, word))
    return None


#: A body pattern in the index: its position in the files' order, the fingerprint, and what
#: must hold too before the pattern is searched: its whole words, the SHORT_KEY-character starts
#: and ends of its other words (each a subset test), and the words that may sit inside others.
#: Starts and ends shorter than SHORT_KEY are not tested: they select little, and testing them
#: exactly needed sorted views of the words (sorting them cost more than the searches it saved).
_BodyEntry = tuple[
    int, Fingerprint, frozenset[str], frozenset[str], frozenset[str], tuple[str, ...]
]


def _entry(position: int, fp: Fingerprint, keys: list[tuple[str, str]]) -> _BodyEntry:
    def words(kind: str) -> list[str]:
        return [word for k, word in keys if k == kind]

    return (
        position,
        fp,
        frozenset(words(WHOLE_WORD)),
        frozenset(w[:SHORT_KEY] for w in words(WORD_START) if len(w) >= SHORT_KEY),
        frozenset(w[-SHORT_KEY:] for w in words(WORD_END) if len(w) >= SHORT_KEY),
        tuple(words(IN_WORD)),
    )


class BodyIndex:
    """The body patterns, indexed by their keys (see `body_keys`).

    Nearly every pattern holds words that any matching body holds too (whole, or as the start,
    end or part of a word). Each pattern is indexed by its most selective one; only patterns
    whose words are all there are searched. The words of a body are found once (`body_words`).
    match_http against the previous index (longest bounded word only; 127 patterns searched on
    every body), same process: the 2 KB page of bench/success_overhead.py 250 -> 79 us, 64 KiB
    of text 7.8 -> 1.3 ms, real 35-60 KB HTML pages 4.7-8.7 -> 1.0-3.5 ms. Results are the same
    as searching every pattern (tests/test_fingerprints.py compares with that on generated
    bodies)."""

    __slots__ = ("_always", "_by_kind", "_keys")

    def __init__(self, patterns: Iterable[Fingerprint]) -> None:
        """`patterns`: the body fingerprints, in the files' order."""
        self._by_kind: dict[str, dict[str, list[_BodyEntry]]] = {
            kind: {} for kind in (WHOLE_WORD, _SHORT_START, _SHORT_END, IN_WORD)
        }
        self._always: list[_BodyEntry] = []
        for position, fp in enumerate(patterns):
            keys = body_keys(fp)
            index = _index_key(keys)
            if index is None:
                self._always.append(_entry(position, fp, keys))
            else:
                kind, word, left = index
                self._by_kind[kind].setdefault(word, []).append(_entry(position, fp, left))
        self._keys = {kind: frozenset(index) for kind, index in self._by_kind.items()}

    def candidates(self, body: str) -> list[Fingerprint]:
        """The body patterns whose keys all hold for `body`, in the files' order."""
        words = _BodyWords(body)
        found = list(self._always)
        for kind, pieces in (
            (WHOLE_WORD, words.words),
            (_SHORT_START, words.short_starts()),
            (_SHORT_END, words.short_ends()),
        ):
            index = self._by_kind[kind]
            # A set & a set walks the smaller one (a set & a dict would walk the dict).
            for word in pieces & self._keys[kind]:
                found.extend(index[word])
        joined = words.joined()  # one `in` per key below, not a method call each
        for word, entries in self._by_kind[IN_WORD].items():
            if word in joined:
                found.extend(entries)
        whole, starts, ends = words.words, words.short_starts(), words.short_ends()
        kept = [
            entry
            for entry in found
            if entry[2] <= whole
            and entry[3] <= starts
            and entry[4] <= ends
            and all(part in joined for part in entry[5])
        ]
        kept.sort(key=lambda entry: entry[0])  # the files' order, as without the index
        return [entry[1] for entry in kept]
