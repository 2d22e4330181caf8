"""Vector stores' pending expiry as a column, and vector store files findable by file alone.

- `vector_stores.expires_at`: when the store will expire, NULL if it never will or the sweep
  expired it already. The expiry sweep reads the stores whose time has come through its
  index instead of parsing every store's body. Filled here from the bodies of the stores
  that exist, those already marked expired included: before this revision nothing dropped
  their chunks, and the first sweep now does.
- An index on `vector_store_files.id`: deleting a file takes it out of every store that holds
  it, in the same transaction, without scanning every store's files.

The bodies are read with the generated `VectorStore` message: its field numbers are the
contract's and never change meaning, which is what a migration needs to stay true.

Revision ID: 0011
Revises: 0007
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from compat_core.v1 import vector_stores_pb2

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("vector_stores", sa.Column("expires_at", sa.BigInteger(), nullable=True))
    op.create_index("ix_vector_stores_expires_at", "vector_stores", ["expires_at"])
    op.create_index("ix_vector_store_files_id", "vector_store_files", ["id"])
    stores = sa.table(
        "vector_stores",
        sa.column("seq", sa.BigInteger()),
        sa.column("body", sa.LargeBinary()),
        sa.column("expires_at", sa.BigInteger()),
    )
    conn = op.get_bind()
    pending = []
    for seq, body in conn.execute(sa.select(stores.c.seq, stores.c.body)):
        store = vector_stores_pb2.VectorStore.FromString(body)
        if store.HasField("expires_at"):
            pending.append({"row": seq, "at": store.expires_at})
    if pending:
        conn.execute(
            stores.update()
            .where(stores.c.seq == sa.bindparam("row"))
            .values(expires_at=sa.bindparam("at")),
            pending,
        )


def downgrade() -> None:
    op.drop_index("ix_vector_store_files_id", table_name="vector_store_files")
    op.drop_index("ix_vector_stores_expires_at", table_name="vector_stores")
    with op.batch_alter_table("vector_stores") as batch:
        batch.drop_column("expires_at")
