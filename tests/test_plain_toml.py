"""probe/targets/plain_toml.py gives what tomllib gives, or None (tomllib then reads it)."""

from __future__ import annotations

import random
import tomllib
from pathlib import Path

import pytest

from probe.targets.plain_toml import parse_plain

REPO = Path(__file__).resolve().parent.parent
LISTS = sorted((REPO / "targets").rglob("*.toml"))

SAMPLE = """\
# a comment\r
[list]
name = "bench"
updated = 2026-11-28
description = "tab\there, ünïcode, [brackets], # not a comment"

[[targets]]
id = "bench/h0"
service = "bench"
check = "https"
url = "https://h0.bench.test/"
tags = ["a", "b,c", ]
  ports = [443, +80, -0]
dc = -4
quic = true
empty = []
"""


def _tomllib(text: str) -> object:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return "error"


def test_the_bundled_lists_read_as_tomllib_reads_them() -> None:
    assert LISTS
    for path in LISTS:
        text = path.read_text(encoding="utf-8")
        assert repr(parse_plain(text)) == repr(tomllib.loads(text)), path


def test_the_plain_shape_reads_as_tomllib_reads_it() -> None:
    assert repr(parse_plain(SAMPLE)) == repr(tomllib.loads(SAMPLE))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "# only a comment\n",
        'name = "top level"\n[list]\n',
        '[list]\nname = "a"\nname = "b"\n',
        "[list]\n[list]\n",
        '[list]\nname = "a" # inline\n',
        '[list]\nname = "a\\tb"\n',
        "[list]\nname = 'literal'\n",
        '[list]\nname = """multi"""\n',
        "[list]\nv = 1.5\n",
        "[list]\nv = 1_000\n",
        "[list]\nv = 012\n",
        "[list]\nupdated = 2026-02-30\n",
        "[list]\nupdated = 2026-02-03T10:00:00\n",
        "[list]\na.b = 1\n",
        '[list]\n"quoted" = 1\n',
        "[other]\n",
        "[ list ]\n",
        "[list]\nv = [1,,2]\n",
        "[list]\nv = [,]\n",
        '[list]\nv = ["a" "b"]\n',
        "[list]\nv = [[1]]\n",
        "[list]\nv = [1\n",
        '[list]\nv = "a\rb"\n',
        "[list]\r\r\n",
        "[list]\r",
        "[list]\n# bad \x01 comment\n",
        "[list]\nv = tru\n",
        "[list]\nv = {a = 1}\n",
        "[list]\nv=\n",
        '[list]\nname = "a" "b"\n',
        '[list]\nname = "a"x\n',
        "[[targets]] # a comment\n",
        "[list]\n[[targets]]\n[list]\n",
    ],
)
def test_anything_else_is_left_to_tomllib(text: str) -> None:
    assert parse_plain(text) is None


def test_damaged_lists_read_as_tomllib_or_not_at_all() -> None:
    """Random damage to real lists: whatever the plain reader accepts, tomllib reads alike."""
    rng = random.Random(15)
    texts = [SAMPLE] + [path.read_text(encoding="utf-8") for path in LISTS]
    alphabet = [*"\"'[]=,#.\\ \t\r\n-+_01azT:{}", "\x00", "\x7f", "é"]
    accepted = 0
    for _ in range(3000):
        text = rng.choice(texts)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(text) + 1)
            action = rng.random()
            if action < 0.4:
                text = text[:at] + rng.choice(alphabet) + text[at:]
            elif action < 0.8:
                text = text[:at] + text[at + 1 :]
            else:
                text = text[:at] + rng.choice(alphabet) + text[at + 1 :]
        plain = parse_plain(text)
        if plain is not None:
            accepted += 1
            assert repr(plain) == repr(_tomllib(text)), repr(text)  # types and order too
    assert accepted > 500  # most damage lands in notes and ids, which stay plain


@pytest.mark.parametrize(
    "text",
    [
        '[list]\nname="a"\n',
        '[list]\n\tname\t=\t"a"\t\n',
        '  [[targets]]  \nid = ""\n',
        '[[targets]]\nid = "a"\n[[targets]]\nid = "b"\n[list]\nname = "c"\n',
        "[list]\n   # indented comment\n\n   \nv = 0\n",
        '[list]\nv = "#" \n',
    ],
)
def test_each_kind_of_line_reads_as_tomllib_reads_it(text: str) -> None:
    """Blank lines, comments, headers and keys with a string or another value, as spacing
    varies: the one match a line is read with tells them apart as tomllib does."""
    plain = parse_plain(text)
    assert plain is not None
    assert repr(plain) == repr(tomllib.loads(text))
