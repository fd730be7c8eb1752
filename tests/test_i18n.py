"""Persian (issue 16): the catalog covers every message of the source and ships compiled, the
locale and `--lang` choose the language, a loopback round with `--lang fa` prints the compiled
catalog's Persian and writes the same English records as an English round, and the Persian
table renders at 80 columns and in a pipe."""

from __future__ import annotations

import datetime
import importlib.util
import io
import json
import re
import string
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from rich.cells import cell_len
from rich.console import Console

from probe import i18n
from probe.cli.summary import print_summary
from probe.i18n import C, Clauses, M, Names, P, Raw, Said, catalog, sentence, text_of
from probe.i18n.catalog import language_from_environment
from probe.round.runner import RoundResult
from tests.loopback_world import PROBE, loopback_world, probe_env, read_records, run_probe

REPO = Path(__file__).resolve().parent.parent
PERSIAN = re.compile(r"[\u0600-\u06ff]")


def _tools() -> ModuleType:
    spec = importlib.util.spec_from_file_location("i18n_tools", REPO / "tools" / "i18n.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def persian() -> Iterator[None]:
    i18n.set_language("fa")
    try:
        yield
    finally:
        i18n.set_language("en")


# --- the catalog ------------------------------------------------------------------------------


def test_the_catalog_covers_every_message_of_the_source() -> None:
    """Babel's extraction of the source against probe.po: every msgid translated, none fuzzy,
    none stale, the same placeholders and markup as the English, and the .mo is the .po
    compiled (tools/i18n.py check says the same)."""
    tools = _tools()
    assert tools.languages() == [lang for lang in i18n.LANGUAGES if lang != "en"]
    template = tools.extract()
    ids = [m for m in template if m.id]
    assert len(ids) > 200  # the reasons, the summary, run's help and errors, click's words
    for language in tools.languages():
        assert tools.problems(language) == []


def test_the_shipped_catalog_is_the_po_compiled() -> None:
    tools = _tools()
    po = tools.read("fa")
    mo = tools.po_path("fa").with_suffix(".mo").read_bytes()
    assert tools._parsed(mo) == tools._parsed(tools.compiled(po))
    translation = catalog("fa")
    for message in po:
        if message.id and isinstance(message.id, str) and message.context is None:
            assert translation.gettext(message.id) == message.string


def test_catalog_checks_find_what_is_wrong(tmp_path: Path) -> None:
    """The check is not vacuous: a missing, a stale, a fuzzy and a misspelt placeholder are
    each reported."""
    tools = _tools()
    from babel.messages.catalog import Catalog

    template = Catalog()
    template.add("one {name}")
    template.add("two")
    broken = Catalog(locale="fa")
    broken.add("one {name}", "یک {nam}")
    broken.add("gone", "رفته")
    broken.add("two", "دو", flags=["fuzzy"])
    found = " | ".join(tools.catalog_problems(template, broken, None))
    for word in ("placeholders differ", "stale", "fuzzy"):
        assert word in found, found
    template.add("three")
    assert "missing" in " | ".join(tools.catalog_problems(template, broken, None))


# --- messages ---------------------------------------------------------------------------------


def test_messages_render_in_english_and_persian() -> None:
    fa = catalog("fa")
    label = "149.154.167.51:443"
    what = M("the TCP connect")
    message = M("{what} to {label} failed ({failure})", what=what, label=label, failure="x_y")
    assert message.english() == "the TCP connect to 149.154.167.51:443 failed (x_y)"
    assert message.render(fa) == "اتصال TCP به 149.154.167.51:443 ناموفق بود (x_y)"
    names = Names.of(["a", "b", "c", "d", "a"], 3)
    assert names.english() == "a, b, c and 1 more"
    assert names.render(fa) == "a، b، c و 1 مورد دیگر"
    assert Names(()).english() == "nothing"
    reason = sentence(message, None, Clauses((M("nothing"), Raw("x."))))
    assert reason.english() == "The TCP connect to 149.154.167.51:443 failed (x_y); nothing; x."
    assert reason.render(fa).endswith(".") and "؛ " in reason.render(fa)
    attempts = P("{evidence} (after {count} failed attempt on it: {failures})",
                 "{evidence} (after {count} failed attempts on it: {failures})",
                 2, evidence="e", failures="f")  # fmt: skip
    assert attempts.english() == "e (after 2 failed attempts on it: f)"
    assert C("status", "blocked").render(fa) == "مسدود"


def test_a_message_is_never_formatted_as_a_str_by_mistake() -> None:
    with pytest.raises(TypeError):
        f"{M('the control')}"
    said = Said(M("the control"))
    assert said == "the control" and text_of(said).render(catalog("fa")) == "سرور کنترل"
    assert text_of("plain").render(catalog("fa")) == "plain"


def test_a_broken_translation_falls_back_to_english() -> None:
    class Broken:
        language, capitalize = "xx", False

        def gettext(self, message: str) -> str:
            return "{nme} broken"

        def ngettext(self, singular: str, plural: str, n: int) -> str:
            return singular

        def pgettext(self, context: str, message: str) -> str:
            return message

    assert M("{name} works", name="it").render(Broken()) == "it works"


# --- choosing the language ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "language"),
    [
        ({"LANG": "fa_IR.UTF-8"}, "fa"),
        ({"LANG": "fa_IR"}, "fa"),
        ({"LANGUAGE": "fa:en", "LANG": "en_US.UTF-8"}, "fa"),
        ({"LANGUAGE": "de:fa"}, "fa"),
        ({"LC_ALL": "C", "LANG": "fa_IR.UTF-8"}, "en"),
        ({"LC_MESSAGES": "fa_IR.UTF-8", "LANG": "en_GB.UTF-8"}, "fa"),
        ({"LANG": "de_DE.UTF-8"}, "en"),
        ({"LANG": "C.UTF-8"}, "en"),
        ({}, "en"),
    ],
)
def test_the_environment_chooses_the_language(environ: dict[str, str], language: str) -> None:
    assert language_from_environment(environ) == language


def _probe(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    environment = probe_env()
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        environment.pop(name, None)
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "probe", *args],
        env=environment,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_lang_fa_in_the_locale_and_lang_en_overrides_it() -> None:
    persian = _probe(["run", "--help"], LANG="fa_IR.UTF-8")
    assert persian.returncode == 0, persian.stderr
    assert "طرز استفاده:" in persian.stdout and "گزینه‌ها" in persian.stdout
    assert "بدون سرور کنترل اندازه بگیر." in persian.stdout
    for args in (["--lang", "en", "run", "--help"], ["run", "--help", "--lang", "en"]):
        english = _probe(args, LANG="fa_IR.UTF-8")
        assert english.returncode == 0, english.stderr
        assert "Usage:" in english.stdout and "Measure without a control server." in english.stdout
        assert not PERSIAN.search(english.stdout), english.stdout
    for args in (["--lang", "fa", "run", "--help"], ["run", "--help", "--lang=fa"]):
        forced = _probe(args, LANG="en_US.UTF-8")
        assert "طرز استفاده:" in forced.stdout, forced.stdout


def test_errors_of_probe_run_in_persian_one_line_exit_2(tmp_path: Path) -> None:
    cases = [
        (["--lang", "fa", "run", "--timeout", "x"], "float معتبر نیست"),
        (["--lang", "fa", "run", "--timeout", "-1"], "باید بیشتر از 0"),
        (["run", "--lang", "fa", "--bogus"], "گزینه‌ای به نام '--bogus' وجود ندارد"),
        (["--lang", "fa", "run", str(tmp_path / "none.toml")], "چنین پرونده یا پوشه‌ای"),
    ]
    for args, fragment in cases:
        result = _probe(args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("probe: خطا: ")
        assert fragment in result.stderr, result.stderr
    bad = _probe(["--lang", "xx", "run"])
    assert bad.returncode == 2 and "'xx'" in bad.stderr


# --- the table ------------------------------------------------------------------------------


def _result_with_every_status() -> RoundResult:
    result = RoundResult("f00d", datetime.datetime.now(datetime.UTC), "/tmp/results.jsonl")
    verdicts = [
        ("telegram", "telegram/dc2", "mtproto", "blocked", "tcp"),
        ("telegram", "telegram/dc4", "mtproto", "ok", None),
        ("telegram", "telegram/web", "https", "blocked", "dns"),
        ("whatsapp", "whatsapp/chat", "tcp", "down", None),
        ("signal", "signal/chat", "https", "inconclusive", None),
        ("baseline", "baseline/a", "https", "ok", None),
    ]
    for service, target_id, check, status, blocking in verdicts:
        reason = M(
            "{what} to {label} failed here ({failure}) but worked at {where}",
            what=M("the TCP connect"),
            label="[2001:67c:4e8:f004::a]:443",
            failure="generic_timeout_error",
            where=M("the control"),
        )
        record: dict[str, Any] = {
            "input": target_id,
            "test_name": service,
            "test_keys": {
                "target": {"check": check, "tags": []},
                "verdict": {
                    "status": status,
                    "blocking": blocking,
                    "fingerprints": ["ooni.ir_10dot10_ipv4_1"] if blocking == "dns" else [],
                    "reason": sentence(reason).english(),
                },
            },
        }
        result.records.add(record, sentence(reason))
    result.x_vantage = {"baseline_ok": 1, "baseline_total": 1}
    result.control_failure = "connection_refused"
    return result


@pytest.mark.parametrize("terminal", [True, False])
def test_the_persian_table_renders_at_80_columns(persian: None, terminal: bool) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=80, force_terminal=terminal, color_system=None)
    print_summary(_result_with_every_status(), console)
    text = buffer.getvalue()
    for word in ("سرویس", "وضعیت", "مسدود", "افتاده", "نامشخص", "تلگرام", "واتس‌اپ"):
        assert word in text, word
    table = text.split("\n  - ")[0]
    assert all(cell_len(line) <= 80 for line in table.splitlines()), table
    assert "هدف telegram/dc2: اتصال TCP به [2001:67c:4e8:f004::a]:443 اینجا ناموفق بود" in text


# --- a round ------------------------------------------------------------------------------------


def _english_fragments() -> list[str]:
    """The English words of every message of the catalog (the text between placeholders, long
    enough to be unmistakable), except those its Persian keeps (technical words)."""
    tools = _tools()
    po = tools.read("fa")
    kept = " ".join(
        s for m in po if m.id for s in ([m.string] if isinstance(m.string, str) else m.string)
    )
    fragments: set[str] = set()
    for message in po:
        if not message.id:
            continue
        for msgid in [message.id] if isinstance(message.id, str) else message.id:
            for text, *_ in string.Formatter().parse(msgid):
                for piece in re.split(r"[()\[\]:;,.]", text):
                    piece = piece.strip()
                    if len(piece) >= 12 and " " in piece and piece not in kept:
                        fragments.add(piece)
    return sorted(fragments)


def _verdicts(out: Path) -> dict[str, dict[str, Any]]:
    return {r["input"]: r["test_keys"]["verdict"] for r in read_records(out)}


async def test_a_persian_round_prints_the_catalog_and_writes_english_records(tmp_path):
    english_out, persian_out = tmp_path / "en", tmp_path / "fa"
    async with loopback_world(tmp_path) as world:
        common = [
            str(world.list_path),
            "--resolver",
            world.resolver,
            "--source-address",
            PROBE,
            "--ca-file",
            world.ca_file,
            "--timeout",
            "1.5",
            "--control",
            world.control_url,
        ]
        english = await run_probe(["run", *common, "--out", str(english_out)])
        persian = await run_probe(["--lang", "fa", "run", *common, "--out", str(persian_out)])
    assert english.returncode == 0 and persian.returncode == 0, persian.stderr
    # the screen: Persian from the compiled catalog, no English sentence of the catalog
    for text in ("probe: نتایج این دور", "سرویس", "وضعیت", "مسدود", "هدف itest/", "نتایج:"):
        assert text in persian.stdout, persian.stdout
    assert "سرور کنترل" in persian.stdout and "(اثر انگشت" in persian.stdout
    assert re.search(r"\[\d+/\d+\] itest/\S+: (مسدود|در دسترس|نامشخص)", persian.stderr)
    fragments = _english_fragments()
    assert len(fragments) > 100 and "endpoints blocked" in fragments
    untranslated = [f for f in fragments if f in persian.stdout + persian.stderr]
    assert not untranslated, (untranslated, persian.stdout)
    assert "results of this round" in english.stdout and not PERSIAN.search(english.stdout)
    # the records: English, the same verdicts and reasons word for word
    assert _verdicts(persian_out) == _verdicts(english_out)
    for path in persian_out.rglob("*.jsonl"):
        assert not PERSIAN.search(path.read_text(encoding="utf-8")), path
    assert any(v["status"] == "blocked" for v in _verdicts(persian_out).values())


async def test_a_persian_json_summary_stays_english(tmp_path):
    out = tmp_path / "results"
    async with loopback_world(tmp_path) as world:
        result = await run_probe(
            [
                "run",
                str(world.list_path),
                "--lang",
                "fa",
                "--resolver",
                world.resolver,
                "--source-address",
                PROBE,
                "--ca-file",
                world.ca_file,
                "--timeout",
                "1.5",
                "--no-control",
                "--json",
                "--out",
                str(out),
            ]
        )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert not PERSIAN.search(result.stdout)
    reasons = [r for s in summary["services"] for r in s["reasons"]]
    assert reasons and all(": " in r for r in reasons)
    assert PERSIAN.search(result.stderr)  # the progress lines are the volunteer's
