"""The host's side of a session's `/mnt/data`: placing the thread's files in it and finding the
files the code wrote.

That directory is the sandbox's to write: anything in it may have been put there to make the
server (often root) read or overwrite one of the host's files: a symbolic link to
`/etc/shadow` named like an output, a directory link, a FIFO that blocks whoever opens it, a
tree of a million files. So every path is opened one component at a time relative to the
directory, never following a link (`O_NOFOLLOW`), only regular files are read, files are
streamed rather than held whole, and a scan looks at a bounded number of entries.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

MAX_DEPTH: Final = 4
"""How deep below /mnt/data written files are looked for."""
MAX_ENTRIES: Final = 2000
"""How many directory entries a scan looks at, at most: a tree of a million empty files costs
the host no more than this."""
CHUNK: Final = 1 << 20

_UNSAFE: Final = re.compile(r"[\x00-\x1f/\\]")


@dataclass(frozen=True, slots=True)
class Seen:
    """A regular file as a scan found it: what tells a rewritten file from an untouched one."""

    inode: int
    size: int
    mtime_ns: int


def input_name(filename: str, file_id: str, taken: set[str]) -> str:
    """The name a thread's file gets under /mnt/data: its own, made safe, unless another file
    took it (then prefixed with its ID, so both are there)."""
    name = _UNSAFE.sub("_", filename).strip()
    if name.startswith(".") or not name:
        # A hidden name would not be seen by a scan, and `..` is no name at all.
        rest = name.lstrip(".")
        name = f"{file_id}-{rest}" if rest else file_id
    if name in taken:
        name = f"{file_id}-{name}"
    taken.add(name)
    return name


async def place(data_dir: Path, name: str, chunks: AsyncIterator[bytes]) -> None:
    """Write `chunks` as `data_dir/name` (a name directly in it), replacing whatever is there
    (a link is replaced, not followed), owned by the directory's owner so the session can
    change it."""
    fd = await asyncio.to_thread(_create, data_dir, name)
    try:
        async for chunk in chunks:
            await asyncio.to_thread(os.write, fd, chunk)
    finally:
        os.close(fd)


def _create(data_dir: Path, name: str) -> int:
    if len(_parts(name)) != 1:
        raise OSError(f"inputs go directly in /mnt/data, not in a subdirectory: {name!r}")
    root = os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        owner = os.fstat(root)
        try:
            os.unlink(name, dir_fd=root)
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            raise FileExistsError(f"/mnt/data/{name} is a directory") from None
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=root)
        if os.geteuid() == 0:
            os.fchown(fd, owner.st_uid, owner.st_gid)
        return fd
    finally:
        os.close(root)


def scan(data_dir: Path) -> dict[str, Seen]:
    """The regular files under `data_dir` (paths relative to it), not hidden, not below
    `MAX_DEPTH`, at most `MAX_ENTRIES` entries looked at."""
    found: dict[str, Seen] = {}
    budget = [MAX_ENTRIES]
    root = os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for path, seen in _walk(root, "", 0, budget):
            found[path] = seen
    finally:
        os.close(root)
    return found


def _walk(directory: int, prefix: str, depth: int, budget: list[int]) -> Iterator[tuple[str, Seen]]:
    with os.scandir(directory) as entries:
        names = []
        for entry in entries:
            if budget[0] <= 0:
                break
            budget[0] -= 1
            if not entry.name.startswith("."):
                names.append(entry.name)
    for name in sorted(names):
        try:
            info = os.stat(name, dir_fd=directory, follow_symlinks=False)
        except OSError:
            continue  # gone since it was listed
        if stat.S_ISREG(info.st_mode):
            yield prefix + name, Seen(info.st_ino, info.st_size, info.st_mtime_ns)
        elif stat.S_ISDIR(info.st_mode) and depth + 1 < MAX_DEPTH:
            try:
                inner = os.open(
                    name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=directory
                )
            except OSError:
                continue
            try:
                yield from _walk(inner, f"{prefix}{name}/", depth + 1, budget)
            finally:
                os.close(inner)


def written(before: dict[str, Seen], after: dict[str, Seen]) -> list[str]:
    """The files of `after` that are new or changed since `before`."""
    return [path for path, seen in after.items() if before.get(path) != seen]


async def read(data_dir: Path, path: str, max_bytes: int) -> AsyncIterator[bytes]:
    """The bytes of the regular file `path` under `data_dir`, never through a link; raises
    OSError when it is not such a file any more, or when it is longer than `max_bytes`."""
    fd = await asyncio.to_thread(_open_regular, data_dir, path)
    try:
        total = 0
        while chunk := await asyncio.to_thread(os.read, fd, CHUNK):
            total += len(chunk)
            if total > max_bytes:
                raise OSError(f"/mnt/data/{path} is larger than {max_bytes} bytes")
            yield chunk
    finally:
        os.close(fd)


def _parts(path: str) -> list[str]:
    """The components of a path relative to /mnt/data; OSError for any other path."""
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise OSError(f"not a relative path inside /mnt/data: {path!r}")
    return parts


def _open_regular(data_dir: Path, path: str) -> int:
    parts = _parts(path)
    directory = os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for part in parts[:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=directory)
            os.close(directory)
            directory = inner
        # O_NONBLOCK: a FIFO put in a file's place opens at once instead of hanging the host.
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=directory)
    finally:
        os.close(directory)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"/mnt/data/{path} is not a regular file")
    os.set_blocking(fd, True)
    return fd
