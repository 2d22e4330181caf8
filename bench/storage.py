"""Section: what refreshing the per-project storage figures costs on a database of many files.

A core refreshes `compat_project_storage_bytes` every `COMPAT_STORAGE_METRICS_SECONDS`
(60 s by default) with `Store.storage_by_project`, the same read the admin API's storage
usage makes: a `SUM` of `files.bytes` and one of `vector_store_files.usage_bytes`, by
project, over indexes that hold both columns (migration 0014). The baseline is what that read
was before the column existed: every file's body read and parsed for its size, which is the
only other way to know it.

The files are written straight through the store's transaction runner (an executemany of
prebuilt rows), spread evenly over the projects; the store is opened in this process, as a
core opens it. Each figure is the median of a few reads, ours and the baseline alternating.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from sqlalchemy import Connection, func, select

from bench.config import Context
from bench.report import Row, ms, ratio
from compat_core.store import create_store, open_database, schema
from compat_core.v1 import files_pb2

SECTION: Final = "storage refresh"
BATCH: Final = 50_000
REPS: Final = 5
CREATED_AT: Final = 1767225600
# A refresh every 60 s that takes at most this long costs under 1% of a core.
TARGET_SECONDS: Final = 0.6
PROJECT_PREFIX: Final = "proj_benchStorage"


def _rows(start: int, stop: int, projects: int) -> list[dict[str, Any]]:
    rows = []
    for n in range(start, stop):
        size = 1000 + n % 4096
        file_id = f"file-benchstorage{n:010d}"
        body = files_pb2.File(
            id=file_id,
            bytes=size,
            created_at=CREATED_AT,
            filename=f"f{n}.txt",
            purpose="assistants",
            status=files_pb2.FILE_STATUS_PROCESSED,
        )
        rows.append(
            {
                "id": file_id,
                "project_id": f"{PROJECT_PREFIX}{n % projects:05d}",
                "purpose": "assistants",
                "created_at": CREATED_AT,
                "bytes": size,
                "body": body.SerializeToString(),
            }
        )
    return rows


def _count(conn: Connection) -> int:
    files = schema.files
    stmt = select(func.count()).where(files.c.project_id.startswith(PROJECT_PREFIX))
    return int(conn.execute(stmt).scalar_one())


async def _fill(url: str, total: int, projects: int) -> None:
    """The files, unless the database holds them already (a PostgreSQL `--database-url`)."""
    db = open_database(url)
    try:
        await db.run_migrations()
        have = await db.read(_count)
        for start in range(have, total, BATCH):
            rows = _rows(start, min(start + BATCH, total), projects)

            def insert(conn: Connection, rows: list[dict[str, Any]] = rows) -> None:
                conn.execute(schema.files.insert(), rows)

            await db.write(insert)
    finally:
        await db.close()


def _parse_every_body(conn: Connection) -> dict[str, int]:
    files = schema.files
    sums: dict[str, int] = {}
    for project, body in conn.execute(select(files.c.project_id, files.c.body)):
        sums[project] = sums.get(project, 0) + files_pb2.File.FromString(body).bytes
    return sums


async def _timed(read: Callable[[], Awaitable[object]], times: list[float]) -> None:
    started = time.perf_counter()
    await read()
    times.append(time.perf_counter() - started)


async def run(context: Context) -> list[Row]:
    config = context.config
    total, projects = config.storage_files, config.storage_projects
    url = context.database_for("storage")
    await _fill(url, total, projects)
    store = create_store(url)
    await store.open()
    db = open_database(url)
    ours: list[float] = []
    baseline: list[float] = []
    try:
        found = await store.storage_by_project()
        parsed = await db.read(_parse_every_body)
        mine = {p: s.files for p, s in found.items() if p.startswith(PROJECT_PREFIX)}
        theirs = {p: n for p, n in parsed.items() if p.startswith(PROJECT_PREFIX)}
        if mine != theirs or len(mine) != projects:
            raise AssertionError("the two reads disagree on what the projects store")
        for _ in range(REPS):
            await _timed(store.storage_by_project, ours)
            await _timed(lambda: db.read(_parse_every_body), baseline)
    finally:
        await db.close()
        await store.close()
    mine_s, theirs_s = statistics.median(ours), statistics.median(baseline)
    return [
        Row(
            SECTION,
            f"every project's bytes, {total:,} files in {projects:,} projects (p50 of {REPS})",
            ms(mine_s),
            ms(theirs_s) + " (every body parsed)",
            ratio(mine_s, theirs_s),
            f"≤ {TARGET_SECONDS * 1000:.0f} ms (1% of a core at one refresh a minute)",
            mine_s <= TARGET_SECONDS,
        )
    ]
