"""The attributes of the files of vector stores, as rows a search filter can read (migration
0009 says why they are rows and not only inside each file's body).

The rows are derived from the file's body, the source of truth: every write that changes a
file's attributes, or removes the file or its store, calls this module in its own
transaction, so the rows never disagree with the body a reader sees.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import Connection

from compat_core.store import schema
from compat_core.v1 import vector_stores_pb2

_ATTRIBUTES = schema.vector_store_file_attributes
Attribute = vector_stores_pb2.VectorStoreFileAttribute


def _rows(
    vector_store_id: str, file_id: str, attributes: Mapping[str, Attribute]
) -> list[dict[str, object]]:
    """One row per attribute, its value in the column of its type and NULL in the others."""
    out: list[dict[str, object]] = []
    for key, value in attributes.items():
        kind = value.WhichOneof("value")
        out.append(
            {
                "vector_store_id": vector_store_id,
                "file_id": file_id,
                "key": key,
                "string_value": value.string_value if kind == "string_value" else None,
                "number_value": value.number_value if kind == "number_value" else None,
                "bool_value": value.bool_value if kind == "bool_value" else None,
            }
        )
    return out


def add(conn: Connection, files: Iterable[vector_stores_pb2.VectorStoreFile]) -> None:
    """Rows for files just added to their store."""
    new = [row for f in files for row in _rows(f.vector_store_id, f.id, f.attributes)]
    if new:
        conn.execute(_ATTRIBUTES.insert(), new)


def replace(conn: Connection, f: vector_stores_pb2.VectorStoreFile) -> None:
    """The file's rows, after its attributes changed."""
    delete_file(conn, f.vector_store_id, f.id)
    add(conn, [f])


def delete_file(conn: Connection, vector_store_id: str, file_id: str) -> None:
    c = _ATTRIBUTES.c
    conn.execute(
        _ATTRIBUTES.delete().where(c.vector_store_id == vector_store_id, c.file_id == file_id)
    )


def delete_store(conn: Connection, vector_store_id: str) -> None:
    conn.execute(_ATTRIBUTES.delete().where(_ATTRIBUTES.c.vector_store_id == vector_store_id))
