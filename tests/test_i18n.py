"""Persian (issue 16): the catalog covers every message of the source and ships compiled, the
locale and `--lang` choose the language, a loopback round with `--lang fa` prints the compiled
catalog's Persian and writes the same English records as an English round, and the Persian
table renders at 80 columns and in a pipe. The first-run consent in Persian at a real
pseudo-terminal (accepted with Persian answers, refused after wrong ones), its one-line refusal
without a terminal, `probe results`, `probe purge`, retention and the help of those commands in
Persian (the schedule's Persian messages are tested in tests/test_schedule.py)."""

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
from probe.cli import consent
from probe.cli.answers import answer_of
from probe.cli.summary import print_summary
from probe.i18n import C, Clauses, M, Names, P, Raw, Said, catalog, sentence, text_of
from probe.i18n.catalog import language_from_environment
from probe.round.runner import RoundResult
from tests.loopback_world import PROBE, loopback_world, probe_env, read_records, run_probe
from tests.terminal import TerminalSession
from tests.test_local_data import (
    _assert_purged,
    _probe_files,
    _purge_on_a_terminal,
    copy_round,
    probe_cli,
    quick_round,
    results_path,
    write_list,
)

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


# --- consent in Persian ---------------------------------------------------------------------


def _first_run(tmp_path: Path) -> tuple[list[str], dict[str, str], Path, Path]:
    """A fresh machine (no consent recorded, no PROBE_ACCEPT_RISKS) and `probe --lang fa run`
    over one closed loopback port: its arguments, environment, config file and results."""
    target_list = tmp_path / "t.toml"
    target_list.write_text(
        '[list]\nname = "t"\nupdated = 2026-01-01\n\n[[targets]]\nid = "t/a"\n'
        'service = "t"\ncheck = "tcp"\nhost = "127.0.0.1"\nports = [9]\n'
    )
    env = probe_env()
    env.pop(consent.ENV_VAR, None)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    out = tmp_path / "results"
    args = [
        "--lang", "fa", "run", str(target_list), "--no-control", "--no-ip-discovery",
        "--resolver", "127.0.0.1:9", "--timeout", "2", "--out", str(out),
    ]  # fmt: skip
    return args, env, tmp_path / "config" / "probe" / "config.toml", out


def _no_english_consent(seen: str) -> None:
    """None of the English consent text reached the terminal."""
    english = [p.splitlines()[0] for p in consent.EXPLANATION]
    english += [consent.FINAL_QUESTION, *(q.text for q in consent.QUESTIONS), "(yes/no)"]
    english += [q.why for q in consent.QUESTIONS] + ["please answer yes or no", "no consent"]
    assert not [text for text in english if text in seen], seen


def test_first_run_consent_in_persian_is_accepted_with_persian_answers(tmp_path: Path) -> None:
    args, env, config, out = _first_run(tmp_path)
    session = TerminalSession(args, env, REPO)
    try:
        session.expect("پیش از نخستین اندازه‌گیری، لطفاً این متن را بخوانید")
        session.expect("آنچه probe می‌فرستد:")
        session.expect("چه کسی آن را می‌بیند:")
        session.expect("نشانی IP شما هرگز ذخیره نمی‌شود")
        session.expect("خطرها: اندازه‌گیری سانسور در برخی کشورها می‌تواند حساس یا غیرقانونی باشد")
        session.expect("می‌تواند ببیند که probe را اجرا کرده‌اید؟ (بله/نه)")
        session.answer("شاید")  # neither yes nor no: asked again
        session.expect("خطا: لطفاً «بله» یا «نه» بنویسید")
        session.expect("(بله/نه)")
        session.answer("آره")
        session.expect("آیا اندازه‌گیری سانسور در همهٔ کشورها بی‌خطر است؟ (بله/نه)")
        session.answer("خیر")
        session.expect("می‌خواهید probe را همین حالا اجرا کنید؟ (بله/نه)")
        session.answer("بله")
        status, stdout = session.finish()
    finally:
        session.kill()
    assert status == 0, session.seen
    assert f"سپاس. پاسخ شما در {config} ذخیره شد؛ probe دیگر این را نمی‌پرسد." in session.seen
    assert consent.recorded(config)
    assert "probe: نتایج این دور" in stdout and list(out.rglob("*.jsonl"))
    _no_english_consent(session.seen)


@pytest.mark.parametrize(
    ("steps", "refusal"),
    [
        # the first question answered wrongly twice: the Persian explanation, then the refusal
        (
            [("ببیند که probe را اجرا کرده‌اید؟ (بله/نه)", "نه"),
             ("بله، می‌تواند: probe همان ترافیک برنامه‌ها را می‌فرستد", "نه")],
            "رضایتی داده نشد: هیچ اندازه‌گیری‌ای انجام نشد؛ لطفاً اول متن را دوباره بخوانید",
        ),
        # right answers (an English one too), and a no at the end
        (
            [("ببیند که probe را اجرا کرده‌اید؟ (بله/نه)", "yes"),
             ("بی‌خطر است؟ (بله/نه)", "نه"),
             ("همین حالا اجرا کنید؟ (بله/نه)", "نخیر")],
            "رضایتی داده نشد: هیچ اندازه‌گیری‌ای انجام نشد\n",
        ),
    ],
)  # fmt: skip
def test_first_run_consent_in_persian_refused_measures_nothing(
    tmp_path: Path, steps: list[tuple[str, str]], refusal: str
) -> None:
    args, env, config, out = _first_run(tmp_path)
    session = TerminalSession(args, env, REPO)
    try:
        for shown, typed in steps:
            session.expect(shown)
            session.answer(typed)
        status, stdout = session.finish()
    finally:
        session.kill()
    assert status == 2, session.seen
    assert f"probe: خطا: {refusal}" in session.seen
    assert stdout == ""
    assert not config.parent.parent.exists() and not out.exists()
    _no_english_consent(session.seen)


@pytest.mark.parametrize("how", ["--lang", "locale"])
def test_without_a_terminal_the_persian_refusal_is_one_line(tmp_path: Path, how: str) -> None:
    args, env, config, out = _first_run(tmp_path)
    if how == "locale":
        args = args[2:]  # no --lang: the locale asks for Persian
        for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
            env.pop(name, None)
        env["LANG"] = "fa_IR.UTF-8"
    result = subprocess.run(
        [sys.executable, "-m", "probe", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("probe: خطا: رضایتی ثبت نشده و ترمینالی برای پرسیدن نیست: ")
    assert "`probe run`" in result.stderr and "--yes" in result.stderr
    assert "PROBE_ACCEPT_RISKS=1" in result.stderr
    assert result.stdout == "" and not out.exists() and not config.exists()


@pytest.mark.parametrize(
    ("typed", "meaning"),
    [
        ("yes", True), ("Y", True), (" بله ", True), ("بلی", True), ("آره", True),
        ("\u0627\u0653ره", True),  # آره typed as alef + madda
        ("بله.", True), ("no", False), ("N", False), ("نه", False), ("خیر", False),
        ("نخیر", False), ("maybe", None), ("شاید", None), ("", None), ("yes no", None),
    ],
)  # fmt: skip
def test_answers_are_english_or_persian_in_any_language(typed: str, meaning: bool | None) -> None:
    assert answer_of(typed) is meaning


# --- results, purge, retention and their help in Persian -----------------------------------------


def test_probe_results_in_persian(tmp_path: Path) -> None:
    out = tmp_path / "r"
    first = results_path(quick_round(tmp_path, "--out", str(out)).stdout)
    quick_round(tmp_path, "--out", str(out))
    for args in (["--lang", "fa", "results"], ["results", "--lang", "fa", "list"]):
        listed = probe_cli([*args, "--out", str(out)], tmp_path)
        assert listed.returncode == 0, listed.stderr
        header, *rows, total = listed.stdout.splitlines()
        for word in ("تاریخ (UTC)", "شناسهٔ گزارش", "هدف‌ها", "در دسترس", "مسدود", "نامشخص"):
            assert word in header, header
        assert total == f"2 دور در {out}"
        assert len(rows) == 2 and all(row.endswith("AS0 ZZ  (بدون اینترنت)") for row in rows)
        # the counts sit under their Persian headers: the network column starts in the same
        # terminal cell on every line
        start = cell_len(header[: header.index("شبکه")])
        assert {cell_len(row[: row.index("AS0 ZZ")]) for row in rows} == {start}
        for english in ("date", "report id", "rounds in", "offline", "network"):
            assert english not in listed.stdout
    report_id = first.stem.split("_", 1)[1]  # <start>_<report id>.jsonl
    shown = probe_cli(
        ["--lang", "fa", "results", "show", report_id[:6], "--out", str(out)], tmp_path
    )
    assert shown.returncode == 0, shown.stderr
    assert f"probe: دور {report_id}، " in shown.stdout and " به وقت UTC" in shown.stdout
    assert f"دور {report_id}: 2 هدف در " in shown.stdout
    assert f"شبکهٔ AS0، کشور ZZ. نتایج: {first}" in shown.stdout
    assert "Round" not in shown.stdout and "Results:" not in shown.stdout
    unknown = probe_cli(["--lang", "fa", "results", "show", "abcd", "--out", str(out)], tmp_path)
    assert unknown.returncode == 2
    assert unknown.stderr == f"probe: خطا: abcd: دوری با این شناسهٔ گزارش در {out} نیست\n"
    empty = probe_cli(["--lang", "fa", "results", "--out", str(tmp_path / "none")], tmp_path)
    assert empty.stdout.startswith(f"هنوز هیچ دوری در {tmp_path / 'none'} نیست")


def test_probe_purge_in_persian(tmp_path: Path) -> None:
    files = _probe_files(tmp_path)
    refused = probe_cli(["--lang", "fa", "purge"], tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert refused.stderr.startswith("probe: خطا: purge نتایج، تنظیمات و زمان‌بندی را پاک می‌کند")
    assert "--yes" in refused.stderr and "run it on a terminal" not in refused.stderr
    assert all(path.exists() for path in files.values())
    args, question = ("--lang", "fa", "purge"), "همهٔ این‌ها حذف شود؟".encode()
    code, output = _purge_on_a_terminal(tmp_path, b"\n", args=args, question=question)
    assert code == 1 and "چیزی حذف نشد." in output, output  # Enter alone is no
    assert "این‌ها با probe purge حذف می‌شوند:" in output
    assert f"  - 1 پروندهٔ نتیجه در {tmp_path / 'data' / 'results'}" in output
    assert f"  - پروندهٔ تنظیمات {files['config']}" in output
    assert "(بله/نه؛ پیش‌فرض: نه)" in output and "[y/N]" not in output
    assert all(path.exists() for path in files.values())
    code, output = _purge_on_a_terminal(tmp_path, "بله\n".encode(), args=args, question=question)
    assert code == 0, output
    _assert_purged(files)
    assert f"از {tmp_path / 'data' / 'results'}، 1 پروندهٔ نتیجه حذف شد." in output
    assert f"حذف شد: {files['config']}" in output
    assert f"در {files['custom']}، 1 پرونده باقی ماند" in output
    assert "خود برنامه هنوز نصب است: `pipx uninstall probe` آن را حذف می‌کند." in output
    for english in ("Removed", "Left", "The program itself", "will remove"):
        assert english not in output


def test_retention_lines_in_persian(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    source = results_path(quick_round(tmp_path, "--out", str(tmp_path / "first")).stdout)
    out = tmp_path / "r"
    old = copy_round(source, out, datetime.now(UTC) - timedelta(days=10), "0" * 16)
    args = [
        "--lang", "fa", "run", str(write_list(tmp_path)), "--no-control",
        "--resolver", "127.0.0.1:9", "--timeout", "1", "--out", str(out), "--keep-days", "7",
    ]  # fmt: skip
    result = probe_cli(args, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "probe: 1 پروندهٔ نتیجهٔ قدیمی‌تر از 7 روز پاک شد (keep_days)" in result.stderr
    assert not old.exists() and "deleted" not in result.stderr


@pytest.mark.parametrize(
    ("args", "persian"),
    [
        (["results", "--help"], "دورهای گذشته روی این دستگاه"),
        (["results", "list", "--help"], "فقط N دور آخر."),
        (["results", "show", "--help"], "خلاصهٔ یک دور"),
        (["purge", "--help"], "چیزی نپرس (برای اسکریپت‌ها)."),
        (["schedule", "--help"], "اجرای منظم probe"),
        (["schedule", "install", "--help"], "مثلاً 30m، 1h، 6h.  [الزامی]"),
        (["schedule", "remove", "--help"], "زمان‌سنج (یا خط crontab) را غیرفعال و حذف کن."),
        (["run", "--help"], "فقط تلگرام (و سایت‌های مبنا)"),
    ],
)
def test_help_and_examples_of_results_purge_and_schedule_in_persian(
    args: list[str], persian: str
) -> None:
    result = _probe(["--lang", "fa", *args])
    assert result.returncode == 0, result.stderr
    assert persian in result.stdout, result.stdout
    assert "طرز استفاده:" in result.stdout and "مثال" in result.stdout
    assert "Example" not in result.stdout and "Options" not in result.stdout
