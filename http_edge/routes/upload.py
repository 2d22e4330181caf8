"""A multipart `POST /v1/files` body streamed into one `UploadFile` call.

`UploadFile` needs the file's purpose before its bytes. OpenAI's SDKs send the form fields
first, so the file part goes straight to the core as it arrives; a form that puts the file
before its `purpose` has the file spooled to a temporary file first. Either way at most about
one chunk of the file is in memory, and reading stops at `max_upload_bytes` with a 413.

A form that aiohttp's reader cannot parse (a malformed part header, a missing boundary, a
body cut short) is the client's mistake: a 400, wherever in the body the reader meets it.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Coroutine
from typing import IO, TYPE_CHECKING, Any, Final

import grpc
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from compat_core.errors import REQUEST_TOO_LARGE
from compat_core.v1 import files_pb2
from http_edge.convert import files as convert
from http_edge.errors import HttpError, missing, unknown_argument
from http_edge.json_io import refuse_content_coding
from http_edge.routes.context import Metadata

if TYPE_CHECKING:
    from compat_core.v1.files_pb2_grpc import FilesServiceAsyncStub

CHUNK_BYTES: Final = 1024 * 1024
_MAX_FIELD_BYTES: Final = 64 * 1024
_FIELDS: Final = frozenset({"purpose", convert.ANCHOR_FIELD, convert.SECONDS_FIELD})
# How much of the reader's complaint the 400 quotes.
_MAX_REASON: Final = 200


def too_large(limit: int) -> HttpError:
    return HttpError(
        413,
        f"The file is larger than the server accepts ({limit} bytes).",
        param="file",
        code=REQUEST_TOO_LARGE,
    )


async def upload_form(
    request: web.Request, stub: FilesServiceAsyncStub, metadata: Metadata, limit: int
) -> files_pb2.File:
    """Stream the form's `file` to the core; the stored file's object once it is done."""
    refuse_content_coding(request)
    try:
        return await _upload(request, stub, metadata, limit)
    except (ValueError, HttpProcessingError, web.RequestPayloadError) as err:
        raise _unparsable(err) from None


def _unparsable(err: Exception) -> HttpError:
    # aiohttp's multipart reader reports a malformed form as ValueError, a malformed part
    # header as one of its HTTP parser's errors, a broken body as RequestPayloadError.
    reason = err.message if isinstance(err, HttpProcessingError) else str(err)
    return HttpError(400, f"The multipart body could not be parsed: {reason.strip()[:_MAX_REASON]}")


async def _upload(
    request: web.Request, stub: FilesServiceAsyncStub, metadata: Metadata, limit: int
) -> files_pb2.File:
    reader = await request.multipart()
    fields: dict[str, str] = {}
    upload: _Upload | None = None
    spool: IO[bytes] | None = None
    filename = ""
    try:
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise HttpError(400, "Nested multipart bodies are not supported.")
            name = part.name
            if not name:
                raise HttpError(
                    400,
                    "Each part of the form needs a name "
                    "(Content-Disposition: form-data; name=...).",
                )
            if name == "file":
                if upload is not None or spool is not None:
                    raise HttpError(400, "Only one 'file' part is allowed.", param="file")
                filename = part.filename or "file"
                if "purpose" in fields:
                    upload = _Upload(stub, metadata)
                    await upload.send(_first_message(filename, fields))
                    async for chunk in _chunks(part, limit):
                        await upload.send(files_pb2.UploadFileRequest(chunk=chunk))
                else:
                    spool = await _spool(part, limit)
            elif name in _FIELDS:
                if upload is not None:
                    # The metadata went out before the file's bytes; it cannot change now.
                    raise HttpError(
                        400, f"The '{name}' field must come before the 'file' part.", param=name
                    )
                fields[name] = await _read_field(part, name)
            else:
                raise unknown_argument(name)
        if upload is None and spool is None:
            raise missing("file")
        if not fields.get("purpose"):
            raise missing("purpose")
        if upload is None:
            assert spool is not None
            upload = _Upload(stub, metadata)
            await upload.send(_first_message(filename, fields))
            while chunk := await asyncio.to_thread(spool.read, CHUNK_BYTES):
                await upload.send(files_pb2.UploadFileRequest(chunk=chunk))
        return await upload.finish()
    except BaseException:
        if upload is not None:
            upload.cancel()
        raise
    finally:
        if spool is not None:
            await asyncio.to_thread(spool.close)


def _first_message(filename: str, fields: dict[str, str]) -> files_pb2.UploadFileRequest:
    expires = convert.expires_after_in(
        fields.get(convert.ANCHOR_FIELD), fields.get(convert.SECONDS_FIELD)
    )
    return convert.upload_metadata(filename, fields["purpose"], expires)


async def _read_field(part: BodyPartReader, name: str) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(_MAX_FIELD_BYTES):
        data += chunk
        if len(data) > _MAX_FIELD_BYTES:
            raise HttpError(400, f"The '{name}' field is too long.", param=name)
    try:
        return data.decode(part.get_charset("utf-8"))
    except (UnicodeDecodeError, LookupError):
        raise HttpError(400, f"The '{name}' field is not valid text.", param=name) from None


async def _chunks(part: BodyPartReader, limit: int) -> AsyncIterator[bytes]:
    """The part's bytes regrouped into messages of `CHUNK_BYTES` (the last one shorter)."""
    buffer = bytearray()
    total = 0
    while chunk := await part.read_chunk(CHUNK_BYTES):
        total += len(chunk)
        if total > limit:
            raise too_large(limit)
        buffer += chunk
        if len(buffer) >= CHUNK_BYTES:
            yield bytes(buffer[:CHUNK_BYTES])
            del buffer[:CHUNK_BYTES]
    if buffer:
        yield bytes(buffer)


async def _spool(part: BodyPartReader, limit: int) -> IO[bytes]:
    spool = await asyncio.to_thread(tempfile.TemporaryFile)
    try:
        async for chunk in _chunks(part, limit):
            await asyncio.to_thread(spool.write, chunk)
        await asyncio.to_thread(spool.seek, 0)
    except BaseException:
        await asyncio.to_thread(spool.close)
        raise
    return spool


class _Upload:
    """One `UploadFile` call that reports the core's status even when a write raced it.

    The core may end the call before the upload ends: a key it refuses, a purpose it
    rejects, a file over its limit. A write in flight as that status arrives fails with a
    local INTERNAL error, and grpc.aio then keeps that error as the call's status in place
    of the core's. A done callback runs the moment the status is first set, so it reads the
    core's status before anything can replace it.
    """

    __slots__ = ("_call", "_ended")

    def __init__(self, stub: FilesServiceAsyncStub, metadata: Metadata) -> None:
        self._call: Any = stub.UploadFile(metadata=metadata)
        self._ended: grpc.aio.AioRpcError | None = None
        self._call.add_done_callback(self._on_done)

    def _on_done(self, call: Any) -> None:
        code = _settled(call.code())
        if code is None or code in (grpc.StatusCode.OK, grpc.StatusCode.CANCELLED):
            return
        trailing = _settled(call.trailing_metadata())
        self._ended = grpc.aio.AioRpcError(
            code,
            grpc.aio.Metadata(),
            trailing if trailing is not None else grpc.aio.Metadata(),
            _settled(call.details()),
        )

    async def send(self, message: files_pb2.UploadFileRequest) -> None:
        try:
            await self._call.write(message)
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            raise await self._failure() from None

    async def finish(self) -> files_pb2.File:
        try:
            await self._call.done_writing()
            stored: files_pb2.File = await self._call
        except grpc.aio.AioRpcError:
            raise await self._failure() from None
        return stored

    def cancel(self) -> None:
        self._call.cancel()

    async def _failure(self) -> grpc.aio.AioRpcError:
        if self._ended is not None and self._ended.code() != grpc.StatusCode.INTERNAL:
            return self._ended
        try:
            await self._call
        except grpc.aio.AioRpcError as err:
            return err
        return grpc.aio.AioRpcError(
            grpc.StatusCode.INTERNAL,
            grpc.aio.Metadata(),
            grpc.aio.Metadata(),
            "UploadFile ended before the upload did.",
        )


def _settled(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """The result of a call's status accessor once the call has ended.

    They are coroutines that finish without suspending when the status is set, which it is
    inside a done callback; anything else counts as unknown.
    """
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    return None
