"""Dense vectors for file_search: each vector store's embedding model, and (SQLite) the vectors.

`vector_store_embeddings` has one row per vector store that has, or must get, vectors: the
model and dimension its vectors are of (every vector of a store is of one model, so a query
embedded with that model compares with all of them), whether every chunk has its vector
(`complete`), and the lease of the core re-embedding it after the configured model changed.
It is plain SQL on both databases, so a PostgreSQL server without pgvector migrates as before.

Where the vectors themselves live differs:
- SQLite: `vector_store_chunk_vectors` here, a float32 BLOB beside each chunk's ID, searched
  in the core. Triggers bump the store's `version` whenever one of its vectors is added or
  removed, however that happens (a chunk's delete cascades to its vector): the core's cached
  matrices are checked against it, so they never outlive a change.
- PostgreSQL: a pgvector table the core creates at start-up, and only when an embedding model
  is configured (`compat_core.store.sql_vectors`): `CREATE EXTENSION vector` needs the
  extension installed on the server and a superuser, neither of which lexical search needs.

Revision ID: 0010
Revises: 0007
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_TRIGGERS = (
    "CREATE TRIGGER vector_store_chunk_vectors_insert AFTER INSERT ON vector_store_chunk_vectors "
    "BEGIN UPDATE vector_store_embeddings SET version = version + 1 "
    "WHERE vector_store_id = new.vector_store_id; END",
    "CREATE TRIGGER vector_store_chunk_vectors_delete AFTER DELETE ON vector_store_chunk_vectors "
    "BEGIN UPDATE vector_store_embeddings SET version = version + 1 "
    "WHERE vector_store_id = old.vector_store_id; END",
)


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    version = [sa.Column("version", sa.BigInteger(), server_default="0", nullable=False)]
    op.create_table(
        "vector_store_embeddings",
        sa.Column("vector_store_id", sa.String(64), nullable=False),
        sa.Column("model", sa.String(256), server_default="", nullable=False),
        sa.Column("dimensions", sa.Integer(), server_default="0", nullable=False),
        sa.Column("complete", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("claimed_by", sa.String(128), server_default="", nullable=False),
        sa.Column("lease_expires_at_ms", sa.BigInteger(), server_default="0", nullable=False),
        *(version if sqlite else []),
        sa.PrimaryKeyConstraint("vector_store_id", name="pk_vector_store_embeddings"),
        sa.ForeignKeyConstraint(
            ["vector_store_id"],
            ["vector_stores.id"],
            name="fk_vector_store_embeddings_vector_store_id_vector_stores",
            ondelete="CASCADE",
        ),
    )
    if not sqlite:
        return
    op.create_table(
        "vector_store_chunk_vectors",
        sa.Column("chunk_id", sa.Integer(), nullable=False),
        sa.Column("vector_store_id", sa.String(64), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("chunk_id", name="pk_vector_store_chunk_vectors"),
        sa.ForeignKeyConstraint(
            ["chunk_id"],
            ["vector_store_chunks.id"],
            name="fk_vector_store_chunk_vectors_chunk_id_vector_store_chunks",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_vector_store_chunk_vectors_vector_store_id",
        "vector_store_chunk_vectors",
        ["vector_store_id"],
    )
    for statement in _SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        # The pgvector table a core made at start-up, if any: it refers to the chunks.
        op.execute("DROP TABLE IF EXISTS vector_store_chunk_vectors")
    else:
        for name in ("insert", "delete"):
            op.execute(f"DROP TRIGGER vector_store_chunk_vectors_{name}")
        op.drop_index(
            "ix_vector_store_chunk_vectors_vector_store_id",
            table_name="vector_store_chunk_vectors",
        )
        op.drop_table("vector_store_chunk_vectors")
    op.drop_table("vector_store_embeddings")
