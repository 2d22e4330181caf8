"""Batches of vector store files: their table, and the batch each file of a store joined with.

A batch row keeps the batch whole in `body`; its counts and status are not stored but worked
out from its files whenever it is read, so they can never disagree with them. Batches are
never listed, so the table needs no `seq`: it is found by `id`, and dropped with its store
through the `vector_store_id` index.

`vector_store_files.batch_id` (empty for a file added on its own) copies the body's, so that a
batch's files are one range of the `(batch_id, seq)` index: listing them page by page,
counting them, and cancelling the pending ones are each one statement.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "vector_store_file_batches",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("vector_store_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_vector_store_file_batches"),
    )
    op.create_index(
        "ix_vector_store_file_batches_vector_store_id",
        "vector_store_file_batches",
        ["vector_store_id"],
    )
    op.add_column(
        "vector_store_files",
        sa.Column("batch_id", sa.String(64), server_default="", nullable=False),
    )
    op.create_index("ix_vector_store_files_batch_id_seq", "vector_store_files", ["batch_id", "seq"])


def downgrade() -> None:
    op.drop_index("ix_vector_store_files_batch_id_seq", table_name="vector_store_files")
    with op.batch_alter_table("vector_store_files") as batch:
        batch.drop_column("batch_id")
    op.drop_index(
        "ix_vector_store_file_batches_vector_store_id", table_name="vector_store_file_batches"
    )
    op.drop_table("vector_store_file_batches")
