"""`/v1/vector_stores/{id}/file_batches`: one RPC per request, conversion in
`convert.vector_store_batches`."""

from __future__ import annotations

from aiohttp import web

from compat_core.v1 import vector_stores_pb2
from http_edge.convert import vector_store_batches as convert
from http_edge.convert.vector_stores import file_list_out
from http_edge.json_io import json_response, page_params, read_json_object
from http_edge.routes.context import core, rpc_metadata

routes = web.RouteTableDef()

_BATCH = "/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}"


def _ids(request: web.Request) -> tuple[str, str]:
    return request.match_info["vector_store_id"], request.match_info["batch_id"]


@routes.post("/v1/vector_stores/{vector_store_id}/file_batches")
async def create_file_batch(request: web.Request) -> web.Response:
    rpc = convert.create_request(
        request.match_info["vector_store_id"], await read_json_object(request)
    )
    stub = core(request).vector_stores
    batch = await stub.CreateVectorStoreFileBatch(rpc, metadata=rpc_metadata(request))
    return json_response(convert.batch_out(batch))


@routes.get(_BATCH)
async def get_file_batch(request: web.Request) -> web.Response:
    store_id, batch_id = _ids(request)
    rpc = vector_stores_pb2.GetVectorStoreFileBatchRequest(
        vector_store_id=store_id, batch_id=batch_id
    )
    stub = core(request).vector_stores
    batch = await stub.GetVectorStoreFileBatch(rpc, metadata=rpc_metadata(request))
    return json_response(convert.batch_out(batch))


@routes.post(_BATCH + "/cancel")
async def cancel_file_batch(request: web.Request) -> web.Response:
    store_id, batch_id = _ids(request)
    rpc = vector_stores_pb2.CancelVectorStoreFileBatchRequest(
        vector_store_id=store_id, batch_id=batch_id
    )
    stub = core(request).vector_stores
    batch = await stub.CancelVectorStoreFileBatch(rpc, metadata=rpc_metadata(request))
    return json_response(convert.batch_out(batch))


@routes.get(_BATCH + "/files")
async def list_file_batch_files(request: web.Request) -> web.Response:
    store_id, batch_id = _ids(request)
    query = request.query
    rpc = convert.files_list_request(store_id, batch_id, page_params(query), query.get("filter"))
    stub = core(request).vector_stores
    page = await stub.ListVectorStoreFileBatchFiles(rpc, metadata=rpc_metadata(request))
    return json_response(file_list_out(page))
