"""Checks that the IDs a request refers to (files, vector stores) name real objects.

An assistant or message that points at a missing file would only fail later, inside a run,
far from the mistake; OpenAI rejects it at once, and so do we.
"""

from __future__ import annotations

from compat_core import errors, ids
from compat_core.store.base import Store
from compat_core.v1 import common_pb2, messages_pb2


class References:
    """Looks up referenced objects in the store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def check_file(self, file_id: str, param: str) -> None:
        # An ID that could not be one names nothing: no store is asked (see `ids`).
        if not ids.well_formed(file_id) or await self._store.get_file(file_id) is None:
            raise errors.not_found(f"No file found with id '{errors.shown(file_id)}'.", param)

    async def check_tool_resources(
        self, resources: common_pb2.ToolResources, param: str = "tool_resources"
    ) -> None:
        for index, file_id in enumerate(resources.code_interpreter.file_ids):
            await self.check_file(file_id, f"{param}.code_interpreter.file_ids[{index}]")
        for index, store_id in enumerate(resources.file_search.vector_store_ids):
            await self.check_vector_store(
                store_id, f"{param}.file_search.vector_store_ids[{index}]"
            )

    async def check_vector_store(self, store_id: str, param: str) -> None:
        if not ids.well_formed(store_id) or await self._store.get_vector_store(store_id) is None:
            raise errors.not_found(
                f"No vector store found with id '{errors.shown(store_id)}'.", param
            )

    async def check_message(self, message: messages_pb2.MessageInput, param: str) -> None:
        for index, part in enumerate(message.content):
            if part.WhichOneof("part") == "image_file":
                await self.check_file(
                    part.image_file.file_id, f"{param}content[{index}].image_file.file_id"
                )
        for index, attachment in enumerate(message.attachments):
            await self.check_file(attachment.file_id, f"{param}attachments[{index}].file_id")
