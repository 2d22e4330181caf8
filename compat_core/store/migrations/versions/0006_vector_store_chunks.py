"""The chunks of vector store files, and a full-text index over their text for file_search.

The table is the same on both databases; the full-text index is each database's own:
- SQLite: an FTS5 table with external content (the chunks table itself, so the text is stored
  once), whose rows are the chunks' `id`s. Triggers keep it in step with every insert, delete
  and update of a chunk, whichever statement makes it: an index that only the store's own
  functions remembered to update would drift the first time another path (a cascade, a sweep,
  a future migration) touched the table, and a drifted external-content index returns rowids
  of other chunks or fails on delete.
- PostgreSQL: a generated (STORED) tsvector column, which the database derives from the text
  on every write, with a GIN index.

The tokenizer and text search configuration are written out here rather than imported from
`compat_core.retrieval.lexical`: a migration must keep meaning what it meant when it was
written (a test checks that the two still agree).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import TSVECTOR

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FTS5_TOKENIZER = "porter unicode61 remove_diacritics 2"
TEXT_SEARCH_CONFIG = "english"

_SQLITE_UP = (
    "CREATE VIRTUAL TABLE vector_store_chunks_fts USING fts5("
    "text, content='vector_store_chunks', content_rowid='id', "
    f"tokenize='{FTS5_TOKENIZER}')",
    "CREATE TRIGGER vector_store_chunks_fts_insert AFTER INSERT ON vector_store_chunks BEGIN "
    "INSERT INTO vector_store_chunks_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER vector_store_chunks_fts_delete AFTER DELETE ON vector_store_chunks BEGIN "
    "INSERT INTO vector_store_chunks_fts(vector_store_chunks_fts, rowid, text) "
    "VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER vector_store_chunks_fts_update AFTER UPDATE ON vector_store_chunks BEGIN "
    "INSERT INTO vector_store_chunks_fts(vector_store_chunks_fts, rowid, text) "
    "VALUES ('delete', old.id, old.text); "
    "INSERT INTO vector_store_chunks_fts(rowid, text) VALUES (new.id, new.text); END",
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    search: list[sa.Column[object]] = []
    if dialect == "postgresql":
        search.append(
            sa.Column(
                "text_search",
                TSVECTOR(),
                sa.Computed(
                    f"to_tsvector('{TEXT_SEARCH_CONFIG}'::regconfig, text)", persisted=True
                ),
                nullable=False,
            )
        )
    op.create_table(
        "vector_store_chunks",
        # INTEGER on SQLite so that it is the rowid (the FTS5 table's key); BIGSERIAL elsewhere.
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("vector_store_id", sa.String(64), nullable=False),
        sa.Column("file_id", sa.String(64), nullable=False),
        sa.Column("chunk_index", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("token_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        *search,
        sa.PrimaryKeyConstraint("id", name="pk_vector_store_chunks"),
        sa.UniqueConstraint(
            "vector_store_id",
            "file_id",
            "chunk_index",
            name="uq_vector_store_chunks_vector_store_id_file_id_chunk_index",
        ),
        sqlite_autoincrement=True,
    )
    if dialect == "sqlite":
        for statement in _SQLITE_UP:
            op.execute(statement)
    elif dialect == "postgresql":
        op.create_index(
            "ix_vector_store_chunks_text_search",
            "vector_store_chunks",
            ["text_search"],
            postgresql_using="gin",
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER vector_store_chunks_fts_{name}")
        op.execute("DROP TABLE vector_store_chunks_fts")
    elif dialect == "postgresql":
        op.drop_index("ix_vector_store_chunks_text_search", table_name="vector_store_chunks")
    op.drop_table("vector_store_chunks")
