"""`SqlStore`'s runs and run steps: runs created and updated under their thread's lock (the
one-active-run rule, `sql_store_threads`), the engine's progress saved in one transaction with
the run's lease (`sql_claims`), and the reads the engine and restart recovery make."""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable, Collection, Iterable, Sequence

from sqlalchemy import Connection, Integer, bindparam, func, select

from compat_core import tenancy
from compat_core.store import (
    prepared,
    schema,
    sql_claims,
    sql_kinds,
    sql_locks,
    sql_rows,
    sql_scope,
    sql_statements,
    sql_store_threads,
    sql_usage,
)
from compat_core.store.base import (
    ACTIVE_RUN_STATUSES,
    EXECUTING_RUN_STATUSES,
    ActiveRunsLimited,
    Lease,
    Page,
    PageQuery,
    VectorStoreWrites,
)
from compat_core.store.base_runs import Runs
from compat_core.store.sql_store_base import SqlStoreBase
from compat_core.v1 import messages_pb2, runs_pb2, threads_pb2

# A thread with at most this many messages is read for a prompt as a bounded read.
FEW_MESSAGES = 32


_RUNS_WITH_STATUS = (
    select(schema.runs.c.seq, schema.runs.c.body)
    .where(schema.runs.c.status == bindparam(sql_statements.param("status")))
    .order_by(schema.runs.c.seq.asc())
    .limit(bindparam(sql_statements.param("limit"), type_=Integer))
)


def _count_active_runs(conn: Connection) -> int:
    runs = schema.runs
    stmt = select(func.count()).where(
        runs.c.status.in_(sorted(ACTIVE_RUN_STATUSES)), *sql_scope.where(runs)
    )
    return int(conn.execute(stmt).scalar_one())


def _check_active_runs(conn: Connection, limit: int) -> None:
    """Raise ActiveRunsLimited if the scope's project has `limit` active runs already. Under
    the project's lock, so that no other creation counts before this one's run is committed;
    a run only becomes active by its creation, so nothing else adds to the count meanwhile."""
    sql_locks.lock_project(conn, sql_locks.ACTIVE_RUNS, tenancy.project_id())
    active = _count_active_runs(conn)
    if active >= limit:
        raise ActiveRunsLimited(limit, active)


def _create_run(
    conn: Connection,
    run: runs_pb2.Run,
    messages: Sequence[messages_pb2.Message],
    thread: threads_pb2.Thread | None,
    lease: Lease | None,
    reply: tuple[messages_pb2.Message, runs_pb2.RunStep] | None = None,
    writes: VectorStoreWrites | None = None,
    active_runs_limit: int = 0,
) -> bool:
    if active_runs_limit:
        _check_active_runs(conn, active_runs_limit)
    steps: list[runs_pb2.RunStep] = []
    if reply is not None:
        message, step = reply
        if (step.run_id, step.thread_id) != (run.id, run.thread_id):
            raise ValueError(f"step {step.id} is not a step of run {run.id}")
        # The reply goes after the run's other messages; its step after the run (a foreign key).
        messages, steps = [*messages, message], [step]
    for message in messages:
        if message.thread_id != run.thread_id:
            raise ValueError(f"message {message.id} names thread {message.thread_id!r}")
    if thread is not None:
        if thread.id != run.thread_id:
            raise ValueError(f"run {run.id} names thread {run.thread_id!r}, not {thread.id!r}")
        sql_store_threads.insert_thread(conn, thread, writes)
    elif not sql_rows.lock_thread(conn, run.thread_id):
        return False
    # A new thread cannot have a run yet, and no one else sees it before this commits; an
    # existing one is checked while its row is locked, so two runs cannot both pass.
    sql_store_threads.check_idle(conn, run.thread_id)
    if thread is None:
        sql_store_threads.attach_to_thread(conn, run.thread_id, writes)
    sql_rows.append(conn, sql_kinds.MESSAGES, messages)
    sql_rows.append(conn, sql_kinds.RUNS, [run])
    sql_claims.sync_lease(conn, run, lease)
    sql_rows.append(conn, sql_kinds.STEPS, steps)
    return True


def _update_run(
    conn: Connection,
    thread_id: str,
    run_id: str,
    mutate: Callable[[runs_pb2.Run], None],
    lease: Lease | None,
) -> runs_pb2.Run | None:
    # The thread before the run: `mutate` may make the run active again, which is checked
    # against the thread's other runs.
    if not sql_rows.lock_thread(conn, thread_id):
        return None
    run = sql_rows.update(conn, sql_kinds.RUNS, run_id, mutate, thread_id=thread_id)
    if run is not None:
        if run.status in ACTIVE_RUN_STATUSES:
            sql_store_threads.check_idle(conn, thread_id, other_than=run_id)
        sql_claims.sync_lease(conn, run, lease)
    return run


def _run_thread(conn: Connection, run_id: str) -> str | None:
    stmt = sql_statements.select_where(schema.runs, ("thread_id",), ("id",))
    thread_id = prepared.scalar(conn, stmt, sql_statements.params({"id": run_id}))
    return None if thread_id is None else str(thread_id)


def _save_progress(
    conn: Connection,
    run: runs_pb2.Run | None,
    steps: Sequence[runs_pb2.RunStep],
    messages: Sequence[messages_pb2.Message],
    guard: Callable[[runs_pb2.Run], None] | None = None,
    holder: str | None = None,
) -> None:
    # Everything saved together belongs to one thread: the run's, else the first object's.
    if run is not None:
        thread_id = run.thread_id
    elif steps:
        thread_id = steps[0].thread_id
    elif messages:
        thread_id = messages[0].thread_id
    else:
        return
    named = [(step.id, step.thread_id) for step in steps]
    named += [(message.id, message.thread_id) for message in messages]
    for object_id, object_thread_id in named:
        if object_thread_id != thread_id:
            raise ValueError(f"{object_id} names thread {object_thread_id!r}, not {thread_id!r}")
    # A thread of another project is as missing as one that is not there: its foreign key
    # alone would let this write into it.
    if not sql_rows.lock_thread(conn, thread_id):
        raise LookupError(f"no thread {thread_id!r} to save progress in")
    held: set[str] = set()
    if holder is not None:
        run_ids = [run.id] if run is not None else [step.run_id for step in steps]
        run_ids += [message.run_id for message in messages if message.run_id]
        for held_run_id in dict.fromkeys(run_ids):
            sql_claims.check_holder(conn, held_run_id, holder)
            held.add(held_run_id)
    if run is not None:
        _save_run(conn, run, guard, lease_held=run.id in held)
    # A step's run must be on the step's thread (its thread_id column is not a foreign key);
    # the run saved along is.
    for step_run_id in dict.fromkeys(step.run_id for step in steps):
        if run is not None and step_run_id == run.id:
            continue
        if _run_thread(conn, step_run_id) != thread_id:
            raise ValueError(f"run {step_run_id!r} is not a run of thread {thread_id!r}")
    for step in steps:
        sql_rows.upsert(conn, sql_kinds.STEPS, step)
    for message in messages:
        sql_rows.upsert(conn, sql_kinds.MESSAGES, message)


def _save_run(
    conn: Connection,
    run: runs_pb2.Run,
    guard: Callable[[runs_pb2.Run], None] | None,
    lease_held: bool,
) -> None:
    """Insert or rewrite a run (its thread locked), with what follows from its status.

    One read of the stored row serves the identity check, `guard` and whether the run was
    active already; the statements a save can skip are skipped, since every one of them is a
    turn of the GIL on SQLite's writer thread: a run already active was the thread's only one,
    and a lease its holder just checked is there.
    """
    stmt = sql_statements.select_where(
        schema.runs, ("seq", "thread_id", "status", "body", "project_id"), ("id",), lock=True
    )
    row = prepared.first(conn, stmt, sql_statements.params({"id": run.id}))
    was_active = False
    if row is None:
        sql_rows.append(conn, sql_kinds.RUNS, [run])
    else:
        seq, stored_thread_id, stored_status, body, project_id = row
        if stored_thread_id != run.thread_id:
            raise ValueError(f"{run.id} is stored with other thread_id")
        if guard is not None:
            guard(sql_kinds.RUNS.parse(body))
        sql_rows.rewrite(conn, sql_kinds.RUNS, seq, run)
        was_active = stored_status in ACTIVE_RUN_STATUSES
        if was_active and run.status not in ACTIVE_RUN_STATUSES:
            # The run ends here, once: its usage is counted with its end or not at all.
            sql_usage.record_run_end(conn, str(project_id), run, int(time.time()))
    if run.status in ACTIVE_RUN_STATUSES and not was_active:
        # Inserting or re-activating a run must not give its thread a second active one.
        sql_store_threads.check_idle(conn, run.thread_id, other_than=run.id)
    if not (lease_held and run.status in EXECUTING_RUN_STATUSES):
        sql_claims.sync_lease(conn, run, None)


def _delete_run_output(
    conn: Connection, step_ids: Sequence[str], message_ids: Sequence[str]
) -> None:
    if not step_ids and not message_ids:
        return
    # The threads of what goes, locked first and in ID order (see `sql_store`).
    threads, steps, messages = schema.threads, schema.run_steps, schema.messages
    where = sql_scope.where
    owners = (
        select(steps.c.thread_id)
        .where(steps.c.id.in_(step_ids), *where(steps))
        .union(select(messages.c.thread_id).where(messages.c.id.in_(message_ids), *where(messages)))
    )
    conn.execute(
        select(threads.c.id)
        .where(threads.c.id.in_(owners), *where(threads))
        .order_by(threads.c.id)
        .with_for_update()
    ).all()
    if step_ids:
        conn.execute(steps.delete().where(steps.c.id.in_(step_ids), *where(steps)))
    if message_ids:
        conn.execute(messages.delete().where(messages.c.id.in_(message_ids), *where(messages)))


def _runs_with_status(
    conn: Connection, statuses: Collection[int], limit: int
) -> list[runs_pb2.Run]:
    """The oldest `limit` runs in `statuses`, each status read along its (status, seq) index.

    One ordered range scan per status, merged here: a single `status IN (...) ORDER BY seq`
    would read every matching row and sort them all before the limit applies.
    """
    if limit <= 0:
        return []
    streams: list[Iterable[tuple[int, bytes]]] = []
    for status in sorted(set(statuses)):
        params = sql_statements.params({"status": status, "limit": limit})
        streams.append(
            [(int(seq), body) for seq, body in prepared.rows(conn, _RUNS_WITH_STATUS, params)]
        )
    oldest = itertools.islice(heapq.merge(*streams), limit)
    return [sql_kinds.RUNS.parse(body) for _, body in oldest]


def _list_runs(conn: Connection, thread_id: str, query: PageQuery) -> Page[runs_pb2.Run] | None:
    return sql_rows.thread_page(conn, sql_kinds.RUNS, thread_id, query)


def _list_steps(
    conn: Connection, thread_id: str, run_id: str, query: PageQuery
) -> Page[runs_pb2.RunStep] | None:
    if _run_thread(conn, run_id) != thread_id:
        return None
    # A step's thread is its run's (save_progress checks), so the run scopes the list.
    return sql_rows.page(conn, sql_kinds.STEPS, query, {"run_id": run_id})


class SqlRuns(SqlStoreBase, Runs):
    """The runs part of `SqlStore`."""

    async def create_run(
        self,
        run: runs_pb2.Run,
        messages: Sequence[messages_pb2.Message] = (),
        thread: threads_pb2.Thread | None = None,
        lease: Lease | None = None,
        reply: tuple[messages_pb2.Message, runs_pb2.RunStep] | None = None,
        vector_stores: VectorStoreWrites | None = None,
        active_runs_limit: int = 0,
    ) -> bool:
        return await self._db.write(
            lambda conn: _create_run(
                conn, run, messages, thread, lease, reply, vector_stores, active_runs_limit
            )
        )

    async def get_run(self, thread_id: str, run_id: str) -> runs_pb2.Run | None:
        return await self._lookup(
            lambda conn: sql_rows.get(conn, sql_kinds.RUNS, run_id, thread_id=thread_id)
        )

    async def find_run(self, run_id: str) -> runs_pb2.Run | None:
        return await self._lookup(lambda conn: sql_rows.get(conn, sql_kinds.RUNS, run_id))

    async def list_runs(self, thread_id: str, query: PageQuery) -> Page[runs_pb2.Run] | None:
        return await self._lookup(lambda conn: _list_runs(conn, thread_id, query))

    async def update_run(
        self,
        thread_id: str,
        run_id: str,
        mutate: Callable[[runs_pb2.Run], None],
        lease: Lease | None = None,
    ) -> runs_pb2.Run | None:
        return await self._db.write(
            lambda conn: _update_run(conn, thread_id, run_id, mutate, lease)
        )

    async def save_progress(
        self,
        run: runs_pb2.Run | None = None,
        steps: Sequence[runs_pb2.RunStep] = (),
        messages: Sequence[messages_pb2.Message] = (),
        guard: Callable[[runs_pb2.Run], None] | None = None,
        holder: str | None = None,
    ) -> None:
        await self._db.write(lambda conn: _save_progress(conn, run, steps, messages, guard, holder))

    async def delete_run_output(self, step_ids: Sequence[str], message_ids: Sequence[str]) -> None:
        await self._db.write(lambda conn: _delete_run_output(conn, step_ids, message_ids))

    async def runs_with_status(
        self, statuses: Collection[int], limit: int = 1000
    ) -> list[runs_pb2.Run]:
        # Maintenance (expiry of runs left waiting): across projects.
        return await self._db.read_across(lambda conn: _runs_with_status(conn, statuses, limit))

    async def list_steps(
        self, thread_id: str, run_id: str, query: PageQuery
    ) -> Page[runs_pb2.RunStep] | None:
        return await self._lookup(lambda conn: _list_steps(conn, thread_id, run_id, query))

    async def get_step(self, thread_id: str, run_id: str, step_id: str) -> runs_pb2.RunStep | None:
        return await self._lookup(
            lambda conn: sql_rows.get(
                conn, sql_kinds.STEPS, step_id, run_id=run_id, thread_id=thread_id
            )
        )

    async def run_steps(self, run_id: str) -> list[runs_pb2.RunStep]:
        return await self._db.read(
            lambda conn: sql_rows.children(conn, sql_kinds.STEPS, "run_id", run_id)
        )

    async def thread_messages(self, thread_id: str) -> list[messages_pb2.Message]:
        # Most threads are short: read as a bounded read (no hop to a reader thread, and
        # before a run's first token). A long one is read again, whole, on a reader thread.
        few = await self._lookup(
            lambda conn: sql_rows.children_if_few(
                conn, sql_kinds.MESSAGES, "thread_id", thread_id, FEW_MESSAGES
            )
        )
        if few is not None:
            return few
        return await self._db.read(
            lambda conn: sql_rows.children(conn, sql_kinds.MESSAGES, "thread_id", thread_id)
        )
