"""FilesService: uploads streamed to disk in chunks, downloads streamed back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from compat_core import errors, ids, validation
from compat_core.services.support import cursor_error, list_response, now
from compat_core.store.base import CursorNotFound, Store
from compat_core.store.blobs import BlobStore, BlobTooLarge
from compat_core.v1 import common_pb2, files_pb2, files_pb2_grpc

PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
# Purposes only the server gives files (code_interpreter's outputs): listed, never uploaded.
SERVER_PURPOSES = ("assistants_output",)
MIN_EXPIRY_SECONDS = 3600
MAX_EXPIRY_SECONDS = 2_592_000
MAX_FILES_LIMIT = 10_000
DOWNLOAD_CHUNK = 256 * 1024


class FilesService(files_pb2_grpc.FilesServiceServicer):
    """The bytes go to the blob store first; the object is stored only once they are safe."""

    def __init__(self, store: Store, blobs: BlobStore, max_upload_bytes: int) -> None:
        self._store = store
        self._blobs = blobs
        self._max_upload_bytes = max_upload_bytes

    async def UploadFile(
        self, request_iterator: AsyncIterator[files_pb2.UploadFileRequest], context: Any
    ) -> files_pb2.File:
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("payload") != "metadata":
            raise errors.invalid(
                "The first message of an upload must carry the file's metadata.", "file"
            )
        meta = first.metadata
        _check_metadata(meta)
        file = files_pb2.File(
            id=ids.new_id(ids.FILE),
            created_at=now(),
            filename=meta.filename,
            purpose=meta.purpose,
            status=files_pb2.FILE_STATUS_PROCESSED,
        )
        if meta.HasField("expires_after_seconds"):
            file.expires_at = file.created_at + meta.expires_after_seconds

        async def chunks() -> AsyncIterator[bytes]:
            async for message in request_iterator:
                if message.WhichOneof("payload") != "chunk":
                    raise errors.invalid("Only the first upload message may carry metadata.")
                yield message.chunk

        try:
            file.bytes = await self._blobs.write(file.id, chunks(), self._max_upload_bytes)
        except BlobTooLarge as exc:
            limit_mb = self._max_upload_bytes // (1024 * 1024)
            raise errors.too_large(
                f"The file is larger than the {limit_mb} MB this server accepts.", "file"
            ) from exc
        try:
            await self._store.create_file(file)
        except BaseException:
            await self._blobs.delete(file.id)
            raise
        return file

    async def GetFile(self, request: files_pb2.GetFileRequest, context: Any) -> files_pb2.File:
        return await self._get(request.file_id)

    async def ListFiles(
        self, request: files_pb2.ListFilesRequest, context: Any
    ) -> files_pb2.ListFilesResponse:
        query = validation.page_query(
            request.limit if request.HasField("limit") else None,
            request.order,
            request.after,
            request.before,
            default_limit=MAX_FILES_LIMIT,
            max_limit=MAX_FILES_LIMIT,
        )
        if request.purpose and request.purpose not in (*PURPOSES, *SERVER_PURPOSES):
            # No file can have a purpose uploads refuse: the list is empty without asking.
            return files_pb2.ListFilesResponse()
        try:
            page = await self._store.list_files(query, request.purpose)
        except CursorNotFound as exc:
            raise cursor_error(exc) from exc
        return list_response(files_pb2.ListFilesResponse.FromString, page)

    async def DeleteFile(
        self, request: files_pb2.DeleteFileRequest, context: Any
    ) -> common_pb2.DeletionStatus:
        validation.required_id(request.file_id, "file_id")
        if not await self._store.delete_file(request.file_id):
            raise _missing(request.file_id)
        await self._blobs.delete(request.file_id)
        return common_pb2.DeletionStatus(id=request.file_id, deleted=True)

    async def DownloadFileContent(
        self, request: files_pb2.DownloadFileContentRequest, context: Any
    ) -> AsyncIterator[files_pb2.DownloadFileContentResponse]:
        file = await self._get(request.file_id)
        yield files_pb2.DownloadFileContentResponse(file=file)
        async for chunk in self._blobs.read(file.id, DOWNLOAD_CHUNK):
            yield files_pb2.DownloadFileContentResponse(chunk=chunk)

    async def _get(self, file_id: str) -> files_pb2.File:
        validation.required_id(file_id, "file_id")
        found = await self._store.get_file(file_id)
        if found is None:
            raise _missing(file_id)
        return found


def _check_metadata(meta: files_pb2.UploadFileMetadata) -> None:
    validation.file_name(meta.filename)
    if not meta.purpose:
        raise errors.invalid(
            "Missing required parameter: 'purpose'.", "purpose", "missing_required_parameter"
        )
    if meta.purpose not in PURPOSES:
        raise errors.invalid(
            f"Invalid 'purpose': {errors.shown(meta.purpose)!r}. "
            f"Expected one of {', '.join(PURPOSES)}.",
            "purpose",
            "invalid_value",
        )
    if meta.HasField("expires_after_seconds") and not (
        MIN_EXPIRY_SECONDS <= meta.expires_after_seconds <= MAX_EXPIRY_SECONDS
    ):
        raise errors.invalid(
            f"Invalid 'expires_after[seconds]': expected {MIN_EXPIRY_SECONDS} to "
            f"{MAX_EXPIRY_SECONDS}, got {meta.expires_after_seconds}.",
            "expires_after[seconds]",
        )


def _missing(file_id: str) -> errors.ApiError:
    return errors.no_such("file_id", file_id)
