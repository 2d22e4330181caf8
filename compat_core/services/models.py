"""ModelsService: what `model` strings this server can serve."""

from __future__ import annotations

from typing import Any

from compat_core import errors, validation
from compat_core.models import ModelRegistry
from compat_core.v1 import common_pb2, models_pb2, models_pb2_grpc


class ModelsService(models_pb2_grpc.ModelsServiceServicer):
    """Lists come from the providers, so a model pulled into Ollama shows up within
    `COMPAT_MODELS_CACHE_SECONDS` (see `compat_core.models`)."""

    def __init__(self, models: ModelRegistry) -> None:
        self._models = models

    async def ListModels(
        self, request: models_pb2.ListModelsRequest, context: Any
    ) -> models_pb2.ListModelsResponse:
        return models_pb2.ListModelsResponse(data=await self._models.list_models())

    async def GetModel(self, request: models_pb2.GetModelRequest, context: Any) -> models_pb2.Model:
        model = request.model
        if not model:
            raise errors.invalid(
                "Missing required parameter: 'model'.", "model", "missing_required_parameter"
            )
        if len(model) > validation.MAX_MODEL:
            # Longer than any model string can be: it names no model, as a missing one.
            raise errors.not_found(f"The model '{errors.shown(model)}' does not exist.", "model")
        return await self._models.get_model(model)

    async def DeleteModel(
        self, request: models_pb2.DeleteModelRequest, context: Any
    ) -> common_pb2.DeletionStatus:
        raise errors.permission_denied(
            f"The model '{errors.shown(request.model)}' belongs to its provider and cannot be "
            "deleted here."
        )
