"""`/v1/files`: uploads (streamed by `routes.upload`), metadata, and downloads streamed out
of `DownloadFileContent` without holding the file in memory."""

from __future__ import annotations

import logging
from typing import Final
from urllib.parse import quote

import grpc
from aiohttp import web

from compat_core.v1 import files_pb2
from http_edge.convert import files as convert
from http_edge.errors import HttpError
from http_edge.json_io import json_response, page_params
from http_edge.routes.context import SETTINGS, core, prepare_stream, rpc_metadata
from http_edge.routes.upload import too_large, upload_form

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()

# Room for the form's boundaries, part headers and small fields around the file itself.
_FORM_OVERHEAD: Final = 1024 * 1024


@routes.post("/v1/files")
async def upload_file(request: web.Request) -> web.Response:
    limit = request.app[SETTINGS].max_upload_bytes
    if not request.content_type.startswith("multipart/form-data"):
        raise HttpError(
            400,
            "The request body must be multipart/form-data with a 'file' part.",
            param="file",
        )
    if request.content_length is not None and request.content_length > limit + _FORM_OVERHEAD:
        raise too_large(limit)
    stored = await upload_form(request, core(request).files, rpc_metadata(request), limit)
    return json_response(convert.file_out(stored))


@routes.get("/v1/files")
async def list_files(request: web.Request) -> web.Response:
    query = request.query
    rpc = convert.list_request(page_params(query), query.get("purpose", ""))
    page = await core(request).files.ListFiles(rpc, metadata=rpc_metadata(request))
    return json_response(convert.list_response_out(page))


@routes.get("/v1/files/{file_id}")
async def get_file(request: web.Request) -> web.Response:
    rpc = files_pb2.GetFileRequest(file_id=request.match_info["file_id"])
    stored = await core(request).files.GetFile(rpc, metadata=rpc_metadata(request))
    return json_response(convert.file_out(stored))


@routes.delete("/v1/files/{file_id}")
async def delete_file(request: web.Request) -> web.Response:
    rpc = files_pb2.DeleteFileRequest(file_id=request.match_info["file_id"])
    status = await core(request).files.DeleteFile(rpc, metadata=rpc_metadata(request))
    return json_response(convert.deleted_response_out(status))


@routes.get("/v1/files/{file_id}/content")
async def download_file(request: web.Request) -> web.StreamResponse:
    """The first message names the file, so a missing file is still a JSON 404 and the
    length is known before the first byte is sent."""
    rpc = files_pb2.DownloadFileContentRequest(file_id=request.match_info["file_id"])
    call = core(request).files.DownloadFileContent(rpc, metadata=rpc_metadata(request))
    try:
        first = await call.read()
    except BaseException:
        call.cancel()
        raise
    if first is grpc.aio.EOF or first.WhichOneof("payload") != "file":
        call.cancel()
        raise RuntimeError("DownloadFileContent did not start with the file")
    stored = first.file
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": content_disposition(stored.filename),
        }
    )
    response.content_length = stored.bytes
    await prepare_stream(request, response)
    try:
        while (message := await call.read()) is not grpc.aio.EOF:
            if message.WhichOneof("payload") == "chunk":
                await response.write(message.chunk)
        await response.write_eof()
    except grpc.aio.AioRpcError as err:
        # The status line is sent: closing short of Content-Length tells the client.
        logger.warning("download of %s broke: %s", stored.id, err.code().name)
        response.force_close()
    except ConnectionError:
        logger.debug("client left the download of %s", stored.id)
    except Exception:
        # Too late for a JSON error: cut the body short so the client sees the failure.
        logger.exception("download of %s failed", stored.id)
        response.force_close()
    finally:
        call.cancel()
    return response


def content_disposition(filename: str) -> str:
    """`attachment` with the name quoted safely, and RFC 6266's UTF-8 form when needed."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename
    )
    if fallback == filename:
        return f'attachment; filename="{filename}"'
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
