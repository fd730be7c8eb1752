"""A `probe` subprocess whose stdin and stderr are a real pseudo-terminal, as a volunteer's
shell gives it (stdout stays a pipe, so the summary can be read whole): `expect` waits for a
text on the terminal, `answer` types a line."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path


class TerminalSession:
    def __init__(self, args: Sequence[str], env: dict[str, str], cwd: Path) -> None:
        master, slave = os.openpty()
        self.master = master
        self.seen = ""  # everything the terminal showed so far
        self._unread = 0  # where the next `expect` starts looking
        self.process = subprocess.Popen(
            [sys.executable, "-m", "probe", *args],
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=slave,
            env=env,
            cwd=cwd,
        )
        os.close(slave)

    def _read(self, until: float) -> bool:
        """Read what is there before `until`; False once the terminal is closed."""
        ready, _, _ = select.select([self.master], [], [], max(0.0, until - time.monotonic()))
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 4096)
        except OSError:  # EIO: the child closed the terminal
            return False
        if not chunk:
            return False
        self.seen += chunk.decode(errors="replace").replace("\r\n", "\n")
        return True

    def expect(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.seen[self._unread :]:
            if time.monotonic() > deadline or not self._read(deadline):
                raise AssertionError(f"{text!r} not shown; the terminal showed:\n{self.seen}")
        self._unread = self.seen.index(text, self._unread) + len(text)

    def answer(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def finish(self, timeout: float = 60.0) -> tuple[int, str]:
        """Wait for the exit; the exit status and stdout (the terminal's text is in `seen`)."""
        deadline = time.monotonic() + timeout
        # Keep reading the terminal while waiting: a full terminal buffer would stall the child.
        while self._read(min(deadline, time.monotonic() + 0.2)) and time.monotonic() < deadline:
            if self.process.poll() is not None and not select.select([self.master], [], [], 0)[0]:
                break
        stdout, _ = self.process.communicate(timeout=max(1.0, deadline - time.monotonic()))
        os.close(self.master)
        return self.process.returncode, stdout.decode()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
