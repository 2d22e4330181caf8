"""MessagesService: the messages of a thread."""

from __future__ import annotations

from typing import Any

from compat_core import errors, ids, validation
from compat_core.services.inline_stores import InlineStores
from compat_core.services.references import References
from compat_core.services.support import apply_mask, cursor_error, list_response, mask_paths, now
from compat_core.store.base import CursorNotFound, Store, ThreadBusy
from compat_core.v1 import common_pb2, messages_pb2, messages_pb2_grpc

UPDATABLE = frozenset({"metadata"})


def new_message(
    thread_id: str, message: messages_pb2.MessageInput, created_at: int
) -> messages_pb2.Message:
    """A stored message from a client's input: complete at once, as OpenAI answers it."""
    return messages_pb2.Message(
        id=ids.new_id(ids.MESSAGE),
        created_at=created_at,
        thread_id=thread_id,
        status=messages_pb2.MESSAGE_STATUS_COMPLETED,
        role=message.role,
        content=message.content,
        attachments=message.attachments,
        metadata=message.metadata,
    )


class MessagesService(messages_pb2_grpc.MessagesServiceServicer):
    """Messages are appended to their thread in the order the store commits them; files they
    attach for file_search go to the thread's vector store in the same transaction."""

    def __init__(self, store: Store, references: References, inline: InlineStores) -> None:
        self._store = store
        self._references = references
        self._inline = inline

    async def CreateMessage(
        self, request: messages_pb2.CreateMessageRequest, context: Any
    ) -> messages_pb2.Message:
        validation.required_id(request.thread_id, "thread_id")
        validation.message_input(request.message, "")
        await self._references.check_message(request.message, "")
        message = new_message(request.thread_id, request.message, now())
        writes = await self._inline.writes(message.created_at, messages=[request.message])
        try:
            created = await self._store.create_message(message, writes)
        except ThreadBusy as exc:
            raise errors.precondition(
                f"Can't add messages to {exc.thread_id} while a run {exc.run_id} is active.",
                "thread_id",
            ) from exc
        if not created:
            raise missing_thread(request.thread_id)
        self._inline.stored(writes)
        return message

    async def GetMessage(
        self, request: messages_pb2.GetMessageRequest, context: Any
    ) -> messages_pb2.Message:
        validation.required_id(request.thread_id, "thread_id")
        validation.required_id(request.message_id, "message_id")
        found = await self._store.get_message(request.thread_id, request.message_id)
        if found is None:
            raise await self._missing(request.thread_id, request.message_id)
        return found

    async def ListMessages(
        self, request: messages_pb2.ListMessagesRequest, context: Any
    ) -> messages_pb2.ListMessagesResponse:
        validation.required_id(request.thread_id, "thread_id")
        query = validation.page_query(
            request.limit if request.HasField("limit") else None,
            request.order,
            request.after,
            request.before,
        )
        if request.run_id and not ids.well_formed(request.run_id):
            # A filter that could not be a run's ID matches no message (see `ids`).
            if await self._store.get_thread(request.thread_id) is None:
                raise missing_thread(request.thread_id)
            return messages_pb2.ListMessagesResponse()
        try:
            page = await self._store.list_messages(request.thread_id, query, request.run_id)
        except CursorNotFound as exc:
            raise cursor_error(exc) from exc
        if page is None:
            raise missing_thread(request.thread_id)
        return list_response(messages_pb2.ListMessagesResponse.FromString, page)

    async def UpdateMessage(
        self, request: messages_pb2.UpdateMessageRequest, context: Any
    ) -> messages_pb2.Message:
        thread_id, message_id = request.message.thread_id, request.message.id
        validation.required_id(thread_id, "thread_id")
        validation.required_id(message_id, "message_id")
        paths = mask_paths(request.update_mask, UPDATABLE)
        validation.metadata(request.message.metadata)

        def mutate(current: messages_pb2.Message) -> None:
            apply_mask(request.message, current, paths)

        updated = await self._store.update_message(thread_id, message_id, mutate)
        if updated is None:
            raise await self._missing(thread_id, message_id)
        return updated

    async def DeleteMessage(
        self, request: messages_pb2.DeleteMessageRequest, context: Any
    ) -> common_pb2.DeletionStatus:
        validation.required_id(request.thread_id, "thread_id")
        validation.required_id(request.message_id, "message_id")
        if not await self._store.delete_message(request.thread_id, request.message_id):
            raise await self._missing(request.thread_id, request.message_id)
        return common_pb2.DeletionStatus(id=request.message_id, deleted=True)

    async def _missing(self, thread_id: str, message_id: str) -> errors.ApiError:
        """Say which ID is wrong: the thread's, or the message's within it."""
        if await self._store.get_thread(thread_id) is None:
            return missing_thread(thread_id)
        return errors.not_found(
            f"No message found with id '{errors.shown(message_id)}' in thread '{thread_id}'.",
            "message_id",
        )


def missing_thread(thread_id: str) -> errors.ApiError:
    """The 404 for a thread ID that names nothing."""
    return errors.no_such("thread_id", thread_id)
