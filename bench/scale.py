"""Section 4, scale of data: a thread of a million messages against a thread of a hundred.

The dataset is written straight through the store's transaction runner (`Database.write`, an
executemany of prebuilt protobuf bodies in big transactions): through HTTP a million
messages would take longer than the whole benchmark. Both threads live in one database, so
that the table and its indexes are the same size for both measurements; only the thread
differs. The SQLite file is built once and cached under `bench/.cache/`, keyed by the schema's
Alembic head and this module's dataset version, and copied for each run (the measurements
add messages to it).

Measured through HTTP: the 20 newest messages of each thread (the API's default page, newest
first), and creating a message in each. Ratio = 1M / 100, on p50 latency.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

from sqlalchemy import Connection, select

from bench.config import Context
from bench.datasets import remove_sqlite, schema_revision, seal_sqlite
from bench.load import LoadResult, alternate, http_call, http_session, run_load
from bench.procs import Child
from bench.report import Row, mib, ratio
from compat_core.store import schema
from compat_core.store.database import Database
from compat_core.tenancy import DEFAULT_PROJECT
from compat_core.v1 import messages_pb2, threads_pb2

T = TypeVar("T")

SECTION: Final = "4 scale of data"
# Bump when the rows this module writes change, so a stale cache is not reused.
DATASET_VERSION: Final = 1
BATCH: Final = 50_000
MAX_PAGE_RATIO: Final = 1.5
CREATED_AT: Final = 1767225600
MESSAGE_BODY: Final = b'{"role":"user","content":"hello"}'
CONCURRENCIES: Final = (1, 16)


def _fixed_id(prefix: str, name: str) -> str:
    """A fixed ID in OpenAI's shape (24 alphanumerics), so a built dataset can be found."""
    return prefix + (name + "0" * 24)[:24]


BIG_THREAD: Final = _fixed_id("thread_", "benchBig")
SMALL_THREAD: Final = _fixed_id("thread_", "benchSmall")


class _Runner(Protocol):
    """What the build needs of a store database (`Database`, or PostgreSQL's runner)."""

    async def write(self, fn: Callable[[Connection], T]) -> T: ...

    async def read(self, fn: Callable[[Connection], T]) -> T: ...

    async def run_migrations(self) -> None: ...

    async def close(self) -> None: ...


def _thread_row(thread_id: str) -> dict[str, Any]:
    thread = threads_pb2.Thread(id=thread_id, created_at=CREATED_AT)
    return {
        "id": thread_id,
        "project_id": DEFAULT_PROJECT,
        "created_at": CREATED_AT,
        "body": thread.SerializeToString(),
    }


def _message_rows(thread_id: str, tag: str, start: int, stop: int) -> list[dict[str, Any]]:
    """Messages `start … stop - 1` of a thread, as insert parameters."""
    message = messages_pb2.Message(
        thread_id=thread_id,
        status=messages_pb2.MESSAGE_STATUS_COMPLETED,
        role=messages_pb2.MESSAGE_ROLE_USER,
        content=[messages_pb2.MessageContent(text=messages_pb2.TextContent())],
    )
    text = message.content[0].text
    rows: list[dict[str, Any]] = []
    for index in range(start, stop):
        message.id = _fixed_id("msg_", f"{tag}{index:022d}")
        message.created_at = CREATED_AT + index // 1000
        text.value = f"Message {index} of the benchmark: a sentence of ordinary length."
        rows.append(
            {
                "id": message.id,
                "project_id": DEFAULT_PROJECT,
                "thread_id": thread_id,
                "run_id": None,
                "created_at": message.created_at,
                "body": message.SerializeToString(),
            }
        )
    return rows


def _batches(messages: int, small: int) -> Iterator[list[dict[str, Any]]]:
    # The small thread first, then the big one: the big thread's are the newest rows.
    yield _message_rows(SMALL_THREAD, "S", 0, small)
    for start in range(0, messages, BATCH):
        yield _message_rows(BIG_THREAD, "B", start, min(messages, start + BATCH))


async def _fill(db: _Runner, messages: int, small: int) -> None:
    threads = [_thread_row(BIG_THREAD), _thread_row(SMALL_THREAD)]
    await db.write(lambda conn: conn.execute(schema.threads.insert(), threads))
    pending: asyncio.Future[None] | None = None
    for rows in _batches(messages, small):
        # Build the next batch while the writer thread inserts this one.
        if pending is not None:
            await pending
        pending = asyncio.ensure_future(db.write(_inserter(rows)))
    if pending is not None:
        await pending


def _inserter(rows: list[dict[str, Any]]) -> Callable[[Connection], None]:
    def insert(conn: Connection) -> None:
        conn.execute(schema.messages.insert(), rows)

    return insert


async def cached_sqlite(ctx: Context) -> tuple[Path, str]:
    """The cached dataset file (built now if missing) and how it came to be."""
    config = ctx.config
    name = f"scale-r{schema_revision()}-v{DATASET_VERSION}-{config.scale_messages}.db"
    path = ctx.cache_dir / name
    if path.exists():
        return path, "cached"
    ctx.cache_dir.mkdir(parents=True, exist_ok=True)
    building = ctx.cache_dir / f"{name}.building-{os.getpid()}"
    remove_sqlite(building)
    started = time.perf_counter()
    db = Database(f"sqlite:///{building}")
    try:
        await db.run_migrations()
        await _fill(db, config.scale_messages, config.scale_small)
    finally:
        await db.close()
    seal_sqlite(building)
    os.replace(building, path)
    _prune(ctx.cache_dir, keep=path)
    return path, f"built in {time.perf_counter() - started:.0f} s"


def _prune(cache_dir: Path, keep: Path) -> None:
    """Drop datasets of other schema revisions or dataset versions (hundreds of MB each)."""
    for stale in cache_dir.glob("scale-r*.db"):
        same_size = stale.name.endswith(f"-{keep.name.rsplit('-', 1)[1]}")
        if stale != keep and same_size:
            stale.unlink(missing_ok=True)


async def _other_database(url: str, ctx: Context) -> str:
    """A non-SQLite database (PostgreSQL): fill it in place unless the dataset is there."""
    from compat_core.store import open_database

    db: _Runner = open_database(url)
    try:
        await db.run_migrations()
        stmt = select(schema.threads.c.id).where(schema.threads.c.id == BIG_THREAD)
        found = await db.read(lambda conn: conn.execute(stmt).scalar_one_or_none())
        if found is not None:
            return "found in the database"
        started = time.perf_counter()
        await _fill(db, ctx.config.scale_messages, ctx.config.scale_small)
        return f"built in {time.perf_counter() - started:.0f} s"
    finally:
        await db.close()


async def _prepare(ctx: Context) -> tuple[str, str, int]:
    """(database URL, provenance, file size) of a database holding the dataset."""
    if ctx.database_url is not None and not ctx.database_url.startswith("sqlite"):
        return ctx.database_url, await _other_database(ctx.database_url, ctx), 0
    cached, provenance = await cached_sqlite(ctx)
    directory = ctx.work_dir / "scale"
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "compat.db"
    await asyncio.to_thread(shutil.copyfile, cached, target)
    return f"sqlite:///{target}", provenance, cached.stat().st_size


async def _point(
    ctx: Context, pid: int, method: str, url: str, body: bytes | None, concurrency: int
) -> LoadResult:
    config = ctx.config
    async with http_session(concurrency) as session:
        return await run_load(
            lambda _: http_call(session, method, url, body),
            concurrency=concurrency,
            duration=config.scale_duration / config.load_rounds,
            warmup=config.load_warmup,
            cpu_pids=(pid,),
        )


async def _pair(
    ctx: Context, server: Child, method: str, path: str, body: bytes | None, concurrency: int
) -> tuple[LoadResult, LoadResult]:
    """The big thread's figures and the small one's, measured in turns."""
    root = f"{server.ready['http']}/v1"
    big = f"{root}/threads/{BIG_THREAD}/{path}"
    small = f"{root}/threads/{SMALL_THREAD}/{path}"
    return await alternate(
        functools.partial(_point, ctx, server.pid, method, big, body, concurrency),
        functools.partial(_point, ctx, server.pid, method, small, body, concurrency),
        ctx.config.load_rounds,
    )


def _row(label: str, big: LoadResult, small: LoadResult, targeted: bool) -> Row:
    share = big.p50_ms / small.p50_ms if small.p50_ms else float("nan")
    return Row(
        SECTION,
        f"{label} · c={big.concurrency} (1M thread vs 100 thread)",
        big.summary(),
        small.summary(),
        ratio(big.p50_ms, small.p50_ms) + " p50",
        f"p50 ≤ {MAX_PAGE_RATIO:g}x" if targeted else "—",
        (share <= MAX_PAGE_RATIO and not big.errors) if targeted else None,
    )


async def run(ctx: Context) -> list[Row]:
    config = ctx.config
    url, provenance, size = await _prepare(ctx)
    rows: list[Row] = []
    async with ctx.children("scale") as children:
        ours = await children.spawn(
            "ours", ["-m", "bench.ours", "--database-url", url], profile=True
        )
        for concurrency in CONCURRENCIES:
            big, small = await _pair(ctx, ours, "GET", "messages?limit=20", None, concurrency)
            rows.append(_row("list 20 newest messages", big, small, targeted=True))
        for concurrency in CONCURRENCIES:
            big, small = await _pair(ctx, ours, "POST", "messages", MESSAGE_BODY, concurrency)
            rows.append(_row("create a message", big, small, targeted=False))
    dataset = f"{config.scale_messages:,} + {config.scale_small} messages, {provenance}"
    if size:
        dataset += f", {mib(size)} file"
    rows.append(Row(SECTION, "dataset", dataset, "—"))
    return rows
