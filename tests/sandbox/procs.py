"""What the host sees of a session's processes, from /proc."""

from __future__ import annotations

import os
import time
from pathlib import Path

from compat_core.sandbox.base import Session
from compat_core.sandbox.kernel import KernelSession


def uid_of(session: Session) -> int:
    """The host uid the session's sandbox runs as (its bubblewrap's)."""
    assert isinstance(session, KernelSession)
    return os.stat(f"/proc/{session.process.pid}").st_uid


def tasks_of_uid(uid: int) -> int:
    """Threads and processes the host runs as `uid` (what RLIMIT_NPROC counts)."""
    count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid:
                count += sum(1 for _ in (entry / "task").iterdir())
        except OSError:
            continue
    return count


def wait_until_no_tasks(uid: int, seconds: float = 10.0) -> int:
    """Poll until nothing runs as `uid` or the deadline passes; what is left."""
    deadline = time.monotonic() + seconds
    while (left := tasks_of_uid(uid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left
