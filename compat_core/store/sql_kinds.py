"""How each kind of object maps onto its table, for the row operations of `sql_rows`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message
from sqlalchemy import Table

from compat_core.retrieval import expiry
from compat_core.store import schema, sql_vector_files
from compat_core.v1 import (
    assistants_pb2,
    files_pb2,
    messages_pb2,
    runs_pb2,
    threads_pb2,
    vector_stores_pb2,
)

M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class Kind(Generic[M]):
    """How one kind of object maps onto its table."""

    table: Table
    parse: Callable[[bytes], M]
    # The queryable columns as the object's fields give them (all but `seq` and `body`).
    columns: Callable[[M], dict[str, Any]]
    # Columns that name the object or its parent: `mutate` must leave them alone, or the row
    # would silently move under cursors and parents.
    identity: tuple[str, ...]
    # The columns that pick out the list an object is listed in (empty: the whole table); None
    # for a kind that no API lists.
    list_scope: tuple[str, ...] | None


def _assistant_columns(a: assistants_pb2.Assistant) -> dict[str, Any]:
    return {"id": a.id, "created_at": a.created_at}


def _vector_store_columns(v: vector_stores_pb2.VectorStore) -> dict[str, Any]:
    return {"id": v.id, "created_at": v.created_at, "expires_at": expiry.pending_expiry(v)}


def _thread_columns(t: threads_pb2.Thread) -> dict[str, Any]:
    return {"id": t.id, "created_at": t.created_at}


def _message_columns(m: messages_pb2.Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "thread_id": m.thread_id,
        "run_id": m.run_id or None,
        "created_at": m.created_at,
    }


def _file_columns(f: files_pb2.File) -> dict[str, Any]:
    return {"id": f.id, "purpose": f.purpose, "created_at": f.created_at, "bytes": f.bytes}


def _run_columns(r: runs_pb2.Run) -> dict[str, Any]:
    return {
        "id": r.id,
        "thread_id": r.thread_id,
        "status": int(r.status),
        "created_at": r.created_at,
    }


def _step_columns(s: runs_pb2.RunStep) -> dict[str, Any]:
    return {"id": s.id, "run_id": s.run_id, "thread_id": s.thread_id, "created_at": s.created_at}


ASSISTANTS = Kind(
    schema.assistants, assistants_pb2.Assistant.FromString, _assistant_columns, ("id",), ()
)
VECTOR_STORES = Kind(
    schema.vector_stores,
    vector_stores_pb2.VectorStore.FromString,
    _vector_store_columns,
    ("id",),
    (),
)
VECTOR_STORE_FILES = Kind(
    schema.vector_store_files,
    vector_stores_pb2.VectorStoreFile.FromString,
    sql_vector_files.columns,
    ("id", "vector_store_id", "status", "usage_bytes", "batch_id"),
    ("vector_store_id",),
)
THREADS = Kind(schema.threads, threads_pb2.Thread.FromString, _thread_columns, ("id",), None)
MESSAGES = Kind(
    schema.messages,
    messages_pb2.Message.FromString,
    _message_columns,
    ("id", "thread_id"),
    ("thread_id",),
)
# `purpose` filters the list of files; it does not make lists of its own.
FILES = Kind(schema.files, files_pb2.File.FromString, _file_columns, ("id",), ())
RUNS = Kind(schema.runs, runs_pb2.Run.FromString, _run_columns, ("id", "thread_id"), ("thread_id",))
STEPS = Kind(
    schema.run_steps,
    runs_pb2.RunStep.FromString,
    _step_columns,
    ("id", "run_id", "thread_id"),
    ("run_id",),
)
