"""`/v1/threads/{thread_id}`: create, read, update and delete threads."""

from __future__ import annotations

from aiohttp import web

from compat_core.v1 import threads_pb2
from http_edge.convert import threads as convert
from http_edge.json_io import json_response, read_json_object
from http_edge.routes.context import core, rpc_metadata

routes = web.RouteTableDef()


@routes.post("/v1/threads")
async def create_thread(request: web.Request) -> web.Response:
    rpc = convert.create_thread_in(await read_json_object(request))
    thread = await core(request).threads.CreateThread(rpc, metadata=rpc_metadata(request))
    return json_response(convert.thread_out(thread))


@routes.get("/v1/threads/{thread_id}")
async def get_thread(request: web.Request) -> web.Response:
    rpc = threads_pb2.GetThreadRequest(thread_id=request.match_info["thread_id"])
    thread = await core(request).threads.GetThread(rpc, metadata=rpc_metadata(request))
    return json_response(convert.thread_out(thread))


@routes.post("/v1/threads/{thread_id}")
async def update_thread(request: web.Request) -> web.Response:
    rpc = convert.update_request(request.match_info["thread_id"], await read_json_object(request))
    thread = await core(request).threads.UpdateThread(rpc, metadata=rpc_metadata(request))
    return json_response(convert.thread_out(thread))


@routes.delete("/v1/threads/{thread_id}")
async def delete_thread(request: web.Request) -> web.Response:
    rpc = threads_pb2.DeleteThreadRequest(thread_id=request.match_info["thread_id"])
    status = await core(request).threads.DeleteThread(rpc, metadata=rpc_metadata(request))
    return json_response(convert.deleted_response_out(status))
