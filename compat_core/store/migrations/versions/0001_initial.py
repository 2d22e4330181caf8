"""Initial tables: assistants, threads, messages, runs, run steps and files.

Written out in full rather than derived from `compat_core.store.schema`, so that this step
keeps creating exactly these tables whatever the schema module says later.

Revision ID: 0001
Revises:
Create Date: 2025-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _seq() -> sa.Column[int]:
    # INTEGER on SQLite so that it is the rowid; BIGINT (BIGSERIAL) elsewhere.
    return sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    )


def _id() -> sa.Column[str]:
    return sa.Column("id", sa.String(64), nullable=False)


def _created_at() -> sa.Column[int]:
    return sa.Column("created_at", sa.BigInteger(), nullable=False)


def _body() -> sa.Column[bytes]:
    return sa.Column("body", sa.LargeBinary(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "assistants",
        _seq(),
        _id(),
        _created_at(),
        _body(),
        sa.PrimaryKeyConstraint("seq", name="pk_assistants"),
        sa.UniqueConstraint("id", name="uq_assistants_id"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "threads",
        _seq(),
        _id(),
        _created_at(),
        _body(),
        sa.PrimaryKeyConstraint("seq", name="pk_threads"),
        sa.UniqueConstraint("id", name="uq_threads_id"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "messages",
        _seq(),
        _id(),
        sa.Column("thread_id", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        _created_at(),
        _body(),
        sa.PrimaryKeyConstraint("seq", name="pk_messages"),
        sa.UniqueConstraint("id", name="uq_messages_id"),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["threads.id"], name="fk_messages_thread_id_threads"
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_messages_thread_id_seq", "messages", ["thread_id", "seq"])
    op.create_table(
        "runs",
        _seq(),
        _id(),
        sa.Column("thread_id", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        _created_at(),
        _body(),
        sa.PrimaryKeyConstraint("seq", name="pk_runs"),
        sa.UniqueConstraint("id", name="uq_runs_id"),
        sa.ForeignKeyConstraint(["thread_id"], ["threads.id"], name="fk_runs_thread_id_threads"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_runs_thread_id_seq", "runs", ["thread_id", "seq"])
    op.create_table(
        "run_steps",
        _seq(),
        _id(),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("thread_id", sa.String(64), nullable=False),
        _created_at(),
        _body(),
        sa.PrimaryKeyConstraint("seq", name="pk_run_steps"),
        sa.UniqueConstraint("id", name="uq_run_steps_id"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_run_steps_run_id_runs"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_run_steps_run_id_seq", "run_steps", ["run_id", "seq"])
    op.create_table(
        "files",
        _seq(),
        _id(),
        sa.Column("purpose", sa.String(64), nullable=False),
        _created_at(),
        _body(),
        sa.PrimaryKeyConstraint("seq", name="pk_files"),
        sa.UniqueConstraint("id", name="uq_files_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_files_purpose_seq", "files", ["purpose", "seq"])


def downgrade() -> None:
    op.drop_index("ix_files_purpose_seq", table_name="files")
    op.drop_table("files")
    op.drop_index("ix_run_steps_run_id_seq", table_name="run_steps")
    op.drop_table("run_steps")
    op.drop_index("ix_runs_thread_id_seq", table_name="runs")
    op.drop_table("runs")
    op.drop_index("ix_messages_thread_id_seq", table_name="messages")
    op.drop_table("messages")
    op.drop_table("threads")
    op.drop_table("assistants")
