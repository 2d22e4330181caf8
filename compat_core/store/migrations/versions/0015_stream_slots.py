"""The event streams each core has open for a project, for the limit of concurrent streams
across the cores that share a PostgreSQL database.

- `stream_slots`: one row per project and core, with the core's count of open streams and
  when the row stops counting unless the core renews it.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stream_slots",
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("core_id", sa.String(128), nullable=False),
        sa.Column("open_streams", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "core_id", name="pk_stream_slots"),
    )


def downgrade() -> None:
    op.drop_table("stream_slots")
