"""The files of `Store` (objects only; bytes live in a BlobStore)."""

from __future__ import annotations

from abc import ABC, abstractmethod

from compat_core.store.base_types import Page, PageQuery
from compat_core.v1 import files_pb2


class Files(ABC):
    """Files (objects only; bytes live in a BlobStore)."""

    @abstractmethod
    async def create_file(self, file: files_pb2.File) -> None:
        """Insert a file object once its bytes are stored."""

    @abstractmethod
    async def get_file(self, file_id: str) -> files_pb2.File | None:
        """The file, or None if unknown."""

    @abstractmethod
    async def list_files(self, query: PageQuery, purpose: str = "") -> Page[files_pb2.File]:
        """A page of files, only those of `purpose` if given."""

    @abstractmethod
    async def delete_file(self, file_id: str) -> bool:
        """Delete a file object and take it out of every vector store that holds it (its
        entries and chunks, the stores recounted) in one transaction; False if unknown."""
