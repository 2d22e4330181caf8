"""Projects: every tenant's object belongs to one, and API keys are stored (hashed) per project.

- `projects`, with the default project `proj_default` that everything stored so far joins.
- `api_keys`: the SHA-256 of each key, its project, a redacted form to show, when it was
  created and (at most once a minute) last used.
- `project_id` on every table of a tenant's objects, filled with `proj_default` for the rows
  that exist; the lists with no parent (assistants, files, vector stores) get an index led by
  it, since their pages now range over one project's rows.

On PostgreSQL the column's default is dropped once the rows are filled, so an insert that
forgot its project fails instead of landing in the default one. SQLite cannot drop a column
default without copying the table (and every index and trigger on it); there the default
stays, and the store sets the project on every insert itself (`sql_rows`).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_PROJECT = "proj_default"
_TABLES = (
    "assistants",
    "threads",
    "messages",
    "runs",
    "run_steps",
    "files",
    "vector_stores",
    "vector_store_files",
    "vector_store_file_batches",
)
# (name, table, columns) of the indexes the scoped lists read along.
_INDEXES = (
    ("ix_assistants_project_id_seq", "assistants", ["project_id", "seq"]),
    ("ix_files_project_id_seq", "files", ["project_id", "seq"]),
    ("ix_files_project_id_purpose_seq", "files", ["project_id", "purpose", "seq"]),
    ("ix_vector_stores_project_id_seq", "vector_stores", ["project_id", "seq"]),
)


def upgrade() -> None:
    projects = op.create_table(
        "projects",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("archived_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
    )
    op.bulk_insert(
        projects,
        [{"id": DEFAULT_PROJECT, "name": "Default project", "created_at": int(time.time())}],
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("redacted_value", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("last_used_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_api_keys_project_id_projects"
        ),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_index("ix_api_keys_project_id", "api_keys", ["project_id"])
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in _TABLES:
        op.add_column(
            table,
            sa.Column("project_id", sa.String(64), server_default=DEFAULT_PROJECT, nullable=False),
        )
        if postgres:
            op.alter_column(table, "project_id", server_default=None)
    for name, table, columns in _INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in _INDEXES:
        op.drop_index(name, table_name=table)
    # SQLite (3.35 and later) drops a column in place; a batch copy of the table would have to
    # drop `threads` while other tables' foreign keys point at its rows.
    for table in _TABLES:
        op.drop_column(table, "project_id")
    op.drop_index("ix_api_keys_project_id", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("projects")
