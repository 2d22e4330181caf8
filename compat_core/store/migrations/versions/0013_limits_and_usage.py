"""Per-project rate limits and usage.

- `project_limits`: a project's own limits; NULL takes the server's default.
- `rate_windows`: what the cores sharing a database spent of each project's rate window.
- `usage_daily`: tokens in and out and runs, by project, UTC day and model.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "project_limits",
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("requests_per_minute", sa.BigInteger(), nullable=True),
        sa.Column("tokens_per_minute", sa.BigInteger(), nullable=True),
        sa.Column("concurrent_runs", sa.BigInteger(), nullable=True),
        sa.Column("concurrent_streams", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("project_id", name="pk_project_limits"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_project_limits_project_id_projects"
        ),
    )
    op.create_table(
        "rate_windows",
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.Column("last_grant", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "kind", "window_start", name="pk_rate_windows"),
    )
    op.create_index("ix_rate_windows_window_start", "rate_windows", ["window_start"])
    op.create_table(
        "usage_daily",
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("runs", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "day", "model", name="pk_usage_daily"),
    )


def downgrade() -> None:
    op.drop_table("usage_daily")
    op.drop_index("ix_rate_windows_window_start", table_name="rate_windows")
    op.drop_table("rate_windows")
    op.drop_table("project_limits")
