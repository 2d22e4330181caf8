"""Sessions by key (the engine uses the thread's ID): one interpreter per thread, kept while
it is used, ended when idle, bounded in number.

A key's files live in `root/<key>` (its `/mnt/data`) and outlive its interpreter: when the
session dies, is evicted to make room, or the server restarts, the next call on the key gets
a fresh interpreter on the same files. Only expiry (idle past `idle_seconds`) and `drop(key,
remove_files=True)` delete them. Calls on one key run one at a time, in the order they came.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from compat_core.sandbox.base import Execution, Limits, Sandbox, SandboxUnavailable, Session

DEFAULT_IDLE_SECONDS: Final = 3600.0
DEFAULT_MAX_SESSIONS: Final = 32
_KEY: Final = re.compile(r"[A-Za-z0-9_-]{1,128}")


@dataclass(slots=True)
class Lease:
    """A key's session, held for one caller until the `lease` block ends."""

    session: Session
    # The interpreter is new: whatever state earlier calls on this key left is gone (never
    # had one, expired, evicted, or died); the files under /mnt/data are still there.
    fresh: bool

    @property
    def data_dir(self) -> Path:
        return self.session.data_dir


@dataclass(slots=True)
class _Entry:
    data_dir: Path
    last_used: float
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    session: Session | None = None


class SessionPool:
    """Sessions of `sandbox` by key, each with `limits`, their data under `root`."""

    def __init__(
        self,
        sandbox: Sandbox,
        root: Path,
        limits: Limits | None = None,
        *,
        idle_seconds: float = DEFAULT_IDLE_SECONDS,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sandbox = sandbox
        self.root = root
        self.limits = limits or Limits()
        self.idle_seconds = idle_seconds
        self.max_sessions = max_sessions
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._closed = False
        root.mkdir(parents=True, exist_ok=True)
        # Sessions run as other uids when the server is root: they must pass through.
        root.chmod(0o711)
        # Data left by an earlier run of the server: kept, and expired by its age.
        for found in root.iterdir():
            if found.is_dir() and _KEY.fullmatch(found.name):
                self._entries[found.name] = _Entry(found, found.stat().st_mtime)

    def data_dir(self, key: str) -> Path:
        """Where `key`'s files are (its `/mnt/data`)."""
        if not _KEY.fullmatch(key):
            raise ValueError(f"a session key is 1 to 128 letters, digits, _ or -: {key!r}")
        return self.root / key

    @property
    def live(self) -> int:
        """How many interpreters run now."""
        return sum(1 for e in self._entries.values() if e.session is not None and e.session.alive)

    @contextlib.asynccontextmanager
    async def lease(self, key: str) -> AsyncIterator[Lease]:
        """`key`'s session, started if need be, for this caller alone until the block ends
        (copy files in, execute, read files out)."""
        async with self._locked_entry(key) as entry:
            try:
                fresh = entry.session is None or not entry.session.alive
                if fresh:
                    await self._close_session(entry)
                    await self._make_room()
                    entry.data_dir.mkdir(exist_ok=True)
                    entry.session = await self.sandbox.open(entry.data_dir, self.limits)
                assert entry.session is not None
                yield Lease(entry.session, fresh)
            finally:
                entry.last_used = self._clock()

    @contextlib.asynccontextmanager
    async def _locked_entry(self, key: str) -> AsyncIterator[_Entry]:
        """`key`'s entry, locked; made if need be. An entry that expired while this waited
        for its lock is no longer the key's: wait on the key's new one."""
        while True:
            if self._closed:
                raise SandboxUnavailable("the sandbox's session pool is closed")
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry(self.data_dir(key), self._clock())
            async with entry.lock:
                if self._entries.get(key) is entry:
                    yield entry
                    return

    async def execute(self, key: str, code: str) -> Execution:
        """Run `code` in `key`'s session (see `lease` to do more in between)."""
        async with self.lease(key) as lease:
            return await lease.session.execute(code)

    async def _make_room(self) -> None:
        """Close the least recently used idle sessions until one more may start."""
        while self.live >= self.max_sessions:
            idle = [
                e
                for e in self._entries.values()
                if e.session is not None and e.session.alive and not e.lock.locked()
            ]
            if not idle:
                raise SandboxUnavailable(
                    f"all {self.max_sessions} code_interpreter sessions are busy; try again"
                )
            oldest = min(idle, key=lambda e: e.last_used)
            await self._close_session(oldest)

    @staticmethod
    async def _close_session(entry: _Entry) -> None:
        session, entry.session = entry.session, None
        if session is not None:
            await session.close()

    async def sweep(self) -> list[str]:
        """End the sessions idle longer than `idle_seconds` and delete their files (also
        those of keys left from an earlier run); the keys it expired. The core calls this
        periodically. A key in use is not idle, and one whose call comes while it expires
        waits, then finds a fresh session."""
        expired = []
        for key, entry in list(self._entries.items()):
            if entry.lock.locked() or self._clock() - entry.last_used <= self.idle_seconds:
                continue
            async with entry.lock:
                if self._entries.get(key) is not entry:
                    continue
                if self._clock() - entry.last_used <= self.idle_seconds:
                    continue
                del self._entries[key]
                await self._close_session(entry)
                await asyncio.to_thread(shutil.rmtree, entry.data_dir, True)
                expired.append(key)
        return expired

    async def drop(self, key: str, *, remove_files: bool = False) -> None:
        """End `key`'s session now (a call running in it is cut off and reports the session
        lost). With `remove_files` (the thread is gone) its files go too, once no call holds
        the key."""
        entry = self._entries.get(key)
        if entry is None:
            return
        await self._close_session(entry)
        if remove_files:
            async with entry.lock:
                if self._entries.get(key) is entry:
                    del self._entries[key]
                await self._close_session(entry)
                await asyncio.to_thread(shutil.rmtree, entry.data_dir, True)

    async def close(self) -> None:
        """End every session (shutdown); the files stay for the next run."""
        self._closed = True
        await asyncio.gather(*(self._close_session(e) for e in self._entries.values()))
