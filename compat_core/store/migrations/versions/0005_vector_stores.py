"""Vector stores: their table and the lock row of their list.

Vector stores have no parent row, so, as assistants and files, their inserts lock a row of
`list_locks` to be stamped and listed in one order (see migration 0003).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "vector_stores",
        # INTEGER on SQLite so that it is the rowid; BIGINT (BIGSERIAL) elsewhere.
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_vector_stores"),
        sa.UniqueConstraint("id", name="uq_vector_stores_id"),
        sqlite_autoincrement=True,
    )
    list_locks = sa.table("list_locks", sa.column("name", sa.String(64)))
    op.bulk_insert(list_locks, [{"name": "vector_stores"}])


def downgrade() -> None:
    op.execute("DELETE FROM list_locks WHERE name = 'vector_stores'")
    op.drop_table("vector_stores")
