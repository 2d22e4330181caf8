"""The code_interpreter hosted tool: the model's Python runs in the thread's sandboxed session.

The model is offered a `code_interpreter(code)` function. A call runs the code in the session
of the run's thread (`compat_core.sandbox`: one stateful interpreter per thread, kept between
calls and runs until it idles out), with the thread's files under `/mnt/data`: those of the
assistant (or the run's own tool resources), of the thread, and of messages that attached them
for code_interpreter. Each file is placed once per session, so the code may change it.

What the call produced becomes the step's `CodeInterpreterCall`: the printed text as a `logs`
output, each image shown as an `image` output (a stored PNG), and each file written under
`/mnt/data` as a stored file of purpose `assistants_output` (in `files`, the server's own
field). The reply after the call begins with the images as `image_file` parts, and its
`sandbox:/mnt/data/…` links to written files become `file_path` annotations. A later model
call of the run is shown the call again from those stored fields alone: code never runs twice.

The code streams as it is written: each delta of the model's arguments shows the code's next
piece (`code_interpreter.input`), and once the call ran a last delta shows its outputs, as
OpenAI streamed them and both SDKs' helpers report them.

Errors in the code are its output (the traceback as logs), not failures of the run; a run
fails only when this server cannot run code at all (no sandbox), and says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import AsyncIterator, Sequence
from typing import Any, Final

import jiter
import orjson

from compat_core import ids
from compat_core.engine.code_sessions import CodeSessions
from compat_core.engine.hosted import HostedCall, HostedTool, ToolFailure, tool_resources
from compat_core.engine.sandbox_links import PREFIX, SandboxLinkAnnotator
from compat_core.sandbox import files as session_files
from compat_core.sandbox.base import MNT_DATA, SandboxUnavailable, Session
from compat_core.store.base import Store
from compat_core.store.blobs import BlobStore
from compat_core.v1 import common_pb2, files_pb2, messages_pb2, runs_pb2

OUTPUT_PURPOSE: Final = "assistants_output"
MAX_FILES_PER_CALL: Final = 20
"""Written files kept from one call, at most (the first in path order); the rest are named in
the logs as not kept."""

DESCRIPTION: Final = (
    "Run Python code in a stateful Jupyter session and see its output. Variables, imports and "
    "files stay between calls in this conversation. The files the user provided are in "
    f"{MNT_DATA} (list them with os.listdir('{MNT_DATA}')). Save files for the user under "
    f"{MNT_DATA} and link them in your answer as {PREFIX}<name>. Figures you show (plt.show()) "
    "are shown to the user. There is no internet access; numpy, pandas and matplotlib are "
    "installed. Print what you need to see."
)
PARAMETERS: Final = {
    "type": "object",
    "properties": {"code": {"type": "string", "description": "The Python code to run."}},
    "required": ["code"],
}


class CodeInterpreter(HostedTool):
    """The `code_interpreter` tool, running code in the core's `sessions`; `max_file_bytes`
    bounds each written file kept (the server's upload limit)."""

    kind = "code_interpreter"

    def __init__(self, sessions: CodeSessions, blobs: BlobStore, max_file_bytes: int) -> None:
        self._sessions = sessions
        self._blobs = blobs
        self._max_file_bytes = max_file_bytes
        # Per live session: the thread's files placed in its /mnt/data (file ID → name). A
        # new session (the last one idled out, died or was evicted) gets them placed again.
        self._placed: weakref.WeakKeyDictionary[Session, dict[str, str]] = (
            weakref.WeakKeyDictionary()
        )

    def function(self, tool: common_pb2.Tool) -> dict[str, Any]:
        return {"name": self.kind, "description": DESCRIPTION, "parameters": PARAMETERS}

    def announce(self, piece: runs_pb2.ToolCall) -> None:
        piece.code_interpreter.SetInParent()

    def stream(self, before: str, after: str, piece: runs_pb2.ToolCall) -> bool:
        shown, now_code = code_so_far(before), code_so_far(after)
        if len(now_code) <= len(shown) or not now_code.startswith(shown):
            return False
        piece.code_interpreter.input = now_code[len(shown) :]
        return True

    def conclude(self, call: runs_pb2.ToolCall, piece: runs_pb2.ToolCall) -> bool:
        piece.code_interpreter.outputs.extend(call.code_interpreter.outputs)
        return True

    async def execute(self, hosted: HostedCall) -> None:
        store, run, call = hosted.store, hosted.run, hosted.call
        # Setting this member of the oneof clears the model's function call.
        call.code_interpreter.CopyFrom(
            runs_pb2.CodeInterpreterCall(input=code_so_far(call.function.arguments))
        )
        details = call.code_interpreter
        pool = self._sessions.pool
        if pool is None:
            raise ToolFailure(
                "server_error",
                f"code_interpreter cannot run code on this server: {self._sessions.unavailable}",
            )
        notes: list[str] = []
        async with contextlib.AsyncExitStack() as held:
            try:
                # Starting a session can fail: all sessions busy, or the sandbox broke since.
                lease = await held.enter_async_context(pool.lease(run.thread_id))
            except SandboxUnavailable as exc:
                raise ToolFailure("server_error", f"code_interpreter: {exc}") from exc
            session = lease.session
            await self._place_inputs(store, run, session, notes)
            before = await asyncio.to_thread(session_files.scan, session.data_dir)
            result = await session.execute(details.input)
            after = await asyncio.to_thread(session_files.scan, session.data_dir)
            changed = session_files.written(before, after)
            for path in changed[MAX_FILES_PER_CALL:]:
                notes.append(
                    f"{MNT_DATA}/{path} was not kept: a call keeps at most "
                    f"{MAX_FILES_PER_CALL} files."
                )
            for path in changed[:MAX_FILES_PER_CALL]:
                try:
                    file_id = await self._keep(
                        store,
                        path.rsplit("/", 1)[-1],
                        session_files.read(session.data_dir, path, self._max_file_bytes),
                    )
                except OSError as exc:
                    notes.append(f"{MNT_DATA}/{path} was not kept: {exc}")
                    continue
                details.files.add(path=path, file_id=file_id)
        logs = result.logs + "".join(f"\n[{note}]" for note in notes)
        if logs:
            details.outputs.add(logs=logs)
        for number, png in enumerate(result.images):
            file_id = await self._keep(store, f"{call.id}-{number}.png", _chunks(png))
            details.outputs.add(image_file_id=file_id)

    def replay(self, call: runs_pb2.ToolCall, ordinal: int) -> tuple[str, str]:
        details = call.code_interpreter
        arguments = orjson.dumps({"code": details.input}).decode()
        shown = [output.logs for output in details.outputs if output.WhichOneof("kind") == "logs"]
        shown.extend(
            f"[an image was shown to the user ({output.image_file_id})]"
            for output in details.outputs
            if output.WhichOneof("kind") == "image_file_id"
        )
        shown.extend(f"[file written: {PREFIX}{file.path}]" for file in details.files)
        return arguments, "\n".join(shown) or "[the code ran and printed nothing]"

    def annotator(self, calls: Sequence[runs_pb2.ToolCall]) -> SandboxLinkAnnotator | None:
        # In call order, so a path written twice links to the newer file.
        files = {f.path: f.file_id for call in calls for f in call.code_interpreter.files}
        return SandboxLinkAnnotator(files) if files else None

    def reply_parts(self, calls: Sequence[runs_pb2.ToolCall]) -> list[messages_pb2.MessageContent]:
        return [
            messages_pb2.MessageContent(
                image_file=messages_pb2.ImageFileContent(file_id=output.image_file_id)
            )
            for call in calls
            for output in call.code_interpreter.outputs
            if output.WhichOneof("kind") == "image_file_id"
        ]

    async def _place_inputs(
        self, store: Store, run: runs_pb2.Run, session: Session, notes: list[str]
    ) -> None:
        """Put the thread's files the session does not have yet under its /mnt/data."""
        placed = self._placed.setdefault(session, {})
        taken = set(placed.values())
        for file_id in await _input_file_ids(store, run):
            if file_id in placed:
                continue
            file = await store.get_file(file_id)
            if file is None:
                continue  # deleted since it was attached
            name = session_files.input_name(file.filename, file.id, taken)
            try:
                await session_files.place(session.data_dir, name, self._blobs.read(file.id))
            except OSError as exc:
                notes.append(f"{file.filename} ({file.id}) could not be put in {MNT_DATA}: {exc}")
                continue
            placed[file_id] = name

    async def _keep(self, store: Store, filename: str, chunks: AsyncIterator[bytes]) -> str:
        """Store what the code made as a file of purpose `assistants_output`; its ID."""
        file = files_pb2.File(
            id=ids.new_id(ids.FILE),
            created_at=int(time.time()),
            filename=filename,
            purpose=OUTPUT_PURPOSE,
            status=files_pb2.FILE_STATUS_PROCESSED,
        )
        file.bytes = await self._blobs.write(file.id, chunks, self._max_file_bytes)
        try:
            await store.create_file(file)
        except BaseException:
            await self._blobs.delete(file.id)
            raise
        return file.id


def code_so_far(arguments: str) -> str:
    """The code in the model's arguments, as much as there is yet: `{"code": …}` as offered (or
    `{"input": …}`, what `builtin/echo` makes of a plain line), or, from a model that wrote the
    code itself instead of JSON, that text."""
    if not arguments.lstrip().startswith("{"):
        return arguments
    try:
        parsed = jiter.from_json(arguments.encode(), partial_mode="trailing-strings")
    except ValueError:
        return ""
    if not isinstance(parsed, dict):
        return ""
    for key in ("code", "input"):
        value = parsed.get(key)
        if isinstance(value, str):
            return value
    return ""


async def _input_file_ids(store: Store, run: runs_pb2.Run) -> list[str]:
    """The thread's files for code_interpreter, in order, once each: the run's own tool
    resources or else the assistant's, the thread's, then its messages' attachments."""
    found = [
        file_id
        for resources in await tool_resources(store, run)
        for file_id in resources.code_interpreter.file_ids
    ]
    for message in await store.thread_messages(run.thread_id):
        found.extend(
            attachment.file_id
            for attachment in message.attachments
            if messages_pb2.ATTACHMENT_TOOL_CODE_INTERPRETER in attachment.tools
        )
    return list(dict.fromkeys(found))


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data
