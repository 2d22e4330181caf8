"""The files of vector stores, with the lease fields of their background ingestion.

A row is one file in one store (`id` is the file's ID, unique within the store). `status` and
`usage_bytes` are copies of the body's, so that a store's `file_counts` and `usage_bytes` are
one aggregate over its rows. `claimed_by` (a core's replica ID, "" for none) and
`lease_expires_at_ms` say which core is ingesting an `in_progress` file and until when: a core
claims rows whose lease ran out, so a file a stopped core left `in_progress` is resumed.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "vector_store_files",
        # INTEGER on SQLite so that it is the rowid; BIGINT (BIGSERIAL) elsewhere.
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("vector_store_id", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("usage_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("claimed_by", sa.String(128), server_default="", nullable=False),
        sa.Column("lease_expires_at_ms", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_vector_store_files"),
        sa.UniqueConstraint(
            "vector_store_id", "id", name="uq_vector_store_files_vector_store_id_id"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_vector_store_files_vector_store_id_seq",
        "vector_store_files",
        ["vector_store_id", "seq"],
    )
    op.create_index(
        "ix_vector_store_files_status_lease_expires_at_ms",
        "vector_store_files",
        ["status", "lease_expires_at_ms"],
    )


def downgrade() -> None:
    op.drop_index(
        "ix_vector_store_files_status_lease_expires_at_ms", table_name="vector_store_files"
    )
    op.drop_index("ix_vector_store_files_vector_store_id_seq", table_name="vector_store_files")
    op.drop_table("vector_store_files")
