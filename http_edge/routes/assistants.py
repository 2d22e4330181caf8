"""`/v1/assistants`: one RPC per request, conversion in `convert.assistants`."""

from __future__ import annotations

from aiohttp import web

from compat_core.v1 import assistants_pb2
from http_edge.convert import assistants as convert
from http_edge.json_io import json_response, page_params, read_json_object
from http_edge.routes.context import core, rpc_metadata

routes = web.RouteTableDef()


@routes.post("/v1/assistants")
async def create_assistant(request: web.Request) -> web.Response:
    rpc = convert.create_request(await read_json_object(request))
    assistant = await core(request).assistants.CreateAssistant(rpc, metadata=rpc_metadata(request))
    return json_response(convert.assistant_out(assistant))


@routes.get("/v1/assistants")
async def list_assistants(request: web.Request) -> web.Response:
    rpc = convert.list_request(page_params(request.query))
    page = await core(request).assistants.ListAssistants(rpc, metadata=rpc_metadata(request))
    return json_response(convert.list_response_out(page))


@routes.get("/v1/assistants/{assistant_id}")
async def get_assistant(request: web.Request) -> web.Response:
    rpc = assistants_pb2.GetAssistantRequest(assistant_id=request.match_info["assistant_id"])
    assistant = await core(request).assistants.GetAssistant(rpc, metadata=rpc_metadata(request))
    return json_response(convert.assistant_out(assistant))


@routes.post("/v1/assistants/{assistant_id}")
async def update_assistant(request: web.Request) -> web.Response:
    rpc = convert.update_request(
        request.match_info["assistant_id"], await read_json_object(request)
    )
    assistant = await core(request).assistants.UpdateAssistant(rpc, metadata=rpc_metadata(request))
    return json_response(convert.assistant_out(assistant))


@routes.delete("/v1/assistants/{assistant_id}")
async def delete_assistant(request: web.Request) -> web.Response:
    rpc = assistants_pb2.DeleteAssistantRequest(assistant_id=request.match_info["assistant_id"])
    status = await core(request).assistants.DeleteAssistant(rpc, metadata=rpc_metadata(request))
    return json_response(convert.deleted_response_out(status))
