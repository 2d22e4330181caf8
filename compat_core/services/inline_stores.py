"""Vector stores made on the way: the `tool_resources.file_search.vector_stores` of a new
assistant or thread, and the store a thread gets for its messages' file_search attachments.

The services of assistants, threads, messages and runs ask `InlineStores` what to write; the
store writes it in the transaction of the object that names the stores
(`store.base.VectorStoreWrites`), so a create that fails leaves no store behind, and which
store a thread's attachments go to is decided while the thread is locked. Once it is stored,
`stored` wakes the ingestion worker, which processes the files as any store's.

Attachments for `code_interpreter` alone are only kept on their message, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from compat_core import validation
from compat_core.retrieval import expiry
from compat_core.services.vector_store_files import VectorStoreFiles, new_files
from compat_core.services.vector_stores import new_store
from compat_core.store.base import NewVectorStore, ThreadFiles, VectorStoreWrites
from compat_core.v1 import common_pb2, messages_pb2, vector_stores_pb2


class InlineStores:
    """Turns what a create request asks for into vector store writes, checked."""

    def __init__(self, files: VectorStoreFiles, wake: Callable[[], None]) -> None:
        self._files = files
        self._wake = wake

    async def writes(
        self,
        moment: int,
        resources: common_pb2.ToolResources | None = None,
        messages: Iterable[messages_pb2.MessageInput] = (),
        param: str = "tool_resources",
    ) -> VectorStoreWrites | None:
        """The writes of a create at `moment`: the stores `resources` asks to make (which it
        then names in `vector_store_ids` instead, changed in place; `param` is where it sits
        in the request) and the files `messages` attach for file_search. None if neither."""
        new = [] if resources is None else await self._new_stores(resources, param, moment)
        thread_files = _thread_files(messages, moment)
        if not new and thread_files is None:
            return None
        return VectorStoreWrites(moment=moment, new=new, thread_files=thread_files)

    def stored(self, writes: VectorStoreWrites | None) -> None:
        """Once `writes` are committed: start on their files."""
        if writes is None:
            return
        if writes.thread_files is not None or any(item.files for item in writes.new):
            self._wake()

    async def _new_stores(
        self, resources: common_pb2.ToolResources, param: str, moment: int
    ) -> list[NewVectorStore]:
        search = resources.file_search
        new = []
        for index, spec in enumerate(search.vector_stores):
            at = f"{param}.file_search.vector_stores[{index}]."
            validation.metadata(spec.metadata, f"{at}metadata")
            await self._files.check(
                spec.file_ids, spec.chunking_strategy, {}, f"{at}file_ids", at=at
            )
            store = new_store(moment, vector_stores_pb2.VectorStore(metadata=spec.metadata))
            files = new_files(store.id, spec.file_ids, spec.chunking_strategy, {}, moment)
            new.append(NewVectorStore(store, files))
        if new:
            del search.vector_stores[:]
            search.vector_store_ids.extend(item.store.id for item in new)
        return new


def _thread_files(messages: Iterable[messages_pb2.MessageInput], moment: int) -> ThreadFiles | None:
    """The files `messages` attach for file_search (their IDs were checked with the
    messages), with the store made for them if the thread has none."""
    file_ids = [
        attachment.file_id
        for message in messages
        for attachment in message.attachments
        if messages_pb2.ATTACHMENT_TOOL_FILE_SEARCH in attachment.tools
    ]
    if not file_ids:
        return None
    policy = vector_stores_pb2.VectorStore(expires_after=expiry.thread_store_policy())
    auto = common_pb2.ChunkingStrategy()
    return ThreadFiles(
        files=new_files("", file_ids, auto, {}, moment), fallback=new_store(moment, policy)
    )
