"""Which language the volunteer reads, and its catalog.

The language is `--lang` when given, else the environment as gettext reads it: the first of
LANGUAGE, LC_ALL, LC_MESSAGES and LANG that is set and not empty (LANGUAGE may list several,
`fa:en`); `fa_IR.UTF-8` means Persian; `C`, `POSIX`, English or a language without a catalog
means English, the source language. Catalogs are `probe/locale/<lang>/LC_MESSAGES/probe.mo`,
read as package data (so they load from a wheel, a zip or a single-file build alike).
"""

from __future__ import annotations

import gettext
import io
import os
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources

DOMAIN = "probe"
#: the source language and the languages with a catalog (tests check they match the files)
LANGUAGES = ("en", "fa")
#: right-to-left languages (a table's column order stays left to right; see docs/translating.md)
RTL_LANGUAGES = frozenset({"fa", "ar", "he", "ur", "ps"})
#: scripts without letter case: a sentence's first letter is left as it is
UNCASED_LANGUAGES = frozenset({"fa", "ar", "he", "ur", "ps", "zh", "ja", "ko", "th"})
ENVIRONMENT = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


def normalise(code: str) -> str:
    """`fa_IR.UTF-8@x` → `fa`; `C` and `POSIX` → `en`."""
    base = code.strip().split(".", 1)[0].split("@", 1)[0].replace("-", "_").split("_", 1)[0]
    base = base.lower()
    return "en" if base in ("c", "posix", "") else base


def language_from_environment(environ: Mapping[str, str] | None = None) -> str:
    """The language the environment asks for, among LANGUAGES (English otherwise)."""
    env = os.environ if environ is None else environ
    for name in ENVIRONMENT:
        value = env.get(name, "")
        if not value:
            continue
        for item in value.split(":") if name == "LANGUAGE" else [value]:
            code = normalise(item)
            if code in LANGUAGES:
                return code
        return "en"
    return "en"


class Translation(gettext.GNUTranslations):
    """A language's catalog, with what rendering needs to know of the language."""

    language = "en"
    capitalize = True
    rtl = False


class SourceLanguage(gettext.NullTranslations):
    """English: the msgids themselves."""

    language = "en"
    capitalize = True
    rtl = False


Catalog = Translation | SourceLanguage


@lru_cache(maxsize=8)
def catalog(language: str) -> Catalog:
    """The catalog of `language` (English: no catalog). A missing catalog is English."""
    code = normalise(language)
    if code == "en":
        return SourceLanguage()
    path = resources.files("probe").joinpath("locale", code, "LC_MESSAGES", f"{DOMAIN}.mo")
    try:
        data = path.read_bytes()
    except OSError:
        return SourceLanguage()
    translation = Translation(io.BytesIO(data))
    translation.language = code
    translation.capitalize = code not in UNCASED_LANGUAGES
    translation.rtl = code in RTL_LANGUAGES
    return translation
