"""A row to lock for each list that has no parent row, so its inserts happen one at a time.

A thread's messages, runs and steps are appended while the thread's row is locked. Assistants
and files have no such parent: on a database that runs writers side by side (PostgreSQL), two
inserts could otherwise commit in the other order than their `seq`, and be stamped in the other
order than they are listed. Inserting into such a list locks its row here first.

Revision ID: 0003
Revises: 0002
Create Date: 2025-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    list_locks = op.create_table(
        "list_locks",
        sa.Column("name", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_list_locks"),
    )
    op.bulk_insert(list_locks, [{"name": "assistants"}, {"name": "files"}])


def downgrade() -> None:
    op.drop_table("list_locks")
