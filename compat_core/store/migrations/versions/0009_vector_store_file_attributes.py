"""The attributes of the files of vector stores, as rows the database can filter on.

Until now a file's attributes lived only inside its protobuf `body`, which no SQL can read, so
a search filter could only be applied after the search, in Python: a search for 10 results
took 10 chunks and then dropped those of files the filter excluded, answering fewer than it
could. This table holds one row per attribute, keyed by (vector_store_id, file_id, key), with
the value in the column of its JSON type (`string_value`, `number_value` or `bool_value`; the
other two NULL). Typed columns, rather than one value column, are what give filters their
meaning on both databases without casts: a number is compared with numbers only (SQLite would
otherwise coerce one side of a comparison with a TEXT column), a comparison of another type
meets NULL and is simply false, and numbers compare as numbers. Strings compare by code point
on both: SQLite's default BINARY collation does, PostgreSQL needs the "C" collation on the
column for it.

Each comparison of a filter is an EXISTS on this table for the chunk's file; the primary key
answers that probe. The two (vector_store_id, key, value) indexes let PostgreSQL's planner
start from the files a selective filter admits instead of from every chunk matching the
query. The store rewrites a file's rows in the same transaction as every write of its
attributes (add, update, delete of the file or of its store), and the body stays the source
of truth that the rows are derived from.

Existing files get their rows here, decoded from their bodies. The body's attributes (field 8
of `VectorStoreFile`, and the fields of `VectorStoreFileAttribute`) are fixed by the contract,
which never renumbers a field, so decoding with the generated classes reads exactly what was
written.

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import TEXT

from compat_core.v1 import vector_stores_pb2

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# How many file rows are decoded at a time, so a large store does not sit in memory whole.
_BATCH = 500


def upgrade() -> None:
    attributes = op.create_table(
        "vector_store_file_attributes",
        sa.Column("vector_store_id", sa.String(64), nullable=False),
        sa.Column("file_id", sa.String(64), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column(
            "string_value",
            sa.Text().with_variant(TEXT(collation="C"), "postgresql"),
            nullable=True,
        ),
        sa.Column("number_value", sa.Double(), nullable=True),
        sa.Column("bool_value", sa.Boolean(), nullable=True),
        sa.PrimaryKeyConstraint(
            "vector_store_id", "file_id", "key", name="pk_vector_store_file_attributes"
        ),
    )
    op.create_index(
        "ix_vector_store_file_attributes_string_value",
        "vector_store_file_attributes",
        ["vector_store_id", "key", "string_value"],
    )
    op.create_index(
        "ix_vector_store_file_attributes_number_value",
        "vector_store_file_attributes",
        ["vector_store_id", "key", "number_value"],
    )
    _fill(op.get_bind(), attributes)


def _fill(conn: sa.Connection, attributes: sa.Table) -> None:
    files = sa.table(
        "vector_store_files",
        sa.column("seq", sa.BigInteger()),
        sa.column("id", sa.String()),
        sa.column("vector_store_id", sa.String()),
        sa.column("body", sa.LargeBinary()),
    )
    after = -1
    while True:
        batch = conn.execute(
            sa.select(files.c.seq, files.c.id, files.c.vector_store_id, files.c.body)
            .where(files.c.seq > after)
            .order_by(files.c.seq)
            .limit(_BATCH)
        ).all()
        if not batch:
            return
        rows = [
            _row(store_id, file_id, key, value)
            for _, file_id, store_id, body in batch
            for key, value in vector_stores_pb2.VectorStoreFile.FromString(body).attributes.items()
        ]
        if rows:
            conn.execute(attributes.insert(), rows)
        after = batch[-1][0]


def _row(
    vector_store_id: str,
    file_id: str,
    key: str,
    value: vector_stores_pb2.VectorStoreFileAttribute,
) -> dict[str, object]:
    kind = value.WhichOneof("value")
    return {
        "vector_store_id": vector_store_id,
        "file_id": file_id,
        "key": key,
        "string_value": value.string_value if kind == "string_value" else None,
        "number_value": value.number_value if kind == "number_value" else None,
        "bool_value": value.bool_value if kind == "bool_value" else None,
    }


def downgrade() -> None:
    op.drop_index(
        "ix_vector_store_file_attributes_number_value",
        table_name="vector_store_file_attributes",
    )
    op.drop_index(
        "ix_vector_store_file_attributes_string_value",
        table_name="vector_store_file_attributes",
    )
    op.drop_table("vector_store_file_attributes")
