"""ThreadsService: conversations, created with their first messages in one transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from compat_core import ids, validation
from compat_core.services.inline_stores import InlineStores
from compat_core.services.messages import missing_thread, new_message
from compat_core.services.references import References
from compat_core.services.support import apply_mask, mask_paths, now
from compat_core.store.base import Store, VectorStoreWrites
from compat_core.v1 import common_pb2, messages_pb2, threads_pb2, threads_pb2_grpc

UPDATABLE = frozenset({"tool_resources", "metadata"})


@dataclass(frozen=True)
class NewThread:
    """A checked thread, not yet stored: its first messages and its vector store writes."""

    thread: threads_pb2.Thread
    messages: list[messages_pb2.Message]
    vector_stores: VectorStoreWrites | None


class ThreadsService(threads_pb2_grpc.ThreadsServiceServicer):
    """Deleting a thread takes its messages, runs and run steps with it (in the store), and
    then its code_interpreter session and scratch files in this core (`forget`): another
    core's end when they idle out."""

    def __init__(
        self,
        store: Store,
        references: References,
        inline: InlineStores,
        forget: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._references = references
        self._inline = inline
        self._forget = forget

    @property
    def inline(self) -> InlineStores:
        """What makes a thread's vector store writes: a new thread's stores, and the files a
        run's additional messages attach (the runs service stores those with the run)."""
        return self._inline

    async def build(
        self, request: threads_pb2.CreateThreadRequest, param_prefix: str = ""
    ) -> NewThread:
        """Check a create request and make the thread, its messages and its vector store
        writes, not yet stored.

        CreateThreadAndRun reuses this with `param_prefix="thread."`, so errors name the
        field as the client sent it.
        """
        validation.metadata(request.metadata, f"{param_prefix}metadata")
        resources_param = f"{param_prefix}tool_resources"
        validation.tool_resources(request.tool_resources, resources_param, inline=True)
        await self._references.check_tool_resources(request.tool_resources, resources_param)
        for index, message in enumerate(request.messages):
            where = f"{param_prefix}messages[{index}]."
            validation.message_input(message, where)
            await self._references.check_message(message, where)
        created_at = now()
        thread = threads_pb2.Thread(
            id=ids.new_id(ids.THREAD), created_at=created_at, metadata=request.metadata
        )
        if request.HasField("tool_resources"):
            thread.tool_resources.CopyFrom(request.tool_resources)
        writes = await self._inline.writes(
            created_at, thread.tool_resources, request.messages, resources_param
        )
        messages = [new_message(thread.id, m, created_at) for m in request.messages]
        return NewThread(thread, messages, writes)

    async def CreateThread(
        self, request: threads_pb2.CreateThreadRequest, context: Any
    ) -> threads_pb2.Thread:
        new = await self.build(request)
        await self._store.create_thread(new.thread, new.messages, new.vector_stores)
        self._inline.stored(new.vector_stores)
        return new.thread

    async def GetThread(
        self, request: threads_pb2.GetThreadRequest, context: Any
    ) -> threads_pb2.Thread:
        validation.required_id(request.thread_id, "thread_id")
        found = await self._store.get_thread(request.thread_id)
        if found is None:
            raise missing_thread(request.thread_id)
        return found

    async def UpdateThread(
        self, request: threads_pb2.UpdateThreadRequest, context: Any
    ) -> threads_pb2.Thread:
        thread_id = request.thread.id
        validation.required_id(thread_id, "thread_id")
        paths = mask_paths(request.update_mask, UPDATABLE)
        validation.metadata(request.thread.metadata)
        validation.tool_resources(request.thread.tool_resources)
        if "tool_resources" in paths:
            await self._references.check_tool_resources(request.thread.tool_resources)

        def mutate(current: threads_pb2.Thread) -> None:
            apply_mask(request.thread, current, paths)

        updated = await self._store.update_thread(thread_id, mutate)
        if updated is None:
            raise missing_thread(thread_id)
        return updated

    async def DeleteThread(
        self, request: threads_pb2.DeleteThreadRequest, context: Any
    ) -> common_pb2.DeletionStatus:
        validation.required_id(request.thread_id, "thread_id")
        if not await self._store.delete_thread(request.thread_id):
            raise missing_thread(request.thread_id)
        if self._forget is not None:
            await self._forget(request.thread_id)
        return common_pb2.DeletionStatus(id=request.thread_id, deleted=True)
