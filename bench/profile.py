"""`python -m bench.profile FILE [--thread NAME] [--top N] [--under PREFIX]`: what py-spy saw.

Summarises the raw stacks that `python -m bench --profile DIR` collects: samples per thread,
then the functions with the most samples on top of the stack (self) and anywhere in it
(total), as percentages of the samples kept. `--thread MainThread` keeps the event loop's
thread only; `--under compat_core/` ranks only frames of files under that prefix (total),
to see what our own code costs whatever it calls.

Two attributions follow, since a self-time list of library internals does not say which of
our functions to change: "by package" charges each sample to the package of its innermost
frame (where the CPU goes: openai, grpc, aiohttp, sqlalchemy…), and "by our function"
charges it to the innermost frame in our code (`compat_core/`, `http_edge/`), library calls
included: what each of our functions costs, all in.
"""

from __future__ import annotations

import argparse
import collections
from collections.abc import Iterator
from pathlib import Path


def _stacks(path: Path) -> Iterator[tuple[str, list[str], int]]:
    """(thread, frames from the outermost, samples) of each line of py-spy's raw format."""
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        thread = frames[0] if frames[0].startswith("thread ") else ""
        yield thread, frames[1:] if thread else frames, int(count)


def _thread_name(thread: str) -> str:
    # "thread (1234): MainThread" → "MainThread"
    return thread.partition("): ")[2] or thread


OURS = ("compat_core/", "http_edge/")


def _file(frame: str) -> str:
    # "function (path/to/file.py:123)" → "path/to/file.py"
    return frame.rpartition("(")[2].rpartition(":")[0]


def _package(frame: str) -> str:
    path = _file(frame)
    if path.startswith("<"):
        return path
    head = path.split("/", 1)[0]
    return head.removesuffix(".py") if "/" in path or head.endswith(".py") else head


def _ours(frames: list[str]) -> str:
    for frame in reversed(frames):
        if _file(frame).startswith(OURS):
            return frame.rpartition(":")[0] + ")"
    return "(no frame of ours: loop, threads, libraries)"


def summarise(path: Path, thread: str | None, top: int, under: str | None) -> str:
    per_thread: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    ours: collections.Counter[str] = collections.Counter()
    kept = 0
    for name, frames, count in _stacks(path):
        per_thread[_thread_name(name)] += count
        if thread is not None and _thread_name(name) != thread:
            continue
        kept += count
        if frames:
            own[frames[-1]] += count
            packages[_package(frames[-1])] += count
        ours[_ours(frames)] += count
        for frame in set(frames):
            if under is None or f"({under}" in frame:
                total[frame] += count
    lines = [f"{path.name}: {sum(per_thread.values()):,} samples", "threads:"]
    lines += [f"  {count:8,}  {name}" for name, count in per_thread.most_common()]
    if not kept:
        return "\n".join([*lines, "no samples kept"])
    scope = f"thread {thread}" if thread else "all threads"
    lines.append(f"self ({scope}, {kept:,} samples):")
    lines += [f"  {100 * c / kept:5.1f}%  {frame}" for frame, c in own.most_common(top)]
    lines.append(f"total ({scope}{', frames under ' + under if under else ''}):")
    lines += [f"  {100 * c / kept:5.1f}%  {frame}" for frame, c in total.most_common(top)]
    lines.append("by package (innermost frame):")
    lines += [f"  {100 * c / kept:5.1f}%  {name}" for name, c in packages.most_common(top)]
    lines.append("by our function (innermost frame of ours, what it calls included):")
    lines += [f"  {100 * c / kept:5.1f}%  {name}" for name, c in ours.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--thread", help="keep one thread, by name (MainThread, …)")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--under", help="rank totals only for frames in files under this path")
    args = parser.parse_args()
    print(summarise(args.file, args.thread, args.top, args.under))


if __name__ == "__main__":
    main()
