"""Running rounds for a person at a terminal: signals, progress, the final summary, exit codes.

Progress and logs go to stderr (a rich progress bar on a terminal, plain lines otherwise); the
summary goes to stdout, or one JSON object per round with `--json`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from probe.cli.summary import print_summary, round_summary, status_word
from probe.i18n import _
from probe.results import ResultsDirError, ResultWriteError
from probe.round.runner import RoundOptions, RoundResult
from probe.round.schedule.rounds import run_rounds
from probe.targets import Target, TargetList

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_BAD_INPUT = 2
SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


class _Console:
    """A rich `Console` made on first use: rich costs ~0.19 G instructions to import, and with
    `--json` and stderr not a terminal a round prints nothing through it (unless a signal or
    a wait between rounds has something to say)."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.made: Console | None = None

    def get(self) -> Console:
        if self.made is None:
            from rich.console import Console

            self.made = Console(**self.options)
        return self.made

    def may_be_terminal(self) -> bool:
        """False when rich's `is_terminal` is sure to be False for this stream: no
        TTY_COMPATIBLE or FORCE_COLOR in the environment and a stream that is not a tty."""
        if os.environ.get("TTY_COMPATIBLE") or "FORCE_COLOR" in os.environ:
            return True
        stream = sys.stderr if self.options.get("stderr") else sys.stdout
        try:
            return bool(stream.isatty())
        except (AttributeError, ValueError):
            return True  # rich decides

    @property
    def is_terminal(self) -> bool:
        return self.may_be_terminal() and self.get().is_terminal


class _Progress:
    """A progress bar on a terminal, one plain line per target otherwise."""

    def __init__(self, total: int, err: _Console) -> None:
        self.err = err
        self.total = total
        self.done = 0
        self.bar: Progress | None = None
        self.task_id: Any = None
        if err.is_terminal:
            from rich.markup import escape
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.bar = Progress(
                TextColumn(escape(_("measuring"))),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.description}"),
                console=err.get(),
                transient=True,
            )

    def start(self) -> None:
        self.done = 0
        if self.bar is not None:
            self.bar.start()
            self.task_id = self.bar.add_task("", total=self.total)

    def record(self, record: dict[str, Any]) -> None:
        self.done += 1
        verdict = (record.get("test_keys") or {}).get("verdict") or {}
        status = status_word(str(verdict.get("status", "?")))
        blocking = verdict.get("blocking")
        label = f"{record.get('input')}: {status}" + (f"/{blocking}" if blocking else "")
        if self.bar is not None:
            from rich.markup import escape

            self.bar.update(self.task_id, advance=1, description=escape(label))
        else:
            # Plain lines for logs and pipes: a direct write (rich's rendering of one line per
            # target cost 15% of a 1,000-target round's CPU; bench/sweep_blackhole.py).
            sys.stderr.write(f"[{self.done}/{self.total}] {label}\n")

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def run_and_report(
    lists: Sequence[TargetList],
    targets: Sequence[Target],
    options: RoundOptions,
    *,
    every: float | None,
    count: int | None,
    as_json: bool,
    after_round: Callable[[RoundResult], None] | None = None,
) -> int:
    """Run the round(s) and return the exit status (0, 1, 2, 130 or 143). `after_round` runs
    after each completed round's summary (retention)."""
    err = _Console(stderr=True)
    out = _Console(soft_wrap=True)
    progress = _Progress(len(targets), err)

    def on_round(result: RoundResult) -> None:
        progress.stop()
        if as_json:
            sys.stdout.write(json.dumps(round_summary(result), ensure_ascii=False) + "\n")
            sys.stdout.flush()
        else:
            print_summary(result, out.get())
        if after_round is not None:
            after_round(result)

    def on_wait(delay: float) -> None:
        err.get().print(
            _("next round in {minutes} min (Ctrl-C stops)").format(minutes=f"{delay / 60:.1f}"),
            highlight=False,
            markup=False,
        )
        progress.start()

    async def rounds() -> None:
        progress.start()
        await run_rounds(
            lists,
            targets,
            options,
            every=every,
            count=count,
            on_record=progress.record,
            on_round=on_round,
            on_wait=on_wait,
        )

    try:
        return asyncio.run(_until_signal(rounds, progress, err))
    except BaseException as exc:
        progress.stop()
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return _exit_status_of(exc)


async def _until_signal(
    rounds: Callable[[], Awaitable[None]], progress: _Progress, err: _Console
) -> int:
    """Run `rounds`; SIGINT or SIGTERM cancels them (the round writes what it measured) and
    gives that signal's exit status."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    received: list[signal.Signals] = []

    def stop(sig: signal.Signals) -> None:
        if not received:
            received.append(sig)
            task.cancel()

    for sig in SIGNAL_EXIT:
        loop.add_signal_handler(sig, stop, sig)
    try:
        await rounds()
    except asyncio.CancelledError:
        progress.stop()
        if received:
            err.get().print(
                _(
                    "stopped: the records measured so far are on disk; unfinished targets are "
                    "marked interrupted."
                ),
                markup=False,
            )
            return SIGNAL_EXIT[received[0]]
        raise
    finally:
        for sig in SIGNAL_EXIT:
            loop.remove_signal_handler(sig)
    return EXIT_OK


def _exit_status_of(exc: BaseException) -> int:
    """The exit status and the one line on stderr for an error that ended the rounds."""
    found = _find(exc, (ResultsDirError, ResultWriteError))
    if isinstance(found, ResultsDirError):
        _error_line(_("probe: error: {message}").format(message=found))
        return EXIT_BAD_INPUT
    if isinstance(found, ResultWriteError):
        _error_line(_("probe: error: cannot write results: {error}").format(error=found))
        return EXIT_ERROR
    if os.environ.get("PROBE_DEBUG"):
        raise exc
    _error_line(
        _("probe: internal error: {kind}: {error} (set PROBE_DEBUG=1 for details)").format(
            kind=type(exc).__name__, error=exc
        )
    )
    return EXIT_ERROR


def _error_line(text: str) -> None:
    """One line on stderr, never wrapped (scripts and tests read it whole)."""
    sys.stderr.write(" ".join(text.split()) + "\n")
    sys.stderr.flush()


def _find(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    """The first exception of `kinds` in `exc` or, for exception groups, inside it."""
    if isinstance(exc, kinds):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _find(inner, kinds)
            if found is not None:
                return found
    return None
