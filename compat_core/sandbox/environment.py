"""The Python a sandboxed kernel runs: an interpreter and its libraries, both in one directory
(`.sandbox/` of the checkout by default) that the sandbox mounts read-only.

The interpreter is a copy of the server's own (its standard library without tests or
site-packages), not a mount of where it lives: that is often under a home directory
(`/root/.pyenv/...`), which a session must not see and which a session's own unprivileged
host uid could not even reach. The libraries (`sandbox/requirements.txt`, pinned) are
installed beside it with `pip install --target`, by the same Python version, so their compiled
extensions match the copy.

`python -m compat_core.sandbox.environment [DIR]` builds it (what `make sandbox-env` runs);
rebuilding is skipped when the stamp says the same interpreter and requirements made it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from compat_core.sandbox.base import SandboxUnavailable

CHECKOUT: Final = Path(__file__).resolve().parents[2]
DEFAULT_DIR: Final = CHECKOUT / ".sandbox"
REQUIREMENTS: Final = CHECKOUT / "sandbox" / "requirements.txt"
# Parts of the standard library a kernel never needs; the tests alone are most of its size.
_STDLIB_SKIPPED: Final = frozenset(
    {"test", "site-packages", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3"}
)


@dataclass(frozen=True, slots=True)
class Environment:
    """A built environment: `python/` (the interpreter's prefix), `site/` (the libraries)."""

    root: Path

    @property
    def python_home(self) -> Path:
        return self.root / "python"

    @property
    def site(self) -> Path:
        return self.root / "site"

    @property
    def stamp(self) -> Path:
        return self.root / "stamp.json"

    def version(self) -> str:
        """`major.minor` of the interpreter it holds; `SandboxUnavailable` if it is not built."""
        try:
            made = json.loads(self.stamp.read_text())
            version = str(made["python"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SandboxUnavailable(
                f"the sandbox's Python environment is not installed at {self.root} "
                "(run `make sandbox-env`)"
            ) from exc
        if not (self.python_home / "bin" / f"python{version}").is_file():
            raise SandboxUnavailable(
                f"the sandbox's Python environment at {self.root} is incomplete "
                "(run `make sandbox-env`)"
            )
        return version

    @property
    def interpreter(self) -> str:
        """The interpreter's file name (`python3.11`)."""
        return f"python{self.version()}"


def _requirements_digest(requirements: Path) -> str:
    return hashlib.sha256(requirements.read_bytes()).hexdigest()


def _wanted_stamp(requirements: Path) -> dict[str, str]:
    return {
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "python_build": sys.version,
        "requirements_sha256": _requirements_digest(requirements),
    }


def is_current(root: Path, requirements: Path = REQUIREMENTS) -> bool:
    """Whether `root` holds the environment this interpreter and `requirements` would build."""
    try:
        made = json.loads((root / "stamp.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(made == _wanted_stamp(requirements))


def _copy_interpreter(target: Path) -> None:
    """The running interpreter's binary, shared library and standard library into `target`,
    laid out as a prefix, so the binary finds its standard library relative to itself."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    prefix = Path(sys.base_prefix)
    (target / "bin").mkdir(parents=True)
    (target / "lib").mkdir()
    # A venv's python is a link to its base interpreter, which `_base_executable` names.
    binary = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    shutil.copy2(binary, target / "bin" / f"python{version}")
    library = sysconfig.get_config_var("INSTSONAME") or ""
    libdir = Path(sysconfig.get_config_var("LIBDIR") or prefix / "lib")
    if library.endswith(".so") or ".so." in library:
        for found in libdir.glob(f"libpython{version}*.so*"):
            shutil.copy2(found, target / "lib" / found.name, follow_symlinks=True)

    def skipped(directory: str, names: list[str]) -> set[str]:
        if Path(directory) == stdlib:
            return {n for n in names if n in _STDLIB_SKIPPED or n.startswith("config-")}
        return set()

    stdlib = Path(sysconfig.get_paths(vars={"installed_base": str(prefix)})["stdlib"])
    shutil.copytree(stdlib, target / "lib" / f"python{version}", symlinks=True, ignore=skipped)


def _readable_by_all(root: Path) -> None:
    """A session runs as its own unprivileged host uid when the server is root: everything
    here must be readable (and directories enterable) by any uid."""
    for directory, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(directory) / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                continue
            extra = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
            if stat.S_ISDIR(mode) or mode & stat.S_IXUSR:
                extra |= stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
            path.chmod(stat.S_IMODE(mode) | extra)
    root.chmod(0o755)


def build(root: Path = DEFAULT_DIR, requirements: Path = REQUIREMENTS) -> bool:
    """Build the environment at `root` unless it is current; whether it built one."""
    if is_current(root, requirements):
        return False
    staging = root.with_name(root.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    _copy_interpreter(staging / "python")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-warn-script-location",
            "--target",
            str(staging / "site"),
            "-r",
            str(requirements),
        ],
        check=True,
    )
    (staging / "stamp.json").write_text(json.dumps(_wanted_stamp(requirements)) + "\n")
    _readable_by_all(staging)
    shutil.rmtree(root, ignore_errors=True)
    staging.rename(root)
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m compat_core.sandbox.environment",
        description="Build the Python environment code_interpreter's sandbox mounts.",
    )
    parser.add_argument("root", nargs="?", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--requirements", type=Path, default=REQUIREMENTS)
    args = parser.parse_args(argv)
    built = build(args.root, args.requirements)
    print(f"sandbox environment {'built' if built else 'up to date'}: {args.root}")


if __name__ == "__main__":
    main()
