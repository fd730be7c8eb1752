"""The message catalogs (docs/translating.md): extract the messages from the source with Babel,
merge them into every language's .po, compile the .po files to the .mo files the package ships,
check that they agree.

    python tools/i18n.py update        # extract, merge into probe/locale/*/LC_MESSAGES/probe.po
    python tools/i18n.py compile       # .po -> .mo (commit both)
    python tools/i18n.py check         # what tests/test_i18n.py checks: complete, current, compiled
    python tools/i18n.py add LANG      # start a new language (then add it to probe.i18n.LANGUAGES)
    python tools/i18n.py pot FILE      # the template (.pot) for translation tools

Needs Babel (`pip install -e '.[test]'`); the probe itself reads the .mo files with the standard
library's gettext.
"""

from __future__ import annotations

import gettext
import io
import re
import string
import sys
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

REPO = Path(__file__).resolve().parent.parent
LOCALE = REPO / "probe" / "locale"
DOMAIN = "probe"
COPYRIGHT = "probe contributors"


def _keywords() -> dict[str, object]:
    sys.path.insert(0, str(REPO))
    from probe.i18n import BABEL_KEYWORDS

    return dict(BABEL_KEYWORDS)


def extract() -> Catalog:
    """Every message of the package's source, as a template (no locations: stable diffs)."""
    template = Catalog(project="probe", copyright_holder=COPYRIGHT, fuzzy=False)
    found = extract_from_dir(
        str(REPO / "probe"),
        method_map=[("**.py", "python")],
        keywords=_keywords(),
        comment_tags=("TRANSLATORS:",),
        strip_comment_tags=True,
    )
    for _filename, _line, message, comments, context in found:
        template.add(message, None, auto_comments=comments, context=context)
    return template


def po_path(language: str) -> Path:
    return LOCALE / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def languages() -> list[str]:
    return sorted(p.parent.parent.name for p in LOCALE.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))


def read(language: str) -> Catalog:
    with open(po_path(language), "rb") as handle:
        return read_po(handle, locale=language, domain=DOMAIN)


def write(language: str, catalog: Catalog) -> None:
    buffer = io.BytesIO()
    write_po(buffer, catalog, width=100, no_location=True, sort_output=True, omit_header=False)
    po_path(language).parent.mkdir(parents=True, exist_ok=True)
    po_path(language).write_bytes(buffer.getvalue())


def compiled(catalog: Catalog) -> bytes:
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    return buffer.getvalue()


def update() -> None:
    template = extract()
    for language in languages():
        catalog = read(language)
        before = _messages(catalog)
        # no fuzzy matching: a changed English sentence is a new message to translate
        catalog.update(template, no_fuzzy_matching=True, update_header_comment=False)
        catalog.obsolete.clear()
        # unchanged messages leave the file alone: rewriting only its date made needless
        # merge conflicts between branches
        if _messages(catalog) != before:
            write(language, catalog)
        print(f"{po_path(language).relative_to(REPO)}: {len(catalog)} messages")


def _messages(catalog: Catalog) -> set[tuple[object, object, object]]:
    return {(m.id, m.string, m.context) for m in catalog if m.id}


def compile_all() -> None:
    for language in languages():
        mo = po_path(language).with_suffix(".mo")
        data = compiled(read(language))
        if mo.is_file() and _parsed(mo.read_bytes()) == _parsed(data):
            print(f"{mo.relative_to(REPO)} up to date")
            continue
        mo.write_bytes(data)
        print(f"{mo.relative_to(REPO)} written")


def placeholders(text: str) -> list[tuple[str, str | None, str]]:
    """The `{name!r:spec}` fields of a template, sorted (a translation may reorder them)."""
    return sorted(
        (name, conversion, spec or "")
        for _text, name, spec, conversion in string.Formatter().parse(text)
        if name is not None
    )


def markup(text: str) -> list[str]:
    """rich's markup tags (`[bold]`, `[/bold]`) in a text, sorted."""
    return sorted(re.findall(r"\[/?[a-z][a-z ]*\]", text))


def _key(message: Message) -> tuple[str | None, str]:
    msgid = message.id if isinstance(message.id, str) else message.id[0]
    return message.context, msgid


def catalog_problems(template: Catalog, catalog: Catalog, mo_file: Path | None) -> list[str]:
    """What is wrong with a language's catalog against the messages of the source: missing,
    stale, untranslated or fuzzy messages, placeholders or markup that differ from the
    English, and a .mo file that is not the .po compiled."""
    found: list[str] = []
    wanted = {_key(m): m for m in template if m.id}
    have = {_key(m): m for m in catalog if m.id}
    found += [f"missing: {key}" for key in wanted.keys() - have.keys()]
    found += [f"stale (no longer in the source): {key}" for key in have.keys() - wanted.keys()]
    found += [f"obsolete entry: {key}" for key in catalog.obsolete]
    for key, message in have.items():
        if message.fuzzy:
            found.append(f"fuzzy: {key}")
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        if key in wanted and ids != (
            [wanted[key].id] if isinstance(wanted[key].id, str) else list(wanted[key].id)
        ):
            found.append(f"plural forms differ from the source: {key}")
        if not all(strings):
            found.append(f"untranslated: {key}")
            continue
        for text in strings:
            if placeholders(text) != placeholders(ids[-1]) and placeholders(text) != placeholders(
                ids[0]
            ):
                found.append(f"placeholders differ: {key}: {text!r}")
            if markup(text) != markup(ids[0]):
                found.append(f"markup differs: {key}: {text!r}")
    if mo_file is not None:
        if not mo_file.exists():
            found.append(f"{mo_file.name} missing: run tools/i18n.py compile")
        elif _parsed(mo_file.read_bytes()) != _parsed(compiled(catalog)):
            found.append(f"{mo_file.name} is not the .po compiled: run tools/i18n.py compile")
    return found


def _parsed(mo: bytes) -> tuple[dict[object, str], str]:
    translation = gettext.GNUTranslations(io.BytesIO(mo))
    return dict(translation._catalog), str(translation.plural(2))  # type: ignore[attr-defined]


def problems(language: str) -> list[str]:
    return catalog_problems(extract(), read(language), po_path(language).with_suffix(".mo"))


def add(language: str) -> None:
    if po_path(language).exists():
        raise SystemExit(f"{po_path(language)} exists")
    catalog = Catalog(locale=language, domain=DOMAIN, project="probe", copyright_holder=COPYRIGHT)
    catalog.update(extract(), no_fuzzy_matching=True)
    write(language, catalog)
    print(f"{po_path(language).relative_to(REPO)} created: translate it, then compile")


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "check"
    if command == "update":
        update()
    elif command == "compile":
        compile_all()
    elif command == "add" and len(argv) == 2:
        add(argv[1])
    elif command == "pot" and len(argv) == 2:
        buffer = io.BytesIO()
        write_po(buffer, extract(), width=100, no_location=True, sort_output=True)
        Path(argv[1]).write_bytes(buffer.getvalue())
    elif command == "check":
        found = [f"{lang}: {p}" for lang in languages() for p in problems(lang)]
        print("\n".join(found) or "catalogs complete and compiled")
        return 1 if found else 0
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
