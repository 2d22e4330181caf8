"""Our command-line processes (`assistants-compat core`, `edge`, …) for tests that need real
processes: to kill one with SIGKILL, or to run several cores on one database.

Each process's stderr (its log) is read on a thread of its own, so a test waits for a log line
(`wait_for`) instead of polling a port.
"""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

START_TIMEOUT = 60.0


class Process:
    """A command-line process of ours whose stderr log the test can wait on."""

    def __init__(self, command: str, env: dict[str, str], cwd: Path) -> None:
        self.command = command
        self._lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        self.popen = subprocess.Popen(
            [sys.executable, "-c", "from compat_core.cli import main; main()", command],
            env=env,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self.log.append(line)
            self._lines.put(line)

    def wait_for(self, pattern: str) -> re.Match[str]:
        """The first log line matching `pattern` (from the start); fail on exit or timeout."""
        wanted = re.compile(pattern)
        while True:
            try:
                line = self._lines.get(timeout=START_TIMEOUT)
            except queue.Empty:
                raise AssertionError(f"{self.command}: no {pattern!r} in {self.log}") from None
            found = wanted.search(line)
            if found:
                return found

    def stop(self) -> int:
        """SIGTERM (a graceful stop) and the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(START_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait()

    def kill(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(START_TIMEOUT)
