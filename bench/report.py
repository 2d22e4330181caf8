"""Rows of the results table, the machine/commit header, and markdown rendering.

A row holds numbers as text already formatted by its section (each knows its units), plus
whether its target is met: `True`, `False`, or `None` when the row carries no target.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import math
import os
import platform
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

PACKAGES = ("aiohttp", "grpcio", "protobuf", "uvloop", "orjson", "openai", "SQLAlchemy")


@dataclass(frozen=True)
class Row:
    """One figure beside its baseline."""

    section: str
    measure: str
    ours: str
    baseline: str
    ratio: str = "—"
    target: str = "—"
    met: bool | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def ratio(ours: float, baseline: float, digits: int = 2) -> str:
    """`ours / baseline` as `0.62x`, or `—` when it is undefined."""
    if not baseline or math.isnan(ours) or math.isnan(baseline):
        return "—"
    return f"{ours / baseline:.{digits}f}x"


def ms(seconds: float) -> str:
    return "—" if math.isnan(seconds) else f"{seconds * 1000.0:.2f} ms"


def mib(size: float) -> str:
    return f"{size / (1024 * 1024):,.0f} MiB"


def _met(met: bool | None) -> str:
    if met is None:
        return "—"
    return "yes" if met else "**no**"


def markdown_table(rows: Iterable[Row]) -> str:
    header = "| section | measure | ours | baseline | ratio | target | met |"
    lines = [header, "|---|---|---:|---:|---:|---|:-:|"]
    for row in rows:
        cells = (row.section, row.measure, row.ours, row.baseline, row.ratio, row.target)
        escaped = [cell.replace("|", "\\|") for cell in cells]
        lines.append("| " + " | ".join([*escaped, _met(row.met)]) + " |")
    return "\n".join(lines)


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=Path(__file__).resolve().parent.parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / (1024 * 1024):.1f} GiB RAM"
    except OSError:
        pass
    return "unknown RAM"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def header(mode: str, sections: Sequence[str]) -> str:
    """Where and on what the figures were measured."""
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    if _git("status", "--porcelain", "--untracked-files=no"):
        commit += " (with uncommitted changes)"
    subject = _git("log", "-1", "--format=%s")
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    packages = ", ".join(f"{name} {_version(name)}" for name in PACKAGES)
    return "\n".join(
        [
            f"# assistants-compat benchmark ({mode})",
            "",
            f"- commit: {commit} — {subject}",
            f"- machine: {_cpu_model()}, {os.cpu_count()} cores, {_memory()}, "
            f"{platform.system()} {platform.release()}",
            f"- python {platform.python_version()}; {packages}",
            f"- {now}; load average before the run: {load}",
            f"- sections: {', '.join(sections)}",
        ]
    )
