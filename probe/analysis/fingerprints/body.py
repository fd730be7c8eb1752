"""The body prefilter: which patterns can match a body at all, found from the words any
matching body must hold, so that `match_http` searches only those (`BodyIndex`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from itertools import chain
from operator import itemgetter

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


#: What may follow a "{" that `re` could read as a quantifier (or "{}", "{" at the end): any
#: other "{" is a plain character (a pattern like `{"msg":.*` starts with the literal `{"msg":`).
_QUANTIFIER_START = frozenset([*"0123456789,}", ""])


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
        elif c == "{" and pattern[i + 1 : i + 2] not in _QUANTIFIER_START:
            step = 1  # not `{m}`, `{m,n}`, `{,n}` or `{}`: `re` reads a plain "{"
        elif c in _REGEX_SPECIAL:
            break
        else:
            step = 1
        if pattern[i + step : i + step + 1] in ("*", "+", "?", "{"):
            break  # `c` is quantified: it may be absent or repeated
        literal.append(c)
        i += step
    return "".join(literal)


def required_text(fp: Fingerprint) -> str:
    """Text that every text `fp` matches holds ("" when none is certain)."""
    if fp.pattern_type == "regexp":
        return regex_literal_prefix(fp.pattern)
    return fp.pattern if fp.pattern_type in ("contains", "full", "prefix") else ""


def body_keys(fp: Fingerprint) -> list[tuple[str, str]]:
    """Every (kind, word) that any body matching `fp` holds (kinds above), the most selective
    first: not a common word, then the cheapest kind to test, then the longest. Empty for a
    regexp without a literal start and for patterns without a word character."""
    literal = required_text(fp)
    at_start = fp.pattern_type in ("full", "prefix")
    at_end = fp.pattern_type == "full"
    words = _WORD.findall(literal)
    if not words:
        return []
    # Only the first and the last word can be unbounded (a word character at the literal's
    # start or end: then the literal starts or ends with that word); those between are whole.
    left = at_start or not literal.startswith(words[0])
    right = at_end or not literal.endswith(words[-1])
    kinds = [WHOLE_WORD] * len(words)
    if len(words) == 1:
        kinds[0] = (
            (WHOLE_WORD if right else WORD_START) if left else (WORD_END if right else IN_WORD)
        )
    else:
        kinds[0] = WHOLE_WORD if left else WORD_END
        kinds[-1] = WHOLE_WORD if right else WORD_START
    return sorted(dict.fromkeys(zip(kinds, words, strict=True)), key=_selectivity, reverse=True)


def _selectivity(key: tuple[str, str]) -> tuple[bool, int, int]:
    kind, word = key
    # not _is_common(word), inlined: this runs for every key of every pattern on a load that
    # does not come from the cache (cache.py)
    return (len(word) > 2 and word.lower() not in _COMMON_WORDS, _KIND_RANK[kind], len(word))


def required_word(fp: Fingerprint) -> str | None:
    """The word of the most selective of `body_keys` (None when there is none)."""
    keys = body_keys(fp)
    return keys[0][1] if keys else None


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


def _mark(kind: str, word: str) -> str:
    """How a key other than a whole word is found in `_joined` words: a word starts with
    `word` when "\\n" + word is there, ends with it when word + "\\n" is, holds it when it is."""
    if kind == WORD_START:
        return "\n" + word
    if kind == WORD_END:
        return word + "\n"
    return word


def _joined(words: set[str]) -> str:
    """The words, each between two "\\n" (never part of a word)."""
    return "\n" + "\n".join(words) + "\n"


#: A body pattern in the index: its position in the files' order, the fingerprint, and what
#: must hold too before the pattern is searched: its other whole words (a subset test) and its
#: other keys as `_mark`s (each a substring of `_joined`). Every test is exact.
_BodyEntry = tuple[int, Fingerprint, frozenset[str], tuple[str, ...]]


def _index_key(keys: list[tuple[str, str]]) -> tuple[str, str] | None:
    """The key a pattern with `keys` (most selective first) is indexed by: a whole word when it
    has one (a set lookup, and work only on the bodies that hold it; common words last), else
    a start, end or part of a word (a substring search each, on every body), in that order of
    kinds. None: no key, test the pattern on every body."""
    first_whole: tuple[str, str] | None = None
    uncommon: dict[str, tuple[str, str]] = {}  # kind -> its first key not on a common word
    for key in keys:  # one pass (the first of each sort is kept)
        kind, word = key
        common = _is_common(word)
        if kind == WHOLE_WORD:
            if not common:
                return key
            if first_whole is None:
                first_whole = key
        elif not common:
            uncommon.setdefault(kind, key)
    if first_whole is not None:
        return first_whole
    for kind in (WORD_START, WORD_END, IN_WORD):
        if kind in uncommon:
            return uncommon[kind]
    return keys[0] if keys else None


#: How many first characters of a start mark's word `BodyIndex` files it under (start marks with
#: a shorter word are searched on every body), and those characters of a body word.
_HEAD = 3
_head = itemgetter(slice(None, _HEAD))

#: Where a body pattern is filed in the index: searched on every body, under a whole word, or
#: under a `_mark`.
_ALWAYS, _BY_WORD, _BY_MARK = 0, 1, 2

#: How one body pattern is indexed, as plain data (cache.py keeps it so that a load need not
#: recompute `body_keys`): where it is filed (above), the word or `_mark` it is filed under ("" for
#: _ALWAYS), its other whole words and its other keys as `_mark`s.
BodyLayout = tuple[int, str, frozenset[str], tuple[str, ...]]


def body_layout(fp: Fingerprint) -> BodyLayout:
    """How `fp` is indexed in a `BodyIndex`: by `_index_key`, its other keys still to test."""
    keys = body_keys(fp)
    index = _index_key(keys)
    others = [key for key in keys if key != index]
    whole = frozenset(word for kind, word in others if kind == WHOLE_WORD)
    marks = tuple(_mark(kind, word) for kind, word in others if kind != WHOLE_WORD)
    if index is None:
        return (_ALWAYS, "", whole, marks)
    if index[0] == WHOLE_WORD:
        return (_BY_WORD, index[1], whole, marks)
    return (_BY_MARK, _mark(*index), whole, marks)


class BodyIndex:
    """The body patterns, indexed by their keys (see `body_keys`).

    Nearly every pattern holds words that any matching body holds too (whole, or as the start,
    end or part of a word). Each pattern is indexed by one of them (`_index_key`); only
    patterns whose keys all hold are searched. Per body, the work is a handful of calls into
    C: the words (`body_words`), one set intersection for the whole-word keys, one for the
    first `_HEAD` characters of the words (which start marks are worth a search) and one
    `filter` of substring searches for the other keys (`_mark`s) in the words joined by "\n";
    on an ASCII body, patterns and marks that need another character are left out. Every key
    test is exact. Results are the same as searching every pattern
    (tests/test_fingerprint_equivalence.py compares with that on generated bodies)."""

    __slots__ = (
        "_always",
        "_ascii_marks",
        "_by_mark",
        "_by_word",
        "_heads",
        "_marks",
        "_not_ascii",
        "_starts",
        "_words",
    )

    def __init__(self, patterns: Iterable[Fingerprint], layouts: Sequence[BodyLayout] = ()) -> None:
        """`patterns`: the body fingerprints, in the files' order; `layouts`: the `body_layout`
        of the first ones when already known (the cached bundled files), the rest are computed."""
        self._by_word: dict[str, list[_BodyEntry]] = {}
        self._by_mark: dict[str, list[_BodyEntry]] = {}
        self._always: list[_BodyEntry] = []
        self._not_ascii: list[_BodyEntry] = []  # searched on every body that is not ASCII
        known = len(layouts)
        for position, fp in enumerate(patterns):
            where, key, whole, marks = layouts[position] if position < known else body_layout(fp)
            entry = (position, fp, whole, marks)
            if where == _BY_WORD:
                self._by_word.setdefault(key, []).append(entry)
            elif where == _BY_MARK:
                self._by_mark.setdefault(key, []).append(entry)
            elif required_text(fp).isascii():
                self._always.append(entry)
            else:  # it needs a character no ASCII body has
                self._not_ascii.append(entry)
        self._words = frozenset(self._by_word)
        # Start marks are looked up by the first _HEAD characters of their word (see
        # `candidates`); the other marks are searched on every body, those that are all ASCII
        # only on an ASCII body (no word of one holds anything else).
        self._starts: dict[str, list[str]] = {}
        searched: list[str] = []
        for mark in self._by_mark:
            if mark.startswith("\n") and len(mark) > _HEAD and "\n" not in mark[1:]:
                self._starts.setdefault(mark[1 : 1 + _HEAD], []).append(mark)
            else:
                searched.append(mark)
        self._heads = frozenset(self._starts)
        self._marks = tuple(searched)
        self._ascii_marks = tuple(mark for mark in searched if mark.isascii())

    def candidates(self, body: str) -> list[Fingerprint]:
        """The body patterns whose keys all hold for `body`, in the files' order."""
        words = body_words(body)
        joined = _joined(words)
        is_ascii = body.isascii()
        found = self._always + ([] if is_ascii else self._not_ascii)
        found.extend(chain.from_iterable(map(self._by_word.__getitem__, words & self._words)))
        # A word starts with a start mark's word only when it starts with its first _HEAD
        # characters: one C-level intersection leaves the few start marks worth a search.
        heads = self._heads.intersection(map(_head, words))
        starts = chain.from_iterable(map(self._starts.__getitem__, heads))
        rest = self._ascii_marks if is_ascii else self._marks
        marks = filter(joined.__contains__, chain(rest, starts))
        found.extend(chain.from_iterable(map(self._by_mark.__getitem__, marks)))
        kept = [e for e in found if e[2] <= words and all(map(joined.__contains__, e[3]))]
        kept.sort()  # the files' order, as without the index (positions are distinct)
        return [entry[1] for entry in kept]
