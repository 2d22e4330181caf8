"""`python -m bench [--quick] [--only NAME …] [--database-url URL] [--json PATH] [--profile DIR]`.

Runs the sections in order, each with its own server processes, and prints a markdown table:
every figure beside a baseline measured in the same run, their ratio, the issue's target and
whether it is met. A section that fails is reported as a failed row (with the reason on
stderr) and the others still run. All child processes are stopped at the end, even on error
or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

from bench import (
    concurrency,
    event_log,
    resources,
    retrieval,
    sandbox,
    scale,
    startup,
    storage,
    streaming,
)
from bench.config import Config, Context
from bench.procs import kill_leftovers, raise_if_cancelled
from bench.report import Row, header, markdown_table

Section = Callable[[Context], Awaitable[list[Row]]]

SECTIONS: Final[dict[str, Section]] = {
    "resources": resources.run,
    "streaming": streaming.run,
    "concurrency": concurrency.run,
    "scale": scale.run,
    "startup": startup.run,
    "event_log": event_log.run,
    "retrieval": retrieval.run,
    "sandbox": sandbox.run,
    "storage": storage.run,
}

PARTS: Final[dict[str, Section]] = {
    "retrieval_quality": retrieval.quality,
}
"""Parts of a section that `--only` can run alone (the default run has them in their section)."""


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="small counts, under two minutes: a smoke test"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=(*SECTIONS, *PARTS),
        metavar="NAME",
        help=f"run only this section (repeatable): {', '.join(SECTIONS)}; "
        f"or only this part of one: {', '.join(PARTS)}",
    )
    parser.add_argument(
        "--database-url",
        help="the database every section's server uses (default: a fresh SQLite file per "
        "section; the scale section builds its dataset in it when it is not SQLite)",
    )
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample the server under test with py-spy into DIR (summarise the files with "
        "python -m bench.profile); the figures of a profiled run are a little lower",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch directory (child logs, databases)"
    )
    return parser.parse_args(argv)


def _cancel_on_signals() -> None:
    """SIGINT and SIGTERM cancel the run, so that every section stops its processes.

    A second signal cancels again; whatever is still running at the very end is killed by
    `kill_leftovers`.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    if task is None:
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)


async def _run(args: argparse.Namespace, work_dir: Path) -> list[Row]:
    _cancel_on_signals()
    config = Config.quick_run() if args.quick else Config.full()
    ctx = Context(
        config=config,
        work_dir=work_dir,
        database_url=args.database_url,
        profile_dir=args.profile,
    )
    names: list[str] = args.only or list(SECTIONS)
    rows: list[Row] = []
    for name in names:
        raise_if_cancelled()
        started = time.perf_counter()
        print(f"bench: {name} …", file=sys.stderr, flush=True)
        try:
            rows += await (SECTIONS | PARTS)[name](ctx)
        except Exception as exc:
            traceback.print_exc()
            rows.append(Row(name, "section failed", f"{type(exc).__name__}: {exc}"[:300], "—"))
        print(
            f"bench: {name} took {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    names: list[str] = args.only or list(SECTIONS)
    work_dir = Path(tempfile.mkdtemp(prefix="compat-bench-"))
    started = time.perf_counter()
    title = header("quick" if args.quick else "full", names)
    try:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            rows = runner.run(_run(args, work_dir))
    except asyncio.CancelledError:
        print("bench: interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        kill_leftovers()
        if args.keep:
            print(f"bench: scratch directory kept: {work_dir}", file=sys.stderr)
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    print(title)
    print(f"- took {time.perf_counter() - started:.0f} s")
    print()
    print(markdown_table(rows))
    if args.json is not None:
        args.json.write_text(json.dumps([row.as_dict() for row in rows], indent=2) + "\n")


if __name__ == "__main__":
    main()
