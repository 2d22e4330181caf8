"""`SqlStore`'s files (objects only; bytes live in a `BlobStore`): deleting one takes it out
of every vector store in the same transaction."""

from __future__ import annotations

from sqlalchemy import Connection

from compat_core.store import sql_kinds, sql_rows, sql_vector_files
from compat_core.store.base import Page, PageQuery
from compat_core.store.base_files import Files
from compat_core.store.sql_store_base import SqlStoreBase
from compat_core.v1 import files_pb2


def _list_files(conn: Connection, query: PageQuery, purpose: str) -> Page[files_pb2.File]:
    return sql_rows.page(
        conn, sql_kinds.FILES, query, filters={"purpose": purpose} if purpose else None
    )


class SqlFiles(SqlStoreBase, Files):
    """The files part of `SqlStore`."""

    async def create_file(self, file: files_pb2.File) -> None:
        await self._db.write(lambda conn: sql_rows.append(conn, sql_kinds.FILES, [file]))

    async def get_file(self, file_id: str) -> files_pb2.File | None:
        return await self._lookup(lambda conn: sql_rows.get(conn, sql_kinds.FILES, file_id))

    async def list_files(self, query: PageQuery, purpose: str = "") -> Page[files_pb2.File]:
        return await self._lookup(lambda conn: _list_files(conn, query, purpose))

    async def delete_file(self, file_id: str) -> bool:
        def delete(conn: Connection) -> bool:
            if not sql_rows.delete(conn, sql_kinds.FILES, file_id):
                return False
            sql_vector_files.remove_file(conn, file_id)
            return True

        return await self._db.write(delete)
