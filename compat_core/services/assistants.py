"""AssistantsService: create, read, list, update and delete assistants."""

from __future__ import annotations

from typing import Any

from compat_core import errors, ids, validation
from compat_core.models import ModelRegistry
from compat_core.services.inline_stores import InlineStores
from compat_core.services.references import References
from compat_core.services.support import apply_mask, cursor_error, list_response, mask_paths, now
from compat_core.store.base import CursorNotFound, Store
from compat_core.v1 import (
    assistants_pb2,
    assistants_pb2_grpc,
    common_pb2,
)

UPDATABLE = frozenset(
    {
        "name",
        "description",
        "model",
        "instructions",
        "tools",
        "tool_resources",
        "metadata",
        "temperature",
        "top_p",
        "response_format",
        "reasoning_effort",
    }
)


class AssistantsService(assistants_pb2_grpc.AssistantsServiceServicer):
    """Assistants are plain configuration: checks happen here, storage in the store."""

    def __init__(
        self,
        store: Store,
        models: ModelRegistry,
        references: References,
        inline: InlineStores,
    ) -> None:
        self._store = store
        self._models = models
        self._references = references
        self._inline = inline

    async def CreateAssistant(
        self, request: assistants_pb2.CreateAssistantRequest, context: Any
    ) -> assistants_pb2.Assistant:
        assistant = assistants_pb2.Assistant()
        assistant.CopyFrom(request.assistant)
        self._check(assistant, creating=True)
        await self._references.check_tool_resources(assistant.tool_resources)
        assistant.id = ids.new_id(ids.ASSISTANT)
        assistant.created_at = now()
        writes = await self._inline.writes(assistant.created_at, assistant.tool_resources)
        _apply_defaults(assistant)
        await self._store.create_assistant(assistant, writes)
        self._inline.stored(writes)
        return assistant

    async def GetAssistant(
        self, request: assistants_pb2.GetAssistantRequest, context: Any
    ) -> assistants_pb2.Assistant:
        validation.required_id(request.assistant_id, "assistant_id")
        found = await self._store.get_assistant(request.assistant_id)
        if found is None:
            raise _missing(request.assistant_id)
        return found

    async def ListAssistants(
        self, request: assistants_pb2.ListAssistantsRequest, context: Any
    ) -> assistants_pb2.ListAssistantsResponse:
        query = validation.page_query(
            request.limit if request.HasField("limit") else None,
            request.order,
            request.after,
            request.before,
        )
        try:
            page = await self._store.list_assistants(query)
        except CursorNotFound as exc:
            raise cursor_error(exc) from exc
        return list_response(assistants_pb2.ListAssistantsResponse.FromString, page)

    async def UpdateAssistant(
        self, request: assistants_pb2.UpdateAssistantRequest, context: Any
    ) -> assistants_pb2.Assistant:
        assistant_id = request.assistant.id
        validation.required_id(assistant_id, "assistant_id")
        paths = mask_paths(request.update_mask, UPDATABLE)
        if "tool_resources" in paths:
            await self._references.check_tool_resources(request.assistant.tool_resources)

        def mutate(current: assistants_pb2.Assistant) -> None:
            apply_mask(request.assistant, current, paths)
            self._check(current, creating=False)
            _apply_defaults(current)

        updated = await self._store.update_assistant(assistant_id, mutate)
        if updated is None:
            raise _missing(assistant_id)
        return updated

    async def DeleteAssistant(
        self, request: assistants_pb2.DeleteAssistantRequest, context: Any
    ) -> common_pb2.DeletionStatus:
        validation.required_id(request.assistant_id, "assistant_id")
        if not await self._store.delete_assistant(request.assistant_id):
            raise _missing(request.assistant_id)
        return common_pb2.DeletionStatus(id=request.assistant_id, deleted=True)

    def _check(self, assistant: assistants_pb2.Assistant, *, creating: bool) -> None:
        """Vector stores are made inline only on create (`creating`)."""
        validation.model_name(assistant.model)
        self._models.resolve(assistant.model, "model")
        if assistant.HasField("name"):
            validation.max_length(assistant.name, validation.MAX_NAME, "name")
        if assistant.HasField("description"):
            validation.max_length(assistant.description, validation.MAX_DESCRIPTION, "description")
        if assistant.HasField("instructions"):
            validation.max_length(
                assistant.instructions, validation.MAX_INSTRUCTIONS, "instructions"
            )
        validation.tools(assistant.tools)
        validation.tool_resources(assistant.tool_resources, inline=creating)
        validation.metadata(assistant.metadata)
        validation.sampling(
            assistant.temperature if assistant.HasField("temperature") else None,
            assistant.top_p if assistant.HasField("top_p") else None,
        )
        if assistant.HasField("response_format"):
            validation.response_format(assistant.response_format)
        validation.reasoning_effort(
            assistant.reasoning_effort if assistant.HasField("reasoning_effort") else None
        )


def _apply_defaults(assistant: assistants_pb2.Assistant) -> None:
    """OpenAI answers temperature and top_p 1 and response_format `auto` when none were set."""
    if not assistant.HasField("temperature"):
        assistant.temperature = 1.0
    if not assistant.HasField("top_p"):
        assistant.top_p = 1.0
    if not assistant.HasField("response_format"):
        assistant.response_format.type = common_pb2.RESPONSE_FORMAT_TYPE_AUTO


def _missing(assistant_id: str) -> errors.ApiError:
    return errors.no_such("assistant_id", assistant_id)
