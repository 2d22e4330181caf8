"""VectorStoresService: create, read, list, update, delete and search vector stores.

The stores themselves are checked here; their files are `VectorStoreFiles`' job, which
this servicer hands the file RPCs to, batches of files `VectorStoreFileBatches`', and
searching is `VectorStoreSearch`'s. A store's `file_counts`, `usage_bytes` and status are
kept by the store layer from its files, in the transaction that changes them.
"""

from __future__ import annotations

from typing import Any, Final

from compat_core import errors, ids, validation
from compat_core.retrieval import expiry
from compat_core.retrieval.embeddings import Embedder
from compat_core.services.support import apply_mask, cursor_error, list_response, mask_paths, now
from compat_core.services.vector_store_batches import VectorStoreFileBatches
from compat_core.services.vector_store_files import VectorStoreFiles
from compat_core.services.vector_store_search import VectorStoreSearch
from compat_core.store.base import CursorNotFound, Store
from compat_core.v1 import common_pb2, vector_stores_pb2, vector_stores_pb2_grpc

VectorStore = vector_stores_pb2.VectorStore

UPDATABLE: Final = frozenset({"name", "expires_after", "metadata"})
# OpenAI's bounds on `expires_after.days`.
MIN_DAYS: Final = 1
MAX_DAYS: Final = 365


class VectorStoresService(vector_stores_pb2_grpc.VectorStoresServiceServicer):
    """Checks happen here, storage in the store; changing a store marks it active, reading it
    does not (see `retrieval.expiry`)."""

    def __init__(
        self, store: Store, files: VectorStoreFiles, embedder: Embedder | None = None
    ) -> None:
        self._store = store
        self._files = files
        self._batches = VectorStoreFileBatches(store, files)
        self._search = VectorStoreSearch(store, embedder)

    async def CreateVectorStore(
        self, request: vector_stores_pb2.CreateVectorStoreRequest, context: Any
    ) -> VectorStore:
        given = request.vector_store
        _check(given)
        if given.HasField("description"):
            validation.max_length(given.description, validation.MAX_DESCRIPTION, "description")
        await self._files.check(request.file_ids, request.chunking_strategy, {}, "file_ids")
        store = new_store(now(), given)
        await self._store.create_vector_store(store)
        if request.file_ids:
            await self._files.record(store.id, request.file_ids, request.chunking_strategy, {})
            found = await self._store.get_vector_store(store.id)
            if found is not None:
                return found
        return store

    async def GetVectorStore(
        self, request: vector_stores_pb2.GetVectorStoreRequest, context: Any
    ) -> VectorStore:
        store_id = request.vector_store_id
        validation.required_id(store_id, "vector_store_id")
        found = await self._store.get_vector_store(store_id)
        if found is None:
            raise _missing(store_id)
        # Answered expired as soon as its time has passed; the sweep writes it (and drops
        # its chunks) on its next round.
        expiry.mark_expired(found, now())
        return found

    async def ListVectorStores(
        self, request: vector_stores_pb2.ListVectorStoresRequest, context: Any
    ) -> vector_stores_pb2.ListVectorStoresResponse:
        query = validation.page_query(
            request.limit if request.HasField("limit") else None,
            request.order,
            request.after,
            request.before,
        )
        try:
            page = await self._store.list_vector_stores(query)
        except CursorNotFound as exc:
            raise cursor_error(exc) from exc
        response = list_response(vector_stores_pb2.ListVectorStoresResponse.FromString, page)
        moment = now()
        for store in response.data:
            expiry.mark_expired(store, moment)
        return response

    async def UpdateVectorStore(
        self, request: vector_stores_pb2.UpdateVectorStoreRequest, context: Any
    ) -> VectorStore:
        store_id = request.vector_store.id
        validation.required_id(store_id, "vector_store_id")
        paths = mask_paths(request.update_mask, UPDATABLE)
        _check(request.vector_store)
        moment = now()

        def mutate(current: VectorStore) -> None:
            apply_mask(request.vector_store, current, paths)
            expiry.touch(current, moment)

        updated = await self._store.update_vector_store(store_id, mutate)
        if updated is None:
            raise _missing(store_id)
        expiry.mark_expired(updated, moment)
        return updated

    async def DeleteVectorStore(
        self, request: vector_stores_pb2.DeleteVectorStoreRequest, context: Any
    ) -> common_pb2.DeletionStatus:
        validation.required_id(request.vector_store_id, "vector_store_id")
        if not await self._store.delete_vector_store(request.vector_store_id):
            raise _missing(request.vector_store_id)
        return common_pb2.DeletionStatus(id=request.vector_store_id, deleted=True)

    async def CreateVectorStoreFile(
        self, request: vector_stores_pb2.CreateVectorStoreFileRequest, context: Any
    ) -> vector_stores_pb2.VectorStoreFile:
        validation.required_id(request.vector_store_id, "vector_store_id")
        validation.required_id(request.file_id, "file_id")
        await self._files.check(
            [request.file_id], request.chunking_strategy, request.attributes, "file_id"
        )
        added = await self._files.record(
            request.vector_store_id,
            [request.file_id],
            request.chunking_strategy,
            request.attributes,
        )
        if added is None:
            raise _missing(request.vector_store_id)
        return added[0]

    async def GetVectorStoreFile(
        self, request: vector_stores_pb2.GetVectorStoreFileRequest, context: Any
    ) -> vector_stores_pb2.VectorStoreFile:
        return await self._files.get(request.vector_store_id, request.file_id)

    async def ListVectorStoreFiles(
        self, request: vector_stores_pb2.ListVectorStoreFilesRequest, context: Any
    ) -> vector_stores_pb2.ListVectorStoreFilesResponse:
        return await self._files.list(request)

    async def UpdateVectorStoreFileAttributes(
        self, request: vector_stores_pb2.UpdateVectorStoreFileAttributesRequest, context: Any
    ) -> vector_stores_pb2.VectorStoreFile:
        return await self._files.update(request)

    async def DeleteVectorStoreFile(
        self, request: vector_stores_pb2.DeleteVectorStoreFileRequest, context: Any
    ) -> common_pb2.DeletionStatus:
        return await self._files.delete(request.vector_store_id, request.file_id)

    async def GetVectorStoreFileContent(
        self, request: vector_stores_pb2.GetVectorStoreFileContentRequest, context: Any
    ) -> vector_stores_pb2.VectorStoreFileContent:
        return await self._files.content(request.vector_store_id, request.file_id)

    async def CreateVectorStoreFileBatch(
        self, request: vector_stores_pb2.CreateVectorStoreFileBatchRequest, context: Any
    ) -> vector_stores_pb2.VectorStoreFileBatch:
        return await self._batches.create(request)

    async def GetVectorStoreFileBatch(
        self, request: vector_stores_pb2.GetVectorStoreFileBatchRequest, context: Any
    ) -> vector_stores_pb2.VectorStoreFileBatch:
        return await self._batches.get(request.vector_store_id, request.batch_id)

    async def CancelVectorStoreFileBatch(
        self, request: vector_stores_pb2.CancelVectorStoreFileBatchRequest, context: Any
    ) -> vector_stores_pb2.VectorStoreFileBatch:
        return await self._batches.cancel(request.vector_store_id, request.batch_id)

    async def ListVectorStoreFileBatchFiles(
        self, request: vector_stores_pb2.ListVectorStoreFileBatchFilesRequest, context: Any
    ) -> vector_stores_pb2.ListVectorStoreFilesResponse:
        return await self._batches.list_files(request)

    async def SearchVectorStore(
        self, request: vector_stores_pb2.SearchVectorStoreRequest, context: Any
    ) -> vector_stores_pb2.SearchVectorStoreResponse:
        return await self._search.search(request)


def new_store(created: int, given: VectorStore) -> VectorStore:
    """A new, empty store with what a client may set taken from `given` (checked), active
    from `created`."""
    store = VectorStore(
        id=ids.new_id(ids.VECTOR_STORE),
        created_at=created,
        name=given.name,
        metadata=given.metadata,
        status=vector_stores_pb2.VECTOR_STORE_STATUS_COMPLETED,
        last_active_at=created,
    )
    store.file_counts.SetInParent()
    if given.HasField("expires_after"):
        store.expires_after.CopyFrom(given.expires_after)
    if given.HasField("description"):
        store.description = given.description
    expiry.touch(store, created)
    return store


def _check(store: VectorStore) -> None:
    """The fields a client sets on create and update."""
    validation.max_length(store.name, validation.MAX_NAME, "name")
    validation.metadata(store.metadata)
    if store.HasField("expires_after"):
        policy = store.expires_after
        if policy.anchor != expiry.ANCHOR:
            raise errors.invalid(
                f"Invalid 'expires_after.anchor': expected '{expiry.ANCHOR}', but got "
                f"'{errors.shown(policy.anchor)}'.",
                "expires_after.anchor",
                "invalid_value",
            )
        if not MIN_DAYS <= policy.days <= MAX_DAYS:
            low = policy.days < MIN_DAYS
            bound = "below minimum" if low else "above maximum"
            raise errors.invalid(
                f"Invalid 'expires_after.days': integer {bound} value. Expected a value "
                f"between {MIN_DAYS} and {MAX_DAYS}, but got {policy.days} instead.",
                "expires_after.days",
                "integer_below_min_value" if low else "integer_above_max_value",
            )


def _missing(store_id: str) -> errors.ApiError:
    return errors.no_such("vector_store_id", store_id)
