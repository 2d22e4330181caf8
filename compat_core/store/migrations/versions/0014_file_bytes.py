"""Files' sizes as a column, so that what a project stores is one aggregate.

- `files.bytes`: the file's size, copied from its body as `vector_store_files.usage_bytes`
  is. Without it, the bytes a project stores (the admin API's storage usage, the metrics'
  storage gauge) meant reading and parsing every file's body; with it, one `SUM` over an
  index.
- Indexes on `files (project_id, bytes)` and `vector_store_files (project_id, usage_bytes)`,
  which hold every value those sums read, so that neither database visits the tables' rows
  for them (the vector stores' sum used to scan every vector store file of every project).

The bodies are read with the generated `File` message: its field numbers are the contract's
and never change meaning, which is what a migration needs to stay true.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from compat_core.v1 import files_pb2

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Rows updated per statement while filling the column.
_BATCH = 1000


def upgrade() -> None:
    op.add_column("files", sa.Column("bytes", sa.BigInteger(), server_default="0", nullable=False))
    files = sa.table(
        "files",
        sa.column("seq", sa.BigInteger()),
        sa.column("body", sa.LargeBinary()),
        sa.column("bytes", sa.BigInteger()),
    )
    conn = op.get_bind()
    update = (
        files.update().where(files.c.seq == sa.bindparam("row")).values(bytes=sa.bindparam("n"))
    )
    sizes = []
    for seq, body in conn.execute(sa.select(files.c.seq, files.c.body)):
        size = files_pb2.File.FromString(body).bytes
        if size:
            sizes.append({"row": seq, "n": size})
        if len(sizes) >= _BATCH:
            conn.execute(update, sizes)
            sizes = []
    if sizes:
        conn.execute(update, sizes)
    op.create_index("ix_files_project_id_bytes", "files", ["project_id", "bytes"])
    op.create_index(
        "ix_vector_store_files_project_id_usage_bytes",
        "vector_store_files",
        ["project_id", "usage_bytes"],
    )


def downgrade() -> None:
    op.drop_index("ix_vector_store_files_project_id_usage_bytes", table_name="vector_store_files")
    op.drop_index("ix_files_project_id_bytes", table_name="files")
    with op.batch_alter_table("files") as batch:
        batch.drop_column("bytes")
