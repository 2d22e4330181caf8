"""Files in and out of a session's `/mnt/data`, from the host.

That directory is the sandbox's to write: anything in it may have been put there to make the
server (often root) read or overwrite one of the host's files: a symbolic link to
`/etc/shadow` named like an output, a directory link, a FIFO that blocks whoever opens it.
So every step here goes through directory descriptors, never follows a link, and reads or
writes only regular files. The engine copies inputs in and collects outputs with these, and
never with plain paths.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final

DEFAULT_MAX_BYTES: Final = 512 * 1024**2
_DIRECTORY: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeFile(Exception):
    """The name is not a regular file inside the data directory (a link, a FIFO, a
    directory, outside it), or it is larger than asked for."""


@dataclass(frozen=True, slots=True)
class DataFile:
    """A regular file under /mnt/data: its path relative to it, size and modification time."""

    name: str
    size: int
    mtime_ns: int


def _parts(name: str) -> list[str]:
    parts = PurePosixPath(name).parts
    if not parts or parts[0] == "/" or any(part in (".", "..") for part in parts):
        raise UnsafeFile(f"not a relative path inside /mnt/data: {name!r}")
    return list(parts)


@contextlib.contextmanager
def _directory(data_dir: Path, parts: list[str]) -> Iterator[int]:
    """A descriptor of `data_dir/parts...`, each step refusing links."""
    fd = os.open(data_dir, _DIRECTORY)
    try:
        for part in parts:
            try:
                inner = os.open(part, _DIRECTORY, dir_fd=fd)
            except OSError as exc:
                raise UnsafeFile(f"{part!r} is not a directory inside /mnt/data") from exc
            os.close(fd)
            fd = inner
        yield fd
    finally:
        os.close(fd)


def list_files(data_dir: Path) -> list[DataFile]:
    """Every regular file under `data_dir`, in subdirectories too; links, FIFOs, sockets and
    devices are left out, and linked directories are not entered."""
    found: list[DataFile] = []
    for directory, _dirs, files, dir_fd in os.fwalk(data_dir, follow_symlinks=False):
        relative = os.path.relpath(directory, data_dir)
        for name in files:
            try:
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(info.st_mode):
                path = name if relative == "." else f"{relative}/{name}"
                found.append(DataFile(path, info.st_size, info.st_mtime_ns))
    return sorted(found, key=lambda f: f.name)


def read_file(data_dir: Path, name: str, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The contents of the regular file `name` (relative to `data_dir`)."""
    *parents, last = _parts(name)
    with _directory(data_dir, parents) as dir_fd:
        try:
            # O_NONBLOCK: opening a FIFO must not wait for a writer that never comes.
            fd = os.open(
                last, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
            )
        except OSError as exc:
            raise UnsafeFile(f"{name!r} cannot be read as a file inside /mnt/data") from exc
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > max_bytes:
            os.close(fd)
            if not stat.S_ISREG(info.st_mode):
                raise UnsafeFile(f"{name!r} is not a regular file")
            raise UnsafeFile(f"{name!r} is larger than {max_bytes} bytes")
        with os.fdopen(fd, "rb") as opened:
            data = opened.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UnsafeFile(f"{name!r} is larger than {max_bytes} bytes")
    return data


def write_file(data_dir: Path, name: str, data: bytes) -> None:
    """Put `data` at `name` (a file name directly in `data_dir`) as a new regular file owned
    like `data_dir` (the session's uid), replacing whatever had that name unless it is a
    directory."""
    parts = _parts(name)
    if len(parts) != 1:
        raise UnsafeFile(f"inputs go directly in /mnt/data, not in a subdirectory: {name!r}")
    (last,) = parts
    with _directory(data_dir, []) as dir_fd:
        owner = os.fstat(dir_fd)
        with contextlib.suppress(FileNotFoundError):
            try:
                os.unlink(last, dir_fd=dir_fd)
            except IsADirectoryError as exc:
                raise UnsafeFile(f"{name!r} is a directory in /mnt/data") from exc
        try:
            # O_EXCL: should something have put a link there since, this fails rather than
            # follows it.
            fd = os.open(
                last,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o644,
                dir_fd=dir_fd,
            )
        except FileExistsError as exc:
            raise UnsafeFile(f"{name!r} was re-created in /mnt/data while being replaced") from exc
        with os.fdopen(fd, "wb") as out:
            if os.geteuid() == 0:
                os.fchown(fd, owner.st_uid, owner.st_gid)
            out.write(data)
