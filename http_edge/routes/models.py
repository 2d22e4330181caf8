"""`/v1/models`: model IDs contain `/` (`ollama/llama3.2:3b`), hence the `.+` pattern."""

from __future__ import annotations

from aiohttp import web

from compat_core.v1 import models_pb2
from http_edge.convert import models as convert
from http_edge.json_io import json_response
from http_edge.routes.context import core, rpc_metadata

routes = web.RouteTableDef()

_LIST_REQUEST = models_pb2.ListModelsRequest()


@routes.get("/v1/models")
async def list_models(request: web.Request) -> web.Response:
    models = await core(request).models.ListModels(_LIST_REQUEST, metadata=rpc_metadata(request))
    return json_response(convert.list_response_out(models))


# A model name may hold slashes (`ollama/llama3.2:3b`), so the pattern takes the rest of the
# path, newlines too (`.` would stop at one, and the path would miss every route).
_MODEL_PATH = r"/v1/models/{model:[\s\S]+}"


@routes.get(_MODEL_PATH)
async def get_model(request: web.Request) -> web.Response:
    rpc = models_pb2.GetModelRequest(model=request.match_info["model"])
    model = await core(request).models.GetModel(rpc, metadata=rpc_metadata(request))
    return json_response(convert.model_out(model))


@routes.delete(_MODEL_PATH)
async def delete_model(request: web.Request) -> web.Response:
    rpc = models_pb2.DeleteModelRequest(model=request.match_info["model"])
    status = await core(request).models.DeleteModel(rpc, metadata=rpc_metadata(request))
    return json_response(convert.deleted_response_out(status))
