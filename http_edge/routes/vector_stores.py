"""`/v1/vector_stores`: one RPC per request, conversion in `convert.vector_stores`.

The file batches of a store have routes of their own (`routes.vector_store_batches`).
"""

from __future__ import annotations

from aiohttp import web

from compat_core.v1 import vector_stores_pb2
from http_edge.convert import vector_stores as convert
from http_edge.json_io import json_response, page_params, read_json_object
from http_edge.routes.context import core, rpc_metadata

routes = web.RouteTableDef()


@routes.post("/v1/vector_stores")
async def create_vector_store(request: web.Request) -> web.Response:
    rpc = convert.create_request(await read_json_object(request))
    store = await core(request).vector_stores.CreateVectorStore(rpc, metadata=rpc_metadata(request))
    return json_response(convert.vector_store_out(store))


@routes.get("/v1/vector_stores")
async def list_vector_stores(request: web.Request) -> web.Response:
    rpc = convert.list_request(page_params(request.query))
    page = await core(request).vector_stores.ListVectorStores(rpc, metadata=rpc_metadata(request))
    return json_response(convert.list_response_out(page))


@routes.get("/v1/vector_stores/{vector_store_id}")
async def get_vector_store(request: web.Request) -> web.Response:
    rpc = vector_stores_pb2.GetVectorStoreRequest(
        vector_store_id=request.match_info["vector_store_id"]
    )
    store = await core(request).vector_stores.GetVectorStore(rpc, metadata=rpc_metadata(request))
    return json_response(convert.vector_store_out(store))


@routes.post("/v1/vector_stores/{vector_store_id}")
async def update_vector_store(request: web.Request) -> web.Response:
    rpc = convert.update_request(
        request.match_info["vector_store_id"], await read_json_object(request)
    )
    store = await core(request).vector_stores.UpdateVectorStore(rpc, metadata=rpc_metadata(request))
    return json_response(convert.vector_store_out(store))


@routes.delete("/v1/vector_stores/{vector_store_id}")
async def delete_vector_store(request: web.Request) -> web.Response:
    rpc = vector_stores_pb2.DeleteVectorStoreRequest(
        vector_store_id=request.match_info["vector_store_id"]
    )
    status = await core(request).vector_stores.DeleteVectorStore(
        rpc, metadata=rpc_metadata(request)
    )
    return json_response(convert.deleted_response_out(status))


_FILE = "/v1/vector_stores/{vector_store_id}/files/{file_id}"


def _ids(request: web.Request) -> tuple[str, str]:
    return request.match_info["vector_store_id"], request.match_info["file_id"]


@routes.post("/v1/vector_stores/{vector_store_id}/files")
async def create_vector_store_file(request: web.Request) -> web.Response:
    rpc = convert.file_create_request(
        request.match_info["vector_store_id"], await read_json_object(request)
    )
    stub = core(request).vector_stores
    created = await stub.CreateVectorStoreFile(rpc, metadata=rpc_metadata(request))
    return json_response(convert.file_out(created))


@routes.get("/v1/vector_stores/{vector_store_id}/files")
async def list_vector_store_files(request: web.Request) -> web.Response:
    query = request.query
    rpc = convert.file_list_request(
        request.match_info["vector_store_id"], page_params(query), query.get("filter")
    )
    page = await core(request).vector_stores.ListVectorStoreFiles(
        rpc, metadata=rpc_metadata(request)
    )
    return json_response(convert.file_list_out(page))


@routes.get(_FILE)
async def get_vector_store_file(request: web.Request) -> web.Response:
    store_id, file_id = _ids(request)
    rpc = vector_stores_pb2.GetVectorStoreFileRequest(vector_store_id=store_id, file_id=file_id)
    found = await core(request).vector_stores.GetVectorStoreFile(
        rpc, metadata=rpc_metadata(request)
    )
    return json_response(convert.file_out(found))


@routes.post(_FILE)
async def update_vector_store_file(request: web.Request) -> web.Response:
    store_id, file_id = _ids(request)
    rpc = convert.file_update_request(store_id, file_id, await read_json_object(request))
    updated = await core(request).vector_stores.UpdateVectorStoreFileAttributes(
        rpc, metadata=rpc_metadata(request)
    )
    return json_response(convert.file_out(updated))


@routes.delete(_FILE)
async def delete_vector_store_file(request: web.Request) -> web.Response:
    store_id, file_id = _ids(request)
    rpc = vector_stores_pb2.DeleteVectorStoreFileRequest(vector_store_id=store_id, file_id=file_id)
    status = await core(request).vector_stores.DeleteVectorStoreFile(
        rpc, metadata=rpc_metadata(request)
    )
    return json_response(convert.file_deleted_out(status))


@routes.get(_FILE + "/content")
async def get_vector_store_file_content(request: web.Request) -> web.Response:
    store_id, file_id = _ids(request)
    rpc = vector_stores_pb2.GetVectorStoreFileContentRequest(
        vector_store_id=store_id, file_id=file_id
    )
    content = await core(request).vector_stores.GetVectorStoreFileContent(
        rpc, metadata=rpc_metadata(request)
    )
    return json_response(convert.file_content_out(content))


@routes.post("/v1/vector_stores/{vector_store_id}/search")
async def search_vector_store(request: web.Request) -> web.Response:
    rpc = convert.search_request(
        request.match_info["vector_store_id"], await read_json_object(request)
    )
    page = await core(request).vector_stores.SearchVectorStore(rpc, metadata=rpc_metadata(request))
    return json_response(convert.search_out(page))
