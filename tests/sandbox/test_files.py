"""The host moves files in and out of /mnt/data without following what a session planted
there: links to host files, linked directories, FIFOs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from compat_core.sandbox.base import MNT_DATA
from compat_core.sandbox.files import UnsafeFile, list_files, read_file, write_file

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
    files = list_files(session.data_dir)
    assert [f.name for f in files] == ["out/deeper/plot.txt", "report.csv"]
    assert files[1].size == len("a,b\n1,2\n")
    assert read_file(session.data_dir, "report.csv") == b"a,b\n1,2\n"
    assert read_file(session.data_dir, "out/deeper/plot.txt") == b"p"
    for planted in ("evil.txt", "evil-dir/host-secret.txt", "blocking", "out", "../x", "/etc/x"):
        with pytest.raises(UnsafeFile):
            read_file(session.data_dir, planted)
    with pytest.raises(UnsafeFile, match="larger"):
        read_file(session.data_dir, "report.csv", max_bytes=3)


async def test_inputs_replace_links_instead_of_following_them(
    open_session: OpenSession, data_root: Path
) -> None:
    target = data_root / "host-file.txt"
    target.write_text("unchanged")
    session = await open_session()
    await session.execute(f"import os\nos.symlink({str(target)!r}, '{MNT_DATA}/input.csv')")
    write_file(session.data_dir, "input.csv", b"x,y\n")
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
        with pytest.raises(UnsafeFile):
            write_file(session.data_dir, bad, b"")
