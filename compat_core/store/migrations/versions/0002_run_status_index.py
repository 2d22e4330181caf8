"""Index runs by status, so restart recovery and expiry sweeps read only the runs they want.

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_runs_status_seq", "runs", ["status", "seq"])


def downgrade() -> None:
    op.drop_index("ix_runs_status_seq", table_name="runs")
