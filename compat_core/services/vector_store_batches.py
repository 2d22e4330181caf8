"""Batches of vector store files: adding many files at once, reading, cancelling, listing.

A batch is acknowledged only once it and every one of its files are stored `in_progress`,
so the ingestion worker (`compat_core.retrieval.ingestion`) finds them even if this core
stops right after answering. A client polls the batch (the SDKs' `create_and_poll`) until
none of its files is in progress any more.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from compat_core import errors, ids, validation
from compat_core.services.support import cursor_error, list_response, now
from compat_core.services.vector_store_files import (
    Attribute,
    VectorStoreFiles,
    check_attributes,
    new_file,
    strategy_of,
)
from compat_core.store.base import CursorNotFound, Store
from compat_core.v1 import common_pb2, vector_stores_pb2

VectorStoreFileBatch = vector_stores_pb2.VectorStoreFileBatch
MAX_BATCH_FILES: Final = 2000
_FINISHED: Final = frozenset(
    {
        vector_stores_pb2.VECTOR_STORE_FILE_BATCH_STATUS_COMPLETED,
        vector_stores_pb2.VECTOR_STORE_FILE_BATCH_STATUS_FAILED,
    }
)
_STATUS_NAMES: Final = {
    vector_stores_pb2.VECTOR_STORE_FILE_BATCH_STATUS_COMPLETED: "completed",
    vector_stores_pb2.VECTOR_STORE_FILE_BATCH_STATUS_FAILED: "failed",
}


@dataclass(frozen=True)
class _Entry:
    """One file a batch adds, with its settings, and the parameter a 404 for it names."""

    file_id: str
    strategy: common_pb2.ChunkingStrategy
    attributes: Mapping[str, Attribute]
    param: str


class VectorStoreFileBatches:
    """The checks and storage of batches; the files' own checks are `VectorStoreFiles`'."""

    def __init__(self, store: Store, files: VectorStoreFiles) -> None:
        self._store = store
        self._files = files

    async def create(
        self, request: vector_stores_pb2.CreateVectorStoreFileBatchRequest
    ) -> VectorStoreFileBatch:
        store_id = request.vector_store_id
        validation.required_id(store_id, "vector_store_id")
        entries = _entries(request)
        if await self._store.get_vector_store(store_id) is None:
            raise errors.no_such("vector_store_id", store_id)
        for entry in entries:
            if await self._store.get_file(entry.file_id) is None:
                raise errors.not_found(
                    f"No such File object: {errors.shown(entry.file_id)}", entry.param
                )
        created = now()
        batch = VectorStoreFileBatch(
            id=ids.new_id(ids.VECTOR_STORE_FILE_BATCH),
            created_at=created,
            vector_store_id=store_id,
        )
        # A file named twice is added once, where it first appears, with its last settings.
        last = {entry.file_id: entry for entry in entries}
        files = [
            new_file(store_id, e.file_id, e.strategy, e.attributes, created, batch.id)
            for e in last.values()
        ]
        stored = await self._store.create_vector_store_file_batch(batch, files, _now_ms())
        if stored is None:
            raise errors.no_such("vector_store_id", store_id)
        self._files.wake()
        return stored

    async def get(self, vector_store_id: str, batch_id: str) -> VectorStoreFileBatch:
        _check_ids(vector_store_id, batch_id)
        found = await self._store.get_vector_store_file_batch(vector_store_id, batch_id, _now_ms())
        if found is None:
            raise await self._missing(vector_store_id, batch_id)
        return found

    async def cancel(self, vector_store_id: str, batch_id: str) -> VectorStoreFileBatch:
        _check_ids(vector_store_id, batch_id)
        batch = await self._store.cancel_vector_store_file_batch(
            vector_store_id, batch_id, _now_ms()
        )
        if batch is None:
            raise await self._missing(vector_store_id, batch_id)
        if batch.status in _FINISHED:
            raise errors.precondition(
                "Cannot cancel a vector store file batch with status "
                f"'{_STATUS_NAMES[batch.status]}'.",
                "batch_id",
            )
        return batch

    async def list_files(
        self, request: vector_stores_pb2.ListVectorStoreFileBatchFilesRequest
    ) -> vector_stores_pb2.ListVectorStoreFilesResponse:
        _check_ids(request.vector_store_id, request.batch_id)
        query = validation.page_query(
            request.limit if request.HasField("limit") else None,
            request.order,
            request.after,
            request.before,
        )
        try:
            page = await self._store.list_vector_store_file_batch_files(
                request.vector_store_id, request.batch_id, query, int(request.filter)
            )
        except CursorNotFound as exc:
            raise cursor_error(exc) from exc
        if page is None:
            raise await self._missing(request.vector_store_id, request.batch_id)
        return list_response(vector_stores_pb2.ListVectorStoreFilesResponse.FromString, page)

    async def _missing(self, vector_store_id: str, batch_id: str) -> errors.ApiError:
        """The 404 for a batch not found: the store's when the store is what is missing."""
        if await self._store.get_vector_store(vector_store_id) is None:
            return errors.no_such("vector_store_id", vector_store_id)
        return errors.not_found(
            f"No file batch found with id '{errors.shown(batch_id)}' in vector store "
            f"'{errors.shown(vector_store_id)}'.",
            "batch_id",
        )


def _entries(request: vector_stores_pb2.CreateVectorStoreFileBatchRequest) -> list[_Entry]:
    """The files the request adds, each checked as OpenAI checks it (400 naming the field)."""
    if request.file_ids and request.files:
        raise errors.invalid(
            "Invalid request: 'file_ids' and 'files' are mutually exclusive. Give one of them.",
            "files",
        )
    if not request.file_ids and not request.files:
        raise errors.invalid(
            "Missing required parameter: 'file_ids' or 'files'.",
            "file_ids",
            "missing_required_parameter",
        )
    param = "file_ids" if request.file_ids else "files"
    count = len(request.file_ids) or len(request.files)
    if count > MAX_BATCH_FILES:
        raise errors.invalid(
            f"Invalid '{param}': array too long. Expected an array with maximum length "
            f"{MAX_BATCH_FILES}, but got an array with length {count} instead.",
            param,
            "array_above_max_length",
        )
    if request.file_ids:
        strategy_of(request.chunking_strategy)
        check_attributes(request.attributes)
        for file_id in request.file_ids:
            validation.required_id(file_id, "file_ids")
        return [
            _Entry(file_id, request.chunking_strategy, request.attributes, "file_ids")
            for file_id in request.file_ids
        ]
    entries = []
    for index, given in enumerate(request.files):
        prefix = f"files[{index}]."
        validation.required_id(given.file_id, f"{prefix}file_id")
        try:
            strategy_of(given.chunking_strategy)
            check_attributes(given.attributes)
        except errors.ApiError as exc:
            raise _within(prefix, exc) from exc
        entries.append(
            _Entry(given.file_id, given.chunking_strategy, given.attributes, f"{prefix}file_id")
        )
    return entries


def _within(prefix: str, error: errors.ApiError) -> errors.ApiError:
    """`error` about a field of one entry of `files`, named with the entry's place."""
    if error.param is None:
        return error
    message = error.message.replace(f"'{error.param}", f"'{prefix}{error.param}", 1)
    return errors.ApiError(error.status, message, param=prefix + error.param, code=error.code)


def _check_ids(vector_store_id: str, batch_id: str) -> None:
    validation.required_id(vector_store_id, "vector_store_id")
    validation.required_id(batch_id, "batch_id")


def _now_ms() -> int:
    return int(time.time() * 1000)
