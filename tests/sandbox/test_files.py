"""The host moves files in and out of /mnt/data without following what a session planted
there: links to host files, linked directories, FIFOs."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from compat_core.sandbox.base import MNT_DATA
from compat_core.sandbox.files import place, read, scan

from .conftest import OpenSession


async def test_outputs_are_regular_files_only(open_session: OpenSession, data_root: Path) -> None:
    secret = data_root / "host-secret.txt"
    secret.write_text("host only")
    session = await open_session()
    result = await session.execute(
        "import os\n"
        f"os.makedirs('{MNT_DATA}/out/deeper')\n"
        f"open('{MNT_DATA}/report.csv', 'w').write('a,b\\n1,2\\n')\n"
        f"open('{MNT_DATA}/out/deeper/plot.txt', 'w').write('p')\n"
        # Links to where host files are (on the host's side of the bind mount).
        f"os.symlink({str(secret)!r}, '{MNT_DATA}/evil.txt')\n"
        f"os.symlink({str(data_root)!r}, '{MNT_DATA}/evil-dir')\n"
        f"os.mkfifo('{MNT_DATA}/blocking')\n"
        "print('planted')\n"
    )
    assert result.logs == "planted\n"
    files = scan(session.data_dir)
    assert sorted(files) == ["out/deeper/plot.txt", "report.csv"]
    assert files["report.csv"].size == len("a,b\n1,2\n")
    assert await read_all(session.data_dir, "report.csv") == b"a,b\n1,2\n"
    assert await read_all(session.data_dir, "out/deeper/plot.txt") == b"p"
    for planted in ("evil.txt", "evil-dir/host-secret.txt", "blocking", "out", "../x", "/etc/x"):
        with pytest.raises(OSError):  # noqa: PT011 - each planted path fails its own way
            await read_all(session.data_dir, planted)
    with pytest.raises(OSError, match="larger"):
        await read_all(session.data_dir, "report.csv", max_bytes=3)


async def test_inputs_replace_links_instead_of_following_them(
    open_session: OpenSession, data_root: Path
) -> None:
    target = data_root / "host-file.txt"
    target.write_text("unchanged")
    session = await open_session()
    await session.execute(f"import os\nos.symlink({str(target)!r}, '{MNT_DATA}/input.csv')")
    await place(session.data_dir, "input.csv", chunks(b"x,y\n"))
    assert target.read_text() == "unchanged"
    assert not (session.data_dir / "input.csv").is_symlink()
    if os.geteuid() == 0:
        assert (session.data_dir / "input.csv").stat().st_uid == session.data_dir.stat().st_uid
    result = await session.execute(
        f"text = open('{MNT_DATA}/input.csv').read()\n"
        f"open('{MNT_DATA}/input.csv', 'a').write('1,2\\n')\nprint(repr(text))"
    )
    assert result.logs == "'x,y\\n'\n"
    for bad in ("sub/x.csv", "..", "", "/abs"):
        with pytest.raises(OSError):  # noqa: PT011 - each bad name fails its own way
            await place(session.data_dir, bad, chunks(b""))


async def read_all(data_dir: Path, name: str, max_bytes: int = 1 << 20) -> bytes:
    return b"".join([chunk async for chunk in read(data_dir, name, max_bytes)])


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data
