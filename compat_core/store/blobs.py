"""File bytes, kept as plain files in one directory beside the database.

Uploads can be far larger than memory should hold, so bytes stream through in chunks, and
file I/O runs on worker threads so the event loop never waits for a disk. A blob appears
under its name only once complete and on disk (temporary file, fsync, atomic rename), so a
reader never sees half a file and a crash never leaves one behind under a real name.

What a crash does leave is the temporary file of an upload it interrupted, and `sweep()`
removes those. Several cores may share one directory (PostgreSQL deployments on a shared
volume), so the sweeper must tell a dead upload's file from a live one's on another core:
each upload holds an exclusive OS lock (`oslock`: `flock` on POSIX) on its temporary file
from creation to rename, and the sweeper removes only files whose lock it can take. The
kernel drops a lock when its process dies, however it dies, so no clock is involved: an
upload stalled for an hour is safe, and an orphan goes on the first sweep after the crash.
(Linux NFS clients carry `flock` to the server as a whole-file lock, so this holds across
machines there too.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from compat_core.store.oslock import try_lock

# Blob IDs become file names: letters, digits, `-` and `_` cannot climb out of the directory
# or name a hidden or temporary file.
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
# What `_Sink` names its temporary files: `.{blob ID}.{mkstemp's random part}.tmp`.
_TEMPORARY = re.compile(r"\.[A-Za-z0-9_-]{1,128}\.[A-Za-z0-9_]+\.tmp")
# A temporary file a sweeper removed between its creation and its lock is made again.
_CREATE_ATTEMPTS = 5
# POSIX renames a file that is open; Windows cannot, so there it is closed (and unlocked)
# first, and a sweep in between could remove it: the upload then fails rather than lose data.
_RENAME_OPEN = os.name == "posix"
# Not to follow a link that sits where a temporary file was (POSIX only).
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)


class BlobTooLarge(Exception):
    """The bytes offered exceed the limit; nothing was stored."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"blob exceeds the limit of {max_bytes} bytes")
        self.max_bytes = max_bytes


class BlobStore:
    """Blobs as files named by their IDs in `root` (created when first needed)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, blob_id: str) -> Path:
        if not _SAFE_ID.fullmatch(blob_id):
            raise ValueError(f"blob ID {blob_id!r} is not a safe file name")
        return self.root / blob_id

    async def write(self, blob_id: str, chunks: AsyncIterator[bytes], max_bytes: int) -> int:
        """Store `chunks` as `blob_id` and return the byte count.

        Raises BlobTooLarge as soon as more than `max_bytes` arrive. On that or any other
        error, or cancellation, nothing is left behind and the error propagates.
        """
        final = self._path(blob_id)
        sink = _Sink(self.root, blob_id)
        total = 0
        try:
            await asyncio.to_thread(sink.open)
            async for chunk in chunks:
                total += len(chunk)
                if total > max_bytes:
                    raise BlobTooLarge(max_bytes)
                if chunk:
                    await asyncio.to_thread(sink.write, chunk)
            await asyncio.to_thread(sink.commit, final)
        except BaseException:
            # Shielded so that a second cancellation cannot skip the cleanup. It runs on a
            # thread, after any sink operation still in flight there (see `_Sink`).
            await asyncio.shield(asyncio.to_thread(sink.discard))
            raise
        return total

    async def read(self, blob_id: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """Yield the blob's bytes in chunks of at most `chunk_size`.

        Raises FileNotFoundError when iteration starts if there is no such blob.
        """
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        path = self._path(blob_id)
        file = await asyncio.to_thread(path.open, "rb")
        try:
            while chunk := await asyncio.to_thread(file.read, chunk_size):
                yield chunk
        finally:
            file.close()

    @contextlib.asynccontextmanager
    async def open(self, blob_id: str) -> AsyncIterator[BinaryIO]:
        """The blob as a readable, seekable binary file, closed when the block ends: for a
        reader that seeks (a PDF parser) or reads at its own pace, so that a large blob is never
        held whole. Its methods block, so it is read on a worker thread.

        Raises FileNotFoundError if there is no such blob.
        """
        path = self._path(blob_id)
        file = await asyncio.to_thread(path.open, "rb")
        try:
            yield file
        finally:
            file.close()

    async def delete(self, blob_id: str) -> None:
        """Remove the blob; removing one that does not exist is not an error."""
        path = self._path(blob_id)
        await asyncio.to_thread(path.unlink, missing_ok=True)

    async def sweep(self) -> int:
        """Remove the temporary files of uploads that no live process is writing (left by
        one that crashed); the number removed."""
        return await asyncio.to_thread(self._sweep)

    def _sweep(self) -> int:
        try:
            with os.scandir(self.root) as entries:
                names = [entry.name for entry in entries if _TEMPORARY.fullmatch(entry.name)]
        except FileNotFoundError:
            return 0  # nothing was ever uploaded
        return sum(_remove_if_abandoned(self.root / name) for name in names)


class _Sink:
    """A temporary file that becomes a blob on `commit` or disappears on `discard`.

    Its methods run on worker threads. A task that gives up (cancelled, say) does not stop the
    operation it was awaiting, so the lock makes `discard` wait for that one to finish, and
    once discarded every later operation does nothing: whatever the order in which the threads
    get to them, no file is left behind.
    """

    def __init__(self, root: Path, blob_id: str) -> None:
        self._root = root
        self._blob_id = blob_id
        self._lock = threading.Lock()
        self._discarded = False
        self._temp: Path | None = None
        self._file: BinaryIO | None = None
        self._final: Path | None = None

    def open(self) -> None:
        with self._lock:
            if self._discarded:
                return
            self._root.mkdir(parents=True, exist_ok=True)
            for _ in range(_CREATE_ATTEMPTS):
                # The leading dot and the suffix keep temporary names apart from every ID.
                fd, name = tempfile.mkstemp(
                    dir=self._root, prefix=f".{self._blob_id}.", suffix=".tmp"
                )
                if _claim(fd, Path(name)):
                    self._temp = Path(name)
                    self._file = os.fdopen(fd, "wb")
                    return
                os.close(fd)
            raise OSError(f"could not create a temporary file in {self._root}")

    def write(self, data: bytes) -> None:
        with self._lock:
            if self._file is not None and not self._discarded:
                self._file.write(data)

    def commit(self, final: Path) -> None:
        with self._lock:
            if self._file is None or self._temp is None or self._discarded:
                return
            self._file.flush()
            os.fsync(self._file.fileno())
            # Renamed before the file (and its lock) is closed: a sweeper never sees a
            # temporary file that is complete but unlocked.
            if not _RENAME_OPEN:
                self._file.close()
            os.replace(self._temp, final)
            self._final = final
            self._file.close()
            _fsync_directory(final.parent)

    def discard(self) -> None:
        with self._lock:
            self._discarded = True
            if self._file is not None:
                with contextlib.suppress(OSError):
                    self._file.close()
            if self._temp is not None:
                self._temp.unlink(missing_ok=True)
            # The task failed after the rename (cancelled while it ran): its caller is told the
            # blob was not stored, so it must not be.
            if self._final is not None:
                self._final.unlink(missing_ok=True)


def _claim(fd: int, path: Path) -> bool:
    """Lock a new temporary file for its upload: False if a sweeper took it first.

    Creating a file and locking it are two steps, and a sweeper may come in between: it
    locks the file, counts it abandoned and removes its name. So once the lock is held, the
    name must still lead to this very file.
    """
    try:
        return try_lock(fd) and os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _remove_if_abandoned(path: Path) -> bool:
    """Remove a temporary file if no process holds its lock (its upload's process died)."""
    try:
        # Writable: an exclusive lock over NFS is a write lock, which needs it.
        fd = os.open(path, os.O_RDWR | _NO_FOLLOW)
    except OSError:
        return False  # gone already, or not a file we may touch
    try:
        if not try_lock(fd):
            return False  # an upload in progress
        if os.stat(path).st_ino != os.fstat(fd).st_ino:
            return False  # committed or removed meanwhile, its name reused
        path.unlink()
        return True
    except OSError:
        return False  # gone meanwhile (or, on Windows, still open elsewhere)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` survive a crash (POSIX; Windows cannot open directories)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
