"""`/v1/threads/{thread_id}/messages`: a thread's messages."""

from __future__ import annotations

from aiohttp import web

from compat_core.v1 import messages_pb2
from http_edge.convert import messages as convert
from http_edge.json_io import json_response, page_params, read_json_object
from http_edge.routes.context import core, rpc_metadata

routes = web.RouteTableDef()


@routes.post("/v1/threads/{thread_id}/messages")
async def create_message(request: web.Request) -> web.Response:
    rpc = convert.create_request(request.match_info["thread_id"], await read_json_object(request))
    message = await core(request).messages.CreateMessage(rpc, metadata=rpc_metadata(request))
    return json_response(convert.message_out(message))


@routes.get("/v1/threads/{thread_id}/messages")
async def list_messages(request: web.Request) -> web.Response:
    query = request.query
    rpc = convert.list_request(
        request.match_info["thread_id"], page_params(query), query.get("run_id", "")
    )
    page = await core(request).messages.ListMessages(rpc, metadata=rpc_metadata(request))
    return json_response(convert.list_response_out(page))


@routes.get("/v1/threads/{thread_id}/messages/{message_id}")
async def get_message(request: web.Request) -> web.Response:
    match = request.match_info
    rpc = messages_pb2.GetMessageRequest(
        thread_id=match["thread_id"], message_id=match["message_id"]
    )
    message = await core(request).messages.GetMessage(rpc, metadata=rpc_metadata(request))
    return json_response(convert.message_out(message))


@routes.post("/v1/threads/{thread_id}/messages/{message_id}")
async def update_message(request: web.Request) -> web.Response:
    match = request.match_info
    rpc = convert.update_request(
        match["thread_id"], match["message_id"], await read_json_object(request)
    )
    message = await core(request).messages.UpdateMessage(rpc, metadata=rpc_metadata(request))
    return json_response(convert.message_out(message))


@routes.delete("/v1/threads/{thread_id}/messages/{message_id}")
async def delete_message(request: web.Request) -> web.Response:
    match = request.match_info
    rpc = messages_pb2.DeleteMessageRequest(
        thread_id=match["thread_id"], message_id=match["message_id"]
    )
    status = await core(request).messages.DeleteMessage(rpc, metadata=rpc_metadata(request))
    return json_response(convert.deleted_response_out(status))
