"""The claim of one server on a SQLite database: an OS lock on a file beside it.

A SQLite file serves one core: its runs, leases and in-memory event logs assume no other
process executes runs on it (PostgreSQL is how several cores share state). A second server
started on the same file used to start silently and then fight the first over runs; now it
is refused at once, naming the file.

An OS lock (`oslock`) rather than a PID file: the kernel drops it when the process ends
however it ends (a SIGKILL, a power cut), so a crashed server never leaves a stale claim
that an operator must clean up. The lock file itself stays (removing it would let two
processes each lock a different file under the same name); it holds the holder's PID, only
so that the refusal can say who holds the database.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from pathlib import Path

from compat_core.store.oslock import try_lock

LOCK_SUFFIX = ".lock"


class DatabaseInUse(Exception):
    """Another process serves this SQLite database; nothing was opened."""

    def __init__(self, database: Path, holder: str) -> None:
        held_by = f"another server (process {holder})" if holder else "another server"
        super().__init__(
            f"the SQLite database {database} is in use by {held_by}: a SQLite database serves "
            "one server at a time. Stop that server first, or use PostgreSQL to run several "
            f"cores on one database (lock file: {database}{LOCK_SUFFIX})."
        )
        self.database = database


class DatabaseLock:
    """An exclusive claim on `database`, held from `acquire()` until `release()`.

    The lock belongs to an open file description, so it is released when this object is
    released, closed or garbage collected, and by the kernel when the process ends.
    """

    def __init__(self, database: Path) -> None:
        self.database = database.resolve()
        self.path = self.database.with_name(self.database.name + LOCK_SUFFIX)
        self._fd: int | None = None
        self._finalizer: weakref.finalize[[int], DatabaseLock] | None = None

    def acquire(self) -> None:
        """Take the lock now, or raise DatabaseInUse if another process (or another open
        database in this one) holds it."""
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            locked = try_lock(fd)
        except BaseException:
            os.close(fd)
            raise
        if not locked:
            holder = _read_holder(fd)
            os.close(fd)
            raise DatabaseInUse(self.database, holder)
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        # A server whose start failed half-way may never be closed: its lock must still go
        # with it, not stay until the process ends.
        self._finalizer = weakref.finalize(self, os.close, fd)

    def release(self) -> None:
        """Give the claim up (idempotent)."""
        finalizer, self._finalizer, self._fd = self._finalizer, None, None
        if finalizer is not None:
            finalizer()

    @property
    def held(self) -> bool:
        return self._fd is not None


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 32).decode("ascii", "replace").strip()
    except OSError:
        return ""  # Windows: the holder's lock covers what it wrote
