"""Leases on executing runs (so several cores can share a database) and a stored event log.

Every run that was active when this migration ran gets an expired, unowned lease, so that the
first core to start after it claims and resumes it, as a restart did before.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# RUN_STATUS_QUEUED, RUN_STATUS_IN_PROGRESS, RUN_STATUS_CANCELLING of compat_core.v1.Run as
# they were when this was written (the contract never renumbers an enum value).
EXECUTING_STATUSES = (1, 2, 4)


def upgrade() -> None:
    op.create_table(
        "run_leases",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_run_leases_run_id_runs"),
        sa.PrimaryKeyConstraint("run_id", name="pk_run_leases"),
    )
    op.create_index("ix_run_leases_expires_at_ms", "run_leases", ["expires_at_ms"])
    op.create_index("ix_run_leases_owner", "run_leases", ["owner"])
    op.create_table(
        "run_events",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "sequence", name="pk_run_events"),
    )
    op.create_index("ix_run_events_created_at", "run_events", ["created_at"])
    statuses = ", ".join(str(status) for status in EXECUTING_STATUSES)
    op.execute(
        "INSERT INTO run_leases (run_id, owner, expires_at_ms) "
        f"SELECT id, '', 0 FROM runs WHERE status IN ({statuses})"
    )


def downgrade() -> None:
    op.drop_index("ix_run_events_created_at", table_name="run_events")
    op.drop_table("run_events")
    op.drop_index("ix_run_leases_owner", table_name="run_leases")
    op.drop_index("ix_run_leases_expires_at_ms", table_name="run_leases")
    op.drop_table("run_leases")
