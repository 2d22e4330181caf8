"""The files of vector stores: adding, reading, listing, changing and removing them.

Adding a file only records it `in_progress` and wakes the core's ingestion worker
(`compat_core.retrieval.ingestion`), which does the slow part in the background; a client
polls the file (the SDKs' `create_and_poll`) until it is `completed` or `failed`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Final

from compat_core import errors, validation
from compat_core.retrieval import chunking
from compat_core.retrieval.extract import ExtractionError, extract_text
from compat_core.services.support import cursor_error, list_response, now
from compat_core.store import BlobStore
from compat_core.store.base import CursorNotFound, Store
from compat_core.v1 import common_pb2, vector_stores_pb2

VectorStoreFile = vector_stores_pb2.VectorStoreFile
Attribute = vector_stores_pb2.VectorStoreFileAttribute
MAX_FILE_IDS: Final = 500


def strategy_of(given: common_pb2.ChunkingStrategy, at: str = "") -> chunking.ChunkingStrategy:
    """The retrieval strategy a proto one names (unset: auto); a bad one is a 400 naming the
    offending field, below `at` (where the strategy sits in the request)."""
    if given.WhichOneof("kind") != "static":
        return chunking.ChunkingStrategy.auto()
    try:
        return chunking.ChunkingStrategy.static(
            given.static.max_chunk_size_tokens, given.static.chunk_overlap_tokens, at=at
        )
    except chunking.ChunkingStrategyError as exc:
        raise errors.invalid(exc.message, exc.param, "invalid_value") from exc


def check_attributes(attributes: Mapping[str, Attribute]) -> None:
    """OpenAI's bounds: the metadata ones, string values counting as values."""
    validation.metadata(
        {
            key: value.string_value if value.WhichOneof("value") == "string_value" else ""
            for key, value in attributes.items()
        },
        "attributes",
    )


def new_file(
    vector_store_id: str,
    file_id: str,
    strategy: common_pb2.ChunkingStrategy,
    attributes: Mapping[str, Attribute],
    created: int,
    batch_id: str = "",
) -> VectorStoreFile:
    """A file to store `in_progress`, with its strategy spelled out (unset: `auto`)."""
    f = VectorStoreFile(
        id=file_id,
        created_at=created,
        vector_store_id=vector_store_id,
        status=vector_stores_pb2.VECTOR_STORE_FILE_STATUS_IN_PROGRESS,
        batch_id=batch_id,
    )
    for key, value in attributes.items():
        f.attributes[key].CopyFrom(value)
    f.chunking_strategy.CopyFrom(strategy)
    if f.chunking_strategy.WhichOneof("kind") is None:
        f.chunking_strategy.auto.SetInParent()
    return f


def new_files(
    vector_store_id: str,
    file_ids: Sequence[str],
    strategy: common_pb2.ChunkingStrategy,
    attributes: Mapping[str, Attribute],
    created: int,
) -> list[VectorStoreFile]:
    """`new_file` for each file, each once."""
    return [
        new_file(vector_store_id, file_id, strategy, attributes, created)
        for file_id in dict.fromkeys(file_ids)
    ]


class VectorStoreFiles:
    """The checks and storage of store files, shared by the RPCs that add them."""

    def __init__(self, store: Store, blobs: BlobStore, wake: Callable[[], None]) -> None:
        self._store = store
        self._blobs = blobs
        self._wake = wake

    async def check(
        self,
        file_ids: Sequence[str],
        strategy: common_pb2.ChunkingStrategy,
        attributes: Mapping[str, Attribute],
        param: str,
        at: str = "",
    ) -> None:
        """Refuse what `record` would store wrongly: bad settings (400, their fields below
        `at`), unknown files (404 naming `param`)."""
        strategy_of(strategy, at)
        check_attributes(attributes)
        if len(file_ids) > MAX_FILE_IDS:
            raise errors.invalid(
                f"Invalid '{param}': array too long. Expected an array with maximum length "
                f"{MAX_FILE_IDS}, but got an array with length {len(file_ids)} instead.",
                param,
                "array_above_max_length",
            )
        for file_id in file_ids:
            validation.required_id(file_id, param)
            if await self._store.get_file(file_id) is None:
                raise errors.no_such(param, file_id)

    async def record(
        self,
        vector_store_id: str,
        file_ids: Sequence[str],
        strategy: common_pb2.ChunkingStrategy,
        attributes: Mapping[str, Attribute],
    ) -> list[VectorStoreFile] | None:
        """Record checked files `in_progress` (those the store holds already stay as they are)
        and wake the worker; None if there is no such store."""
        files = new_files(vector_store_id, file_ids, strategy, attributes, now())
        stored = await self._store.add_vector_store_files(vector_store_id, files)
        if stored:
            self._wake()
        return stored

    def wake(self) -> None:
        """Have the ingestion worker look for files now (others were stored)."""
        self._wake()

    async def get(self, vector_store_id: str, file_id: str) -> VectorStoreFile:
        validation.required_id(vector_store_id, "vector_store_id")
        validation.required_id(file_id, "file_id")
        found = await self._store.get_vector_store_file(vector_store_id, file_id)
        if found is None:
            raise _missing(vector_store_id, file_id)
        return found

    async def list(
        self, request: vector_stores_pb2.ListVectorStoreFilesRequest
    ) -> vector_stores_pb2.ListVectorStoreFilesResponse:
        validation.required_id(request.vector_store_id, "vector_store_id")
        query = validation.page_query(
            request.limit if request.HasField("limit") else None,
            request.order,
            request.after,
            request.before,
        )
        if await self._store.get_vector_store(request.vector_store_id) is None:
            raise errors.no_such("vector_store_id", request.vector_store_id)
        try:
            page = await self._store.list_vector_store_files(
                request.vector_store_id, query, int(request.filter)
            )
        except CursorNotFound as exc:
            raise cursor_error(exc) from exc
        return list_response(vector_stores_pb2.ListVectorStoreFilesResponse.FromString, page)

    async def update(
        self, request: vector_stores_pb2.UpdateVectorStoreFileAttributesRequest
    ) -> VectorStoreFile:
        validation.required_id(request.vector_store_id, "vector_store_id")
        validation.required_id(request.file_id, "file_id")
        check_attributes(request.attributes)

        def mutate(current: VectorStoreFile) -> None:
            current.ClearField("attributes")
            for key, value in request.attributes.items():
                current.attributes[key].CopyFrom(value)

        updated = await self._store.update_vector_store_file(
            request.vector_store_id, request.file_id, mutate
        )
        if updated is None:
            raise _missing(request.vector_store_id, request.file_id)
        return updated

    async def delete(self, vector_store_id: str, file_id: str) -> common_pb2.DeletionStatus:
        validation.required_id(vector_store_id, "vector_store_id")
        validation.required_id(file_id, "file_id")
        if not await self._store.delete_vector_store_file(vector_store_id, file_id):
            raise _missing(vector_store_id, file_id)
        return common_pb2.DeletionStatus(id=file_id, deleted=True)

    async def content(
        self, vector_store_id: str, file_id: str
    ) -> vector_stores_pb2.VectorStoreFileContent:
        """Parsed again from the upload: the text is not stored beside its chunks, which
        overlap and so cannot be joined back into it."""
        found = await self.get(vector_store_id, file_id)
        content = vector_stores_pb2.VectorStoreFileContent()
        if found.status != vector_stores_pb2.VECTOR_STORE_FILE_STATUS_COMPLETED:
            return content
        upload = await self._store.get_file(file_id)
        if upload is None:
            return content
        try:
            async with self._blobs.open(file_id) as source:
                text = await asyncio.to_thread(extract_text, upload.filename, source)
        except ExtractionError:
            return content
        if text:
            content.texts.append(text)
        return content


def _missing(vector_store_id: str, file_id: str) -> errors.ApiError:
    return errors.not_found(
        f"No file found with id '{errors.shown(file_id)}' in vector store "
        f"'{errors.shown(vector_store_id)}'.",
        "file_id",
    )
