"""Models: `compat_core.v1.Model` → OpenAI's `model` JSON."""

from __future__ import annotations

from compat_core.v1 import common_pb2, models_pb2
from http_edge.convert.common import Json, deleted_out


def model_out(m: models_pb2.Model) -> Json:
    return {"id": m.id, "object": "model", "created": m.created, "owned_by": m.owned_by}


def list_response_out(response: models_pb2.ListModelsResponse) -> Json:
    """OpenAI's model list has no paging fields, only `object` and `data`."""
    return {"object": "list", "data": [model_out(m) for m in response.data]}


def deleted_response_out(status: common_pb2.DeletionStatus) -> Json:
    # OpenAI's schema leaves `object` free; its API answers "model".
    return deleted_out(status, "model")
