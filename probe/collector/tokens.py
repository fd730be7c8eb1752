"""Bearer tokens per volunteer group, from a file the operator names: one `GROUP TOKEN` per
line (`#` starts a comment). A token names its group; the group is stored with each record
the token uploads. Tokens are compared in constant time: the presented token's SHA-256 is
compared with every known token's (`hmac.compare_digest`, no early exit), so neither the
time taken nor its variation says how much of a token was right."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path

GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: Shortest token accepted: 16 characters (`secrets.token_urlsafe(32)` gives 43).
MIN_TOKEN_CHARS = 16
MAX_TOKEN_CHARS = 512
TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")


class TokenFileError(ValueError):
    """A bad tokens file: the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Tokens:
    """The known tokens as (SHA-256 of the token, group)."""

    entries: tuple[tuple[bytes, str], ...]

    def group_of(self, authorization: str) -> str | None:
        """The group of the bearer token in an Authorization header value, or None."""
        scheme, _, token = authorization.strip().partition(" ")
        presented = hashlib.sha256(token.strip().encode("utf-8", "replace")).digest()
        found: str | None = None
        for digest, group in self.entries:
            if hmac.compare_digest(presented, digest) and scheme.lower() == "bearer":
                found = group
        return found


def load_tokens(path: Path) -> Tokens:
    """Read a tokens file; raises TokenFileError (file:line: problem) or OSError."""
    entries: list[tuple[bytes, str]] = []
    seen: dict[str, int] = {}
    text = path.read_text("utf-8")
    for number, line in enumerate(text.splitlines(), 1):
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        parts = content.split()
        where = f"{path}:{number}"
        if len(parts) != 2:
            raise TokenFileError(f"{where}: expected `GROUP TOKEN`")
        group, token = parts
        if not GROUP_NAME.fullmatch(group):
            raise TokenFileError(f"{where}: bad group name (letters, digits, . _ -; 64 at most)")
        if not MIN_TOKEN_CHARS <= len(token) <= MAX_TOKEN_CHARS or not TOKEN_CHARS.fullmatch(token):
            raise TokenFileError(
                f"{where}: a token is {MIN_TOKEN_CHARS} to {MAX_TOKEN_CHARS} printable"
                " characters (make one with: python3 -c 'import secrets;"
                " print(secrets.token_urlsafe(32))')"
            )
        if token in seen:
            raise TokenFileError(f"{where}: the same token as line {seen[token]}")
        seen[token] = number
        entries.append((hashlib.sha256(token.encode()).digest(), group))
    if not entries:
        raise TokenFileError(f"{path}: no tokens")
    return Tokens(tuple(entries))
