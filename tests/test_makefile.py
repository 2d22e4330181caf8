"""The Makefile's venv check: `make run` and `make test` with a `.venv` that another or a
missing Python made rebuild it, and a Python older than 3.11 gets one clear line.

Each test runs `make venv-check` (what `make venv` runs first) on a copy of the Makefile in a
directory of its own, so the repository's `.venv` is never touched and nothing is installed.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60.0
# The interpreter behind the suite's own .venv: the one `make` would make .venv with.
THIS_PYTHON = os.path.realpath(sys.executable)


def _older_python() -> str | None:
    """A Python 3 older than 3.11 on this machine that runs (not, say, a pyenv shim of a
    version that is not selected), if there is one."""
    candidates = [shutil.which(f"python3.{minor}") for minor in range(10, 5, -1)]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3")))
    for path in candidates:
        if path is None:
            continue
        older = subprocess.run(
            [path, "-c", "import sys; sys.exit(sys.version_info >= (3, 11))"],
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
        if older.returncode == 0:
            return path
    return None


OLDER_PYTHON = _older_python()
needs_older_python = pytest.mark.skipif(OLDER_PYTHON is None, reason="no Python < 3.11 here")


_MAKE_NESTING = frozenset({"MAKELEVEL", "MAKEFLAGS", "MFLAGS"})


def make(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    shutil.copy(ROOT / "Makefile", directory / "Makefile")
    return subprocess.run(
        ["make", "--no-print-directory", "venv-check", *args],
        cwd=directory,
        # As a user's shell would run it: under `make test` the nesting would show in its
        # messages (`make[1]: …`).
        env={k: v for k, v in os.environ.items() if k not in _MAKE_NESTING},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def test_a_venv_whose_python_is_gone_is_removed_to_be_rebuilt(tmp_path: Path) -> None:
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to("/nonexistent/python3.11")
    done = make(tmp_path, f"PYTHON={THIS_PYTHON}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"make: .venv was made by a Python that no longer runs, not by {THIS_PYTHON} "
        f"({THIS_PYTHON} {'.'.join(map(str, sys.version_info[:3]))}): rebuilding it"
    ]
    assert not (tmp_path / ".venv").exists()


def test_a_venv_of_this_python_is_kept(tmp_path: Path) -> None:
    subprocess.run(
        [THIS_PYTHON, "-m", "venv", "--without-pip", str(tmp_path / ".venv")],
        check=True,
        timeout=TIMEOUT,
    )
    done = make(tmp_path, f"PYTHON={THIS_PYTHON}")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert (tmp_path / ".venv" / "bin" / "python").exists()


@needs_older_python
def test_a_venv_of_an_older_python_is_removed_to_be_rebuilt(tmp_path: Path) -> None:
    assert OLDER_PYTHON is not None
    subprocess.run(
        [OLDER_PYTHON, "-m", "venv", "--without-pip", str(tmp_path / ".venv")],
        check=True,
        timeout=TIMEOUT,
    )
    done = make(tmp_path, f"PYTHON={THIS_PYTHON}")
    assert done.returncode == 0, done.stderr
    assert "make: .venv was made by " in done.stdout
    assert f"{os.path.realpath(OLDER_PYTHON)} 3." in done.stdout
    assert not (tmp_path / ".venv").exists()


@needs_older_python
def test_a_python_older_than_3_11_gets_one_line(tmp_path: Path) -> None:
    done = make(tmp_path, f"PYTHON={OLDER_PYTHON}")
    assert done.returncode != 0
    said = [line for line in done.stderr.splitlines() if not line.startswith("make: ***")]
    assert len(said) == 1, done.stderr
    assert said[0].startswith(f"make: {OLDER_PYTHON} is Python 3.")
    assert "needs 3.11 or newer" in said[0]
    assert not (tmp_path / ".venv").exists()


def test_a_missing_python_gets_one_line(tmp_path: Path) -> None:
    done = make(tmp_path, "PYTHON=no-such-python3")
    assert done.returncode != 0
    said = [line for line in done.stderr.splitlines() if not line.startswith("make: ***")]
    assert said == [
        "make: no-such-python3 not found; assistants-compat needs Python 3.11 or newer "
        "(make PYTHON=/path/to/python3.11)"
    ]
