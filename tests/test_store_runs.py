"""Runs and run steps in the store: the one-active-run rule, progress saves, paging, status
sweeps and the cascade from threads.

On SQLite, and in the PostgreSQL pass on PostgreSQL (see `test_store.py`); the runs' races
between concurrent transactions, which SQLite cannot have, are in `test_store_postgres.py`.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Connection, inspect
from sqlalchemy.exc import IntegrityError
from test_store import (
    HEAD,
    T0,
    alembic,
    assert_walks,
    count,
    current_revision,
    ids,
    message,
    pages_of,
    sqlite_only,
    sqlite_traced,
    thread,
    walk_after,
    walk_before,
)

from compat_core import tenancy
from compat_core.store import (
    CursorNotFound,
    Page,
    PageQuery,
    SqlStore,
    TransactionRunner,
    schema,
)
from compat_core.store.base import ACTIVE_RUN_STATUSES, ActiveRunsLimited, ThreadBusy
from compat_core.v1 import runs_pb2

QUEUED = runs_pb2.RUN_STATUS_QUEUED
IN_PROGRESS = runs_pb2.RUN_STATUS_IN_PROGRESS
COMPLETED = runs_pb2.RUN_STATUS_COMPLETED
TERMINAL_RUN_STATUSES = sorted(
    set(runs_pb2.RunStatus.values()) - ACTIVE_RUN_STATUSES - {runs_pb2.RUN_STATUS_UNSPECIFIED}
)


# Objects


def run(thread_id: str, name: str, status: int = QUEUED) -> runs_pb2.Run:
    return runs_pb2.Run(
        id=f"run_{name}",
        created_at=T0,
        thread_id=thread_id,
        assistant_id="asst_001",
        status=runs_pb2.RunStatus.ValueType(status),
        model="gpt-4o",
    )


def with_status(r: runs_pb2.Run, status: int) -> runs_pb2.Run:
    """A copy of the run in another status (as the run engine saves it)."""
    moved = runs_pb2.Run()
    moved.CopyFrom(r)
    moved.status = runs_pb2.RunStatus.ValueType(status)
    return moved


def finished(r: runs_pb2.Run) -> runs_pb2.Run:
    done = with_status(r, COMPLETED)
    done.completed_at = T0 + 60
    return done


def step(r: runs_pb2.Run, name: str) -> runs_pb2.RunStep:
    return runs_pb2.RunStep(
        id=f"step_{name}",
        created_at=T0,
        assistant_id=r.assistant_id,
        thread_id=r.thread_id,
        run_id=r.id,
        status=runs_pb2.RUN_STEP_STATUS_IN_PROGRESS,
        step_details=runs_pb2.StepDetails(
            message_creation=runs_pb2.MessageCreation(message_id=f"msg_{name}")
        ),
    )


def completed_step(s: runs_pb2.RunStep) -> runs_pb2.RunStep:
    done = runs_pb2.RunStep()
    done.CopyFrom(s)
    done.status = runs_pb2.RUN_STEP_STATUS_COMPLETED
    done.completed_at = T0 + 30
    return done


def ids_of(objects: list[Any]) -> list[str]:
    return [o.id for o in objects]


# The fixtures `db_path`, `db_url`, `db` and `store` live in `store_fixtures.py`.


# Creating runs


async def test_create_run_with_additional_messages(store: SqlStore) -> None:
    await store.create_thread(
        thread("thread_a"), [message("thread_a", "z1"), message("thread_a", "a1")]
    )
    created = run("thread_a", "r1")
    # IDs sorted against the list order: thread order must come from insertion.
    extra = [message("thread_a", "y2"), message("thread_a", "b2")]
    assert await store.create_run(created, extra) is True

    assert await store.get_run("thread_a", "run_r1") == created
    assert await store.find_run("run_r1") == created
    assert ids_of(await store.thread_messages("thread_a")) == [
        "msg_z1",
        "msg_a1",
        "msg_y2",
        "msg_b2",
    ]
    page = await store.list_runs("thread_a", PageQuery(limit=10))
    assert page is not None
    assert (ids(page), page.has_more) == (["run_r1"], False)


async def test_run_lookups_are_scoped(store: SqlStore) -> None:
    await store.create_thread(thread("thread_a"), [])
    await store.create_thread(thread("thread_b"), [])
    assert await store.create_run(run("thread_a", "r1")) is True
    assert await store.get_run("thread_b", "run_r1") is None
    assert await store.get_run("thread_a", "run_nope") is None
    assert await store.find_run("run_nope") is None
    assert await store.list_runs("thread_nope", PageQuery(limit=10)) is None
    page = await store.list_runs("thread_b", PageQuery(limit=10))
    assert page is not None
    assert (page.items, page.has_more) == ([], False)


async def test_create_run_on_missing_thread(store: SqlStore, db: TransactionRunner) -> None:
    created = run("thread_nope", "r1")
    assert await store.create_run(created, [message("thread_nope", "m1")]) is False
    assert await store.find_run("run_r1") is None
    assert await count(db, schema.messages) == 0


async def test_create_run_rejects_messages_of_another_thread(
    store: SqlStore, db: TransactionRunner
) -> None:
    await store.create_thread(thread("thread_a"), [])
    await store.create_thread(thread("thread_b"), [])
    with pytest.raises(ValueError, match="names thread"):
        await store.create_run(
            run("thread_a", "r1"), [message("thread_a", "m1"), message("thread_b", "m2")]
        )
    assert await store.find_run("run_r1") is None
    assert await count(db, schema.messages) == 0


@pytest.mark.parametrize("status", sorted(ACTIVE_RUN_STATUSES))
async def test_active_run_makes_thread_busy(
    store: SqlStore, db: TransactionRunner, status: int
) -> None:
    await store.create_thread(thread("thread_a"), [message("thread_a", "m1")])
    await store.create_thread(thread("thread_b"), [])
    first = run("thread_a", "r1")
    assert await store.create_run(first) is True
    # Whichever active state the run has moved on to.
    await store.save_progress(run=with_status(first, status))

    with pytest.raises(ThreadBusy) as raised:
        await store.create_run(run("thread_a", "r2"), [message("thread_a", "m2")])
    assert (raised.value.thread_id, raised.value.run_id) == ("thread_a", "run_r1")
    assert await store.find_run("run_r2") is None

    with pytest.raises(ThreadBusy) as raised:
        await store.create_message(message("thread_a", "m3"))
    assert (raised.value.thread_id, raised.value.run_id) == ("thread_a", "run_r1")

    assert ids_of(await store.thread_messages("thread_a")) == ["msg_m1"]
    assert await count(db, schema.runs) == 1

    # Another thread is not held up.
    assert await store.create_message(message("thread_b", "b1")) is True
    assert await store.create_run(run("thread_b", "rb")) is True


@pytest.mark.parametrize("status", TERMINAL_RUN_STATUSES)
async def test_terminal_run_frees_thread(store: SqlStore, status: int) -> None:
    await store.create_thread(thread("thread_a"), [])
    first = run("thread_a", "r1")
    assert await store.create_run(first) is True
    await store.save_progress(run=with_status(first, status))

    assert await store.create_message(message("thread_a", "m1")) is True
    assert await store.create_run(run("thread_a", "r2"), [message("thread_a", "m2")]) is True
    assert ids_of(await store.thread_messages("thread_a")) == ["msg_m1", "msg_m2"]
    with pytest.raises(ThreadBusy) as raised:
        await store.create_message(message("thread_a", "m3"))
    assert raised.value.run_id == "run_r2"


async def test_concurrent_create_runs_admit_one(store: SqlStore) -> None:
    await store.create_thread(thread("thread_a"), [])
    results = await asyncio.gather(
        *(store.create_run(run("thread_a", f"r{n}")) for n in range(5)), return_exceptions=True
    )
    assert results.count(True) == 1
    busy = [r for r in results if isinstance(r, ThreadBusy)]
    assert len(busy) == 4
    winner = f"run_r{results.index(True)}"
    assert {b.run_id for b in busy} == {winner}
    page = await store.list_runs("thread_a", PageQuery(limit=10))
    assert page is not None
    assert ids(page) == [winner]


async def test_concurrent_create_runs_under_a_limit_admit_the_limit(store: SqlStore) -> None:
    """Each creation counts the project's active runs in its own transaction: as many pass
    as the limit allows, however many are sent at once, and a refusal stores nothing."""
    await store.create_run(run("thread_old", "old"), [], thread=thread("thread_old"))
    results = await asyncio.gather(
        *(
            store.create_run(
                run(f"thread_{n}", f"r{n}"), [], thread=thread(f"thread_{n}"), active_runs_limit=3
            )
            for n in range(6)
        ),
        return_exceptions=True,
    )
    assert results.count(True) == 2, results
    refused = [r for r in results if isinstance(r, ActiveRunsLimited)]
    assert [(r.limit, r.active) for r in refused] == [(3, 3)] * 4, results
    for n, result in enumerate(results):
        assert (await store.get_thread(f"thread_{n}") is not None) == (result is True)
    # Another project's runs are not counted.
    with tenancy.project("proj_other"):
        assert await store.create_run(
            run("thread_x", "rx"), [], thread=thread("thread_x"), active_runs_limit=1
        )
    # Ended runs are not counted either.
    await store.save_progress(run=with_status(run("thread_old", "old"), COMPLETED))
    assert await store.create_run(
        run("thread_y", "ry"), [], thread=thread("thread_y"), active_runs_limit=3
    )


async def test_create_thread_and_run(store: SqlStore) -> None:
    created = run("thread_new", "r1")
    first = [message("thread_new", "q"), message("thread_new", "b")]
    assert await store.create_run(created, first, thread=thread("thread_new")) is True
    assert await store.get_thread("thread_new") == thread("thread_new")
    assert await store.get_run("thread_new", "run_r1") == created
    assert ids_of(await store.thread_messages("thread_new")) == ["msg_q", "msg_b"]


async def test_create_thread_and_run_is_one_transaction(
    store: SqlStore, db: TransactionRunner
) -> None:
    await store.create_thread(thread("thread_a"), [])
    assert await store.create_run(run("thread_a", "dup")) is True

    # The run's ID is taken: the thread and its messages, inserted first, roll back too.
    with pytest.raises(IntegrityError):
        await store.create_run(
            run("thread_new", "dup"), [message("thread_new", "m1")], thread=thread("thread_new")
        )
    assert await store.get_thread("thread_new") is None
    assert await count(db, schema.messages) == 0
    assert await count(db, schema.runs) == 1

    # A duplicate message ID, likewise.
    with pytest.raises(IntegrityError):
        await store.create_run(
            run("thread_new", "r2"),
            [message("thread_new", "m1"), message("thread_new", "m1")],
            thread=thread("thread_new"),
        )
    assert await store.get_thread("thread_new") is None
    assert await store.find_run("run_r2") is None
    assert await count(db, schema.messages) == 0

    # And the thread's own ID.
    with pytest.raises(IntegrityError):
        await store.create_run(run("thread_a", "r3"), [], thread=thread("thread_a"))
    assert await store.find_run("run_r3") is None

    with pytest.raises(ValueError, match="names thread"):
        await store.create_run(run("thread_other", "r4"), [], thread=thread("thread_new"))
    assert await store.get_thread("thread_new") is None
    assert await store.find_run("run_r4") is None


# Updating runs


async def test_update_run(store: SqlStore) -> None:
    await store.create_thread(thread("thread_a"), [])
    await store.create_thread(thread("thread_b"), [])
    assert await store.create_run(run("thread_a", "r1")) is True

    updated = await store.update_run("thread_a", "run_r1", lambda r: r.metadata.update(k="v"))
    assert updated is not None
    assert dict(updated.metadata) == {"k": "v"}
    assert await store.get_run("thread_a", "run_r1") == updated
    assert await store.update_run("thread_b", "run_r1", lambda r: r.metadata.clear()) is None

    def move(r: runs_pb2.Run) -> None:
        r.thread_id = "thread_b"

    with pytest.raises(ValueError, match="thread_id"):
        await store.update_run("thread_a", "run_r1", move)
    assert await store.get_run("thread_a", "run_r1") == updated


async def test_reactivating_a_run_cannot_make_a_second_active_one(store: SqlStore) -> None:
    await store.create_thread(thread("thread_a"), [])
    first = run("thread_a", "r1")
    assert await store.create_run(first) is True
    await store.save_progress(run=finished(first))
    second = run("thread_a", "r2")
    assert await store.create_run(second) is True

    def requeue(r: runs_pb2.Run) -> None:
        r.status = QUEUED

    with pytest.raises(ThreadBusy) as raised:
        await store.update_run("thread_a", "run_r1", requeue)
    assert raised.value.run_id == "run_r2"
    with pytest.raises(ThreadBusy):
        await store.save_progress(run=first)
    with pytest.raises(ThreadBusy):
        await store.save_progress(run=run("thread_a", "r3", IN_PROGRESS))
    assert await store.get_run("thread_a", "run_r1") == finished(first)
    assert await store.find_run("run_r3") is None

    # The active run itself moves between active states freely.
    await store.save_progress(run=with_status(second, IN_PROGRESS))
    stored = await store.find_run("run_r2")
    assert stored is not None
    assert stored.status == IN_PROGRESS


# Saving progress


async def test_save_progress_inserts_then_replaces_in_place(store: SqlStore) -> None:
    await store.create_thread(thread("thread_a"), [message("thread_a", "user")])
    r1 = run("thread_a", "r1")
    assert await store.create_run(r1) is True
    s1, s2 = step(r1, "s1"), step(r1, "s2")
    out1 = message("thread_a", "out1", run_id="run_r1")
    await store.save_progress(run=with_status(r1, IN_PROGRESS), steps=[s1], messages=[out1])
    await store.save_progress(steps=[s2], messages=[message("thread_a", "out2", "run_r1")])
    assert ids_of(await store.run_steps("run_r1")) == ["step_s1", "step_s2"]

    # Replace the first step and message: new bodies, same places.
    s1_done = completed_step(s1)
    out1_done = message("thread_a", "out1", run_id="run_r1")
    out1_done.content[0].text.value = "final text"
    await store.save_progress(run=finished(r1), steps=[s1_done], messages=[out1_done])

    assert await store.run_steps("run_r1") == [s1_done, s2]
    assert await store.get_step("thread_a", "run_r1", "step_s1") == s1_done
    assert ids_of(await store.thread_messages("thread_a")) == ["msg_user", "msg_out1", "msg_out2"]
    assert await store.get_message("thread_a", "msg_out1") == out1_done
    page = await store.list_steps("thread_a", "run_r1", PageQuery(limit=10, order="asc"))
    assert page is not None
    assert page.items == [s1_done, s2]
    outputs = await store.list_messages("thread_a", PageQuery(limit=10, order="asc"), "run_r1")
    assert outputs is not None
    assert ids(outputs) == ["msg_out1", "msg_out2"]
    assert await store.get_run("thread_a", "run_r1") == finished(r1)


async def test_save_progress_replaced_run_keeps_its_place(store: SqlStore) -> None:
    await store.create_thread(thread("thread_a"), [])
    runs = [run("thread_a", f"r{n}") for n in range(3)]
    for r in runs:
        assert await store.create_run(r) is True
        await store.save_progress(run=finished(r))

    renamed = finished(runs[0])
    renamed.metadata["note"] = "edited"
    await store.save_progress(run=renamed)
    page = await store.list_runs("thread_a", PageQuery(limit=10, order="asc"))
    assert page is not None
    assert ids(page) == ["run_r0", "run_r1", "run_r2"]
    assert page.items[0] == renamed


async def test_save_progress_updates_the_status_column(store: SqlStore) -> None:
    await store.create_thread(thread("thread_a"), [])
    r1 = run("thread_a", "r1")
    assert await store.create_run(r1) is True
    assert ids_of(await store.runs_with_status([QUEUED])) == ["run_r1"]
    await store.save_progress(run=with_status(r1, IN_PROGRESS))
    assert await store.runs_with_status([QUEUED]) == []
    assert ids_of(await store.runs_with_status([IN_PROGRESS])) == ["run_r1"]


async def test_save_progress_is_one_transaction(store: SqlStore, db: TransactionRunner) -> None:
    await store.create_thread(thread("thread_a"), [])
    await store.create_thread(thread("thread_b"), [])
    r1 = run("thread_a", "r1")
    assert await store.create_run(r1) is True
    s1 = step(r1, "s1")
    await store.save_progress(steps=[s1])

    # The last message's ID is taken in another thread: the upsert of that message fails
    # after the run, both steps and the first message were written, and they roll back.
    await store.create_thread(thread("thread_c"), [message("thread_c", "taken")])
    with pytest.raises(ValueError, match="thread_id"):
        await store.save_progress(
            run=finished(r1),
            steps=[completed_step(s1), step(r1, "s2")],
            messages=[message("thread_a", "new"), message("thread_a", "taken")],
        )
    assert await store.get_run("thread_a", "run_r1") == r1
    assert await store.run_steps("run_r1") == [s1]
    assert await store.get_message("thread_a", "msg_new") is None
    assert await count(db, schema.messages) == 1


async def test_save_progress_keeps_objects_on_their_thread(store: SqlStore) -> None:
    await store.create_thread(thread("thread_a"), [message("thread_a", "m1")])
    await store.create_thread(thread("thread_b"), [])
    ra, ra2 = run("thread_a", "a"), run("thread_a", "a2")
    rb = run("thread_b", "b")
    assert await store.create_run(ra) is True
    await store.save_progress(run=finished(ra))
    assert await store.create_run(ra2) is True
    assert await store.create_run(rb) is True
    sa = step(ra, "sa")
    await store.save_progress(steps=[sa])

    # A step or message of another thread than the run's.
    with pytest.raises(ValueError, match="names thread"):
        await store.save_progress(run=ra2, steps=[step(rb, "sb")])
    with pytest.raises(ValueError, match="names thread"):
        await store.save_progress(run=ra2, messages=[message("thread_b", "x")])
    # A step that claims a thread its run is not on.
    wrong = step(rb, "wrong")
    wrong.thread_id = "thread_a"
    with pytest.raises(ValueError, match="not a run of thread"):
        await store.save_progress(steps=[wrong])
    with pytest.raises(ValueError, match="not a run of thread"):
        await store.save_progress(steps=[step(run("thread_a", "nope"), "s")])
    # Replacing an existing row may not move it: to another run, or another thread.
    moved_step = step(ra2, "sa")
    with pytest.raises(ValueError, match="run_id"):
        await store.save_progress(steps=[moved_step])
    moved_message = message("thread_b", "m1")
    with pytest.raises(ValueError, match="thread_id"):
        await store.save_progress(messages=[moved_message])
    moved_run = finished(ra)
    moved_run.thread_id = "thread_b"
    with pytest.raises(ValueError, match="thread_id"):
        await store.save_progress(run=moved_run)

    assert await store.run_steps("run_a") == [sa]
    assert await store.run_steps("run_a2") == []
    assert await store.run_steps("run_b") == []
    assert await store.get_message("thread_a", "msg_m1") == message("thread_a", "m1")
    assert await store.thread_messages("thread_b") == []
    assert await store.get_run("thread_a", "run_a") == finished(ra)


async def test_save_progress_with_nothing_is_a_no_op(
    store: SqlStore, db: TransactionRunner
) -> None:
    await store.save_progress()
    assert await count(db, schema.runs) == 0


# Steps


async def test_get_step_is_scoped(store: SqlStore) -> None:
    await store.create_thread(thread("thread_a"), [])
    await store.create_thread(thread("thread_b"), [])
    r1, r2 = run("thread_a", "r1"), run("thread_a", "r2")
    rb = run("thread_b", "rb")
    assert await store.create_run(r1) is True
    await store.save_progress(run=finished(r1), steps=[step(r1, "s1")])
    assert await store.create_run(r2) is True
    assert await store.create_run(rb) is True

    assert await store.get_step("thread_a", "run_r1", "step_s1") == step(r1, "s1")
    assert await store.get_step("thread_a", "run_r2", "step_s1") is None
    assert await store.get_step("thread_b", "run_r1", "step_s1") is None
    assert await store.get_step("thread_b", "run_rb", "step_s1") is None
    assert await store.get_step("thread_a", "run_r1", "step_nope") is None


async def test_list_steps_walk_both_ways(store: SqlStore) -> None:
    await store.create_thread(thread("thread_a"), [])
    await store.create_thread(thread("thread_b"), [])
    r1, r2 = run("thread_a", "r1"), run("thread_a", "r2")
    rb = run("thread_b", "rb")
    for r in (r1, r2, rb):
        # Runs inserted directly (as recovery might): no active-run check to satisfy.
        await store.save_progress(run=finished(r))
    for n in range(23):
        # Interleaved, so the run's seqs have gaps.
        await store.save_progress(steps=[step(r1, f"a{n:02d}")])
        await store.save_progress(steps=[step(r2, f"x{n:02d}")])
        await store.save_progress(steps=[step(rb, f"b{n:02d}")])
    a_ids = [f"step_a{n:02d}" for n in range(23)]

    async def list_r1(query: PageQuery) -> Page[runs_pb2.RunStep]:
        page = await store.list_steps("thread_a", "run_r1", query)
        assert page is not None
        return page

    for order in ("desc", "asc"):
        for limit in (10, 22, 5):
            forward = await walk_after(list_r1, order, limit)
            backward = await walk_before(list_r1, order, limit, forward[-1][0][0])
            assert_walks(forward, backward, pages_of(a_ids, order, limit))
        # Exactly one page's worth: nothing more either way.
        whole = await list_r1(PageQuery(limit=23, order=order))
        assert (ids(whole), whole.has_more) == (a_ids if order == "asc" else a_ids[::-1], False)

    page = await list_r1(PageQuery(limit=3, order="asc", after="step_a05", before="step_a15"))
    assert (ids(page), page.has_more) == (["step_a12", "step_a13", "step_a14"], True)

    # Another run's step is no cursor, even in the same thread.
    for query in (PageQuery(limit=5, after="step_x03"), PageQuery(limit=5, before="step_b03")):
        with pytest.raises(CursorNotFound) as raised:
            await list_r1(query)
        assert raised.value.object_id in ("step_x03", "step_b03")

    # A run that is not in that thread, or none at all: no list (the run wins over a cursor).
    assert await store.list_steps("thread_b", "run_r1", PageQuery(limit=5)) is None
    assert await store.list_steps("thread_a", "run_nope", PageQuery(limit=5)) is None
    assert await store.list_steps("thread_nope", "run_r1", PageQuery(limit=5)) is None
    assert await store.list_steps("thread_b", "run_r1", PageQuery(limit=5, after="x")) is None

    empty = run("thread_a", "empty")
    await store.save_progress(run=finished(empty))
    none_yet = await store.list_steps("thread_a", "run_empty", PageQuery(limit=5))
    assert none_yet is not None
    assert (none_yet.items, none_yet.has_more) == ([], False)


async def test_list_runs_walk_both_ways(store: SqlStore) -> None:
    await store.create_thread(thread("thread_a"), [])
    await store.create_thread(thread("thread_b"), [])
    for n in range(21):
        for thread_id in ("thread_a", "thread_b"):
            r = run(thread_id, f"{thread_id[-1]}{n:02d}")
            assert await store.create_run(r) is True
            await store.save_progress(run=finished(r))
    a_ids = [f"run_a{n:02d}" for n in range(21)]

    async def list_a(query: PageQuery) -> Page[runs_pb2.Run]:
        page = await store.list_runs("thread_a", query)
        assert page is not None
        return page

    for order in ("desc", "asc"):
        for limit in (10, 7):
            forward = await walk_after(list_a, order, limit)
            backward = await walk_before(list_a, order, limit, forward[-1][0][0])
            assert_walks(forward, backward, pages_of(a_ids, order, limit))

    for query in (PageQuery(limit=5, after="run_b03"), PageQuery(limit=5, before="run_nope")):
        with pytest.raises(CursorNotFound):
            await list_a(query)
    # An unknown thread wins over an unknown cursor.
    assert await store.list_runs("thread_nope", PageQuery(limit=5, after="run_nope")) is None


async def test_runs_steps_and_outputs_keep_time_order(store: SqlStore) -> None:
    await store.create_thread(thread("thread_a"), [message("thread_a", "m1")])
    r1 = run("thread_a", "r1")
    r1.created_at = T0 + 100
    # Stamped before m1 (T0): raised to it; the run is the first of the thread's runs.
    extra = message("thread_a", "m2")
    extra.created_at = T0 - 5
    assert await store.create_run(r1, [extra]) is True
    assert (extra.created_at, r1.created_at) == (T0, T0 + 100)
    await store.save_progress(run=finished(r1))

    # A run stamped before the thread's newest run: raised to it.
    r2 = run("thread_a", "r2")
    r2.created_at = T0 + 50
    assert await store.create_run(r2) is True
    assert r2.created_at == T0 + 100
    assert await store.get_run("thread_a", "run_r2") == r2

    # Steps, and messages a run writes, inserted by save_progress.
    s1, s2 = step(r2, "s1"), step(r2, "s2")
    s1.created_at, s2.created_at = T0 + 300, T0 + 200
    out = message("thread_a", "out", run_id="run_r2")
    out.created_at = T0 - 1
    await store.save_progress(steps=[s1, s2], messages=[out])
    assert (s1.created_at, s2.created_at, out.created_at) == (T0 + 300, T0 + 300, T0)
    assert await store.get_message("thread_a", "msg_out") == out
    assert await store.run_steps("run_r2") == [s1, s2]
    # A replaced object keeps its place and the time it is given.
    replaced = completed_step(s1)
    replaced.created_at = T0 + 1
    await store.save_progress(steps=[replaced])
    assert await store.run_steps("run_r2") == [replaced, s2]
    # Another run's steps are another list.
    await store.save_progress(run=finished(r2))
    r3 = run("thread_a", "r3")
    r3.created_at = T0 + 400
    assert await store.create_run(r3) is True
    s3 = step(r3, "s3")
    s3.created_at = T0 + 400
    await store.save_progress(steps=[s3])
    assert s3.created_at == T0 + 400


# Sweeps and resumption


async def test_runs_with_status(store: SqlStore) -> None:
    statuses = [QUEUED, COMPLETED, IN_PROGRESS, QUEUED, runs_pb2.RUN_STATUS_FAILED, IN_PROGRESS]
    for n, status in enumerate(statuses):
        thread_id = f"thread_{n}"
        await store.create_thread(thread(thread_id), [])
        await store.save_progress(run=run(thread_id, f"r{n}", status))

    assert ids_of(await store.runs_with_status([QUEUED, IN_PROGRESS])) == [
        "run_r0",
        "run_r2",
        "run_r3",
        "run_r5",
    ]
    # Oldest first whatever order the statuses come in; the limit keeps the oldest.
    assert ids_of(await store.runs_with_status({IN_PROGRESS, QUEUED}, limit=3)) == [
        "run_r0",
        "run_r2",
        "run_r3",
    ]
    assert ids_of(await store.runs_with_status([IN_PROGRESS], limit=1)) == ["run_r2"]
    assert ids_of(await store.runs_with_status(ACTIVE_RUN_STATUSES)) == [
        "run_r0",
        "run_r2",
        "run_r3",
        "run_r5",
    ]
    assert ids_of(await store.runs_with_status(TERMINAL_RUN_STATUSES)) == ["run_r1", "run_r4"]
    assert await store.runs_with_status([runs_pb2.RUN_STATUS_EXPIRED]) == []
    assert await store.runs_with_status([]) == []
    assert await store.runs_with_status([QUEUED], limit=0) == []

    # A run's place is where it was created, not where its status last changed.
    r0 = await store.find_run("run_r0")
    assert r0 is not None
    await store.save_progress(run=with_status(r0, IN_PROGRESS))
    assert ids_of(await store.runs_with_status([IN_PROGRESS])) == ["run_r0", "run_r2", "run_r5"]
    runs = await store.runs_with_status([IN_PROGRESS])
    assert runs[0] == with_status(r0, IN_PROGRESS)


async def test_delete_run_output(store: SqlStore) -> None:
    await store.create_thread(thread("thread_a"), [message("thread_a", "user")])
    r1 = run("thread_a", "r1")
    assert await store.create_run(r1) is True
    steps = [step(r1, f"s{n}") for n in range(3)]
    outputs = [message("thread_a", f"out{n}", run_id="run_r1") for n in range(3)]
    await store.save_progress(run=with_status(r1, IN_PROGRESS), steps=steps, messages=outputs)

    await store.delete_run_output(["step_s1", "step_unknown"], ["msg_out1", "msg_out2"])
    assert await store.run_steps("run_r1") == [steps[0], steps[2]]
    assert ids_of(await store.thread_messages("thread_a")) == ["msg_user", "msg_out0"]
    await store.delete_run_output([], [])
    assert ids_of(await store.run_steps("run_r1")) == ["step_s0", "step_s2"]

    # Written again, they come after what stayed.
    await store.save_progress(steps=[steps[1]], messages=[outputs[1]])
    assert ids_of(await store.run_steps("run_r1")) == ["step_s0", "step_s2", "step_s1"]
    assert ids_of(await store.thread_messages("thread_a")) == ["msg_user", "msg_out0", "msg_out1"]


async def test_run_steps_and_thread_messages_of_unknown_parents(store: SqlStore) -> None:
    assert await store.run_steps("run_nope") == []
    assert await store.thread_messages("thread_nope") == []


async def test_delete_thread_cascades_runs_and_steps(
    store: SqlStore, db: TransactionRunner
) -> None:
    for name in ("a", "b"):
        thread_id = f"thread_{name}"
        await store.create_thread(thread(thread_id), [message(thread_id, f"{name}0")])
        first = run(thread_id, f"{name}1")
        assert await store.create_run(first, [message(thread_id, f"{name}1")]) is True
        await store.save_progress(
            run=finished(first),
            steps=[step(first, f"{name}1a"), step(first, f"{name}1b")],
            messages=[message(thread_id, f"{name}1out", run_id=first.id)],
        )
        second = run(thread_id, f"{name}2")
        assert await store.create_run(second) is True
        await store.save_progress(steps=[step(second, f"{name}2a")])

    assert await store.delete_thread("thread_a") is True

    m, r, s = schema.messages, schema.runs, schema.run_steps
    assert await count(db, m, m.c.thread_id == "thread_a") == 0
    assert await count(db, r, r.c.thread_id == "thread_a") == 0
    assert await count(db, s, s.c.thread_id == "thread_a") == 0
    assert await store.find_run("run_a1") is None
    assert await store.run_steps("run_a2") == []
    assert await count(db, m, m.c.thread_id == "thread_b") == 3
    assert await count(db, r, r.c.thread_id == "thread_b") == 2
    assert await count(db, s, s.c.thread_id == "thread_b") == 3
    assert ids_of(await store.runs_with_status(ACTIVE_RUN_STATUSES)) == ["run_b2"]


# Query cost and schema


@sqlite_only
async def test_run_queries_use_indexes_and_never_sort(
    store: SqlStore, db_url: str, db_path: Path
) -> None:
    await store.create_thread(thread("thread_a"), [message("thread_a", "m0")])
    r1 = run("thread_a", "r1")
    assert await store.create_run(r1) is True
    await store.save_progress(run=r1, steps=[step(r1, f"s{n}") for n in range(5)])
    await store.save_progress(run=finished(r1))

    async with sqlite_traced(db_url, db_path) as (traced, captured):
        for order in ("asc", "desc"):
            for runs_cursor, steps_cursor in (("", ""), ("run_r1", "step_s2")):
                for param in ("after", "before"):
                    await traced.list_runs(
                        "thread_a", PageQuery(limit=2, order=order, **{param: runs_cursor})
                    )
                    await traced.list_steps(
                        "thread_a",
                        "run_r1",
                        PageQuery(limit=2, order=order, **{param: steps_cursor}),
                    )
        await traced.runs_with_status(ACTIVE_RUN_STATUSES | {COMPLETED}, limit=5)
        await traced.run_steps("run_r1")
        await traced.thread_messages("thread_a")
        await traced.create_message(message("thread_a", "m1"))
        assert await traced.create_run(run("thread_a", "r2")) is True
    queries = [sql for sql in captured if sql.lstrip().upper().startswith("SELECT")]

    assert len(queries) > 20
    conn = sqlite3.connect(db_path)
    seen_status_index = 0
    try:
        for statement in queries:
            plan = " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {statement}"))
            assert "TEMP B-TREE" not in plan, (statement, plan)
            assert "SCAN " not in plan.replace("SCAN CONSTANT ROW", ""), (statement, plan)
            if "runs.status =" in statement:
                assert "USING INDEX ix_runs_status_seq" in plan, plan
                seen_status_index += 1
    finally:
        conn.close()
    assert seen_status_index == 5


async def test_migration_adds_the_run_status_index(db: TransactionRunner, db_url: str) -> None:
    await db.run_migrations()
    assert await current_revision(db_url) == HEAD

    def run_indexes(conn: Connection) -> set[str]:
        # PostgreSQL also lists the index behind each unique constraint: not ours to count.
        indexes = inspect(conn).get_indexes("runs")
        return {str(ix["name"]) for ix in indexes if not ix.get("duplicates_constraint")}

    def down_and_up(conn: Connection) -> list[set[str]]:
        seen = [run_indexes(conn)]
        alembic(conn, command.downgrade, "0001")
        seen.append(run_indexes(conn))
        alembic(conn, command.upgrade, "head")
        seen.append(run_indexes(conn))
        return seen

    at_head, at_0001, at_head_again = await db.write(down_and_up)
    assert "ix_runs_status_seq" in at_head
    assert at_0001 == {"ix_runs_thread_id_seq"}
    assert "ix_runs_status_seq" in at_head_again
