"""RunsService: create, stream, watch, cancel and answer runs; read their steps.

Checks of meaning happen here; the run itself is executed by the engine. A streaming create
subscribes to the run's event log from its first event, so the stream holds every event even
when the run finishes before the first one is sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal, Protocol

from compat_core import errors, ids, tenancy, validation
from compat_core.engine.manager import RunEngine
from compat_core.models import ModelRegistry
from compat_core.ratelimit import RateLimiter
from compat_core.services.messages import missing_thread, new_message
from compat_core.services.references import References
from compat_core.services.step_include import (
    searches_files,
    strip_content,
    wants_content,
    without_content,
)
from compat_core.services.support import apply_mask, cursor_error, list_response, mask_paths, now
from compat_core.services.threads import ThreadsService
from compat_core.store.base import (
    ActiveRunsLimited,
    CursorNotFound,
    Store,
    ThreadBusy,
    VectorStoreWrites,
)
from compat_core.v1 import assistants_pb2, messages_pb2, runs_pb2, runs_pb2_grpc, threads_pb2

MIN_TOKEN_BUDGET = 256
RUN_EXPIRY_SECONDS = 600
UPDATABLE = frozenset({"metadata"})

RunRequest = runs_pb2.CreateRunRequest | runs_pb2.CreateThreadAndRunRequest


class RunsService(runs_pb2_grpc.RunsServiceServicer):
    """Every run RPC; the engine does the executing."""

    def __init__(
        self,
        store: Store,
        models: ModelRegistry,
        references: References,
        threads: ThreadsService,
        engine: RunEngine,
        limiter: RateLimiter,
    ) -> None:
        self._store = store
        self._models = models
        self._references = references
        self._threads = threads
        self._engine = engine
        self._limiter = limiter

    # Creating.

    async def CreateRun(self, request: runs_pb2.CreateRunRequest, context: Any) -> runs_pb2.Run:
        return await self._create_run(request)

    async def CreateRunStream(
        self, request: runs_pb2.CreateRunRequest, context: Any
    ) -> AsyncIterator[runs_pb2.RunEvent]:
        run = await self._create_run(request)
        batches = self._engine.hub.follow_batches(run.id)
        async for event in _sent(batches, request, run, wants_content(request.include)):
            yield event

    async def CreateThreadAndRun(
        self, request: runs_pb2.CreateThreadAndRunRequest, context: Any
    ) -> runs_pb2.Run:
        return await self._create_thread_and_run(request)

    async def CreateThreadAndRunStream(
        self, request: runs_pb2.CreateThreadAndRunRequest, context: Any
    ) -> AsyncIterator[runs_pb2.RunEvent]:
        run = await self._create_thread_and_run(request)
        async for event in _sent(self._engine.hub.follow_batches(run.id), request, run):
            yield event

    async def _create_run(self, request: runs_pb2.CreateRunRequest) -> runs_pb2.Run:
        validation.required_id(request.thread_id, "thread_id")
        wants_content(request.include)
        assistant = await self._assistant(request.assistant_id)
        for index, message in enumerate(request.additional_messages):
            where = f"additional_messages[{index}]."
            validation.message_input(message, where)
            await self._references.check_message(message, where)
        if request.HasField("additional_instructions"):
            validation.max_length(
                request.additional_instructions,
                validation.MAX_INSTRUCTIONS,
                "additional_instructions",
            )
        run = self._build_run(request, assistant, request.thread_id)
        if request.HasField("additional_instructions") and request.additional_instructions:
            run.instructions = "\n\n".join(
                part for part in (run.instructions, request.additional_instructions) if part
            )
        active_runs_limit = await self._limiter.admit_run(tenancy.project_id())
        created_at = run.created_at
        messages = [new_message(run.thread_id, m, created_at) for m in request.additional_messages]
        # Files the messages attach for file_search join the thread's store with the run, as a
        # created message's do, so the run's own searches wait for them (see `file_search`).
        writes = await self._threads.inline.writes(created_at, messages=request.additional_messages)
        try:
            await self._start(run, messages, None, writes, active_runs_limit)
        except ThreadBusy as exc:
            raise errors.precondition(
                f"Thread {exc.thread_id} already has an active run {exc.run_id}.", "thread_id"
            ) from exc
        self._threads.inline.stored(writes)
        return run

    async def _create_thread_and_run(
        self, request: runs_pb2.CreateThreadAndRunRequest
    ) -> runs_pb2.Run:
        assistant = await self._assistant(request.assistant_id)
        new = await self._threads.build(
            request.thread if request.HasField("thread") else threads_pb2.CreateThreadRequest(),
            "thread.",
        )
        if request.HasField("tool_resources"):
            validation.tool_resources(request.tool_resources)
            await self._references.check_tool_resources(request.tool_resources)
        run = self._build_run(request, assistant, new.thread.id)
        if request.HasField("tool_resources"):
            run.tool_resources.CopyFrom(request.tool_resources)
        active_runs_limit = await self._limiter.admit_run(tenancy.project_id())
        await self._start(run, new.messages, new.thread, new.vector_stores, active_runs_limit)
        self._threads.inline.stored(new.vector_stores)
        return run

    async def _start(
        self,
        run: runs_pb2.Run,
        messages: Sequence[messages_pb2.Message],
        thread: threads_pb2.Thread | None,
        vector_stores: VectorStoreWrites | None,
        active_runs_limit: int,
    ) -> None:
        """Start a run that `admit_run` admitted; the store checks the limit of its project's
        concurrent runs in the transaction that creates it, where no other creation can
        slip in between the count and the insert."""
        try:
            await self._engine.start_run(run, messages, thread, vector_stores, active_runs_limit)
        except ActiveRunsLimited as exc:
            project = tenancy.project_id()
            raise self._limiter.runs_refused(project, exc.limit, exc.active) from exc

    async def _assistant(self, assistant_id: str) -> assistants_pb2.Assistant:
        validation.required_id(assistant_id, "assistant_id")
        assistant = await self._store.get_assistant(assistant_id)
        if assistant is None:
            raise errors.no_such("assistant_id", assistant_id)
        return assistant

    def _build_run(
        self, request: RunRequest, assistant: assistants_pb2.Assistant, thread_id: str
    ) -> runs_pb2.Run:
        """The run as OpenAI describes it: request values over the assistant's."""
        created_at = now()
        run = runs_pb2.Run(
            id=ids.new_id(ids.RUN),
            created_at=created_at,
            thread_id=thread_id,
            assistant_id=assistant.id,
            status=runs_pb2.RUN_STATUS_QUEUED,
            expires_at=created_at + RUN_EXPIRY_SECONDS,
            model=request.model if request.HasField("model") else assistant.model,
            metadata=request.metadata,
            parallel_tool_calls=(
                request.parallel_tool_calls if request.HasField("parallel_tool_calls") else True
            ),
        )
        validation.model_name(run.model)
        self._models.resolve(run.model, "model")
        if request.HasField("instructions"):
            validation.max_length(request.instructions, validation.MAX_INSTRUCTIONS, "instructions")
            run.instructions = request.instructions
        elif assistant.HasField("instructions"):
            run.instructions = assistant.instructions
        tools = request.tools.tools if request.HasField("tools") else assistant.tools
        validation.tools(tools)
        run.tools.extend(tools)
        validation.metadata(run.metadata)

        temperature = _pick(request, assistant, "temperature")
        top_p = _pick(request, assistant, "top_p")
        validation.sampling(temperature, top_p)
        if temperature is not None:
            run.temperature = temperature
        if top_p is not None:
            run.top_p = top_p
        effort = _pick(request, assistant, "reasoning_effort")
        validation.reasoning_effort(effort)
        if effort is not None:
            run.reasoning_effort = effort

        for name in ("max_prompt_tokens", "max_completion_tokens"):
            if request.HasField(name):
                value = getattr(request, name)
                if value < MIN_TOKEN_BUDGET:
                    raise errors.invalid(
                        f"Invalid '{name}': expected at least {MIN_TOKEN_BUDGET}, got {value}.",
                        name,
                        "integer_below_min_value",
                    )
                setattr(run, name, value)

        if request.HasField("truncation_strategy"):
            strategy = request.truncation_strategy
            if strategy.type == runs_pb2.TRUNCATION_TYPE_LAST_MESSAGES and (
                not strategy.HasField("last_messages") or strategy.last_messages < 1
            ):
                raise errors.invalid(
                    "Invalid 'truncation_strategy.last_messages': expected an integer of at "
                    "least 1 with type 'last_messages'.",
                    "truncation_strategy.last_messages",
                )
            run.truncation_strategy.CopyFrom(strategy)
        if run.truncation_strategy.type == runs_pb2.TRUNCATION_TYPE_UNSPECIFIED:
            run.truncation_strategy.type = runs_pb2.TRUNCATION_TYPE_AUTO

        if request.HasField("tool_choice"):
            _check_tool_choice(request.tool_choice, run)
            run.tool_choice.CopyFrom(request.tool_choice)
        else:
            run.tool_choice.mode = runs_pb2.TOOL_CHOICE_MODE_AUTO

        if request.HasField("response_format"):
            validation.response_format(request.response_format)
            run.response_format.CopyFrom(request.response_format)
        else:
            run.response_format.CopyFrom(assistant.response_format)
        return run

    # Reading and changing.

    async def GetRun(self, request: runs_pb2.GetRunRequest, context: Any) -> runs_pb2.Run:
        return await self._get(request.thread_id, request.run_id)

    async def ListRuns(
        self, request: runs_pb2.ListRunsRequest, context: Any
    ) -> runs_pb2.ListRunsResponse:
        validation.required_id(request.thread_id, "thread_id")
        query = validation.page_query(
            request.limit if request.HasField("limit") else None,
            request.order,
            request.after,
            request.before,
        )
        try:
            page = await self._store.list_runs(request.thread_id, query)
        except CursorNotFound as exc:
            raise cursor_error(exc) from exc
        if page is None:
            raise missing_thread(request.thread_id)
        return list_response(runs_pb2.ListRunsResponse.FromString, page)

    async def UpdateRun(self, request: runs_pb2.UpdateRunRequest, context: Any) -> runs_pb2.Run:
        thread_id, run_id = request.run.thread_id, request.run.id
        validation.required_id(thread_id, "thread_id")
        validation.required_id(run_id, "run_id")
        paths = mask_paths(request.update_mask, UPDATABLE)
        validation.metadata(request.run.metadata)

        def mutate(current: runs_pb2.Run) -> None:
            apply_mask(request.run, current, paths)

        updated = await self._store.update_run(thread_id, run_id, mutate)
        if updated is None:
            raise await self._missing_run(thread_id, run_id)
        return updated

    async def CancelRun(self, request: runs_pb2.CancelRunRequest, context: Any) -> runs_pb2.Run:
        await self._get(request.thread_id, request.run_id)
        return await self._engine.cancel(request.thread_id, request.run_id)

    async def SubmitToolOutputs(
        self, request: runs_pb2.SubmitToolOutputsRequest, context: Any
    ) -> runs_pb2.Run:
        await self._get(request.thread_id, request.run_id)
        run, _ = await self._engine.submit_tool_outputs(
            request.thread_id, request.run_id, request.tool_outputs
        )
        return run

    async def SubmitToolOutputsStream(
        self, request: runs_pb2.SubmitToolOutputsRequest, context: Any
    ) -> AsyncIterator[runs_pb2.RunEvent]:
        await self._get(request.thread_id, request.run_id)
        run, position = await self._engine.submit_tool_outputs(
            request.thread_id, request.run_id, request.tool_outputs
        )
        batches = self._engine.hub.follow_batches(run.id, position)
        async for event in _sent(batches, request, run):
            yield event

    async def WatchRun(
        self, request: runs_pb2.WatchRunRequest, context: Any
    ) -> AsyncIterator[runs_pb2.RunEvent]:
        validation.required_id(request.run_id, "run_id")
        run = await self._store.find_run(request.run_id)
        if run is None:
            raise errors.no_such("run_id", request.run_id)
        after = request.after_sequence if request.HasField("after_sequence") else None
        async for event in _sent(self._engine.watch(run, after), request, run):
            yield event

    async def ListRunSteps(
        self, request: runs_pb2.ListRunStepsRequest, context: Any
    ) -> runs_pb2.ListRunStepsResponse:
        validation.required_id(request.thread_id, "thread_id")
        validation.required_id(request.run_id, "run_id")
        query = validation.page_query(
            request.limit if request.HasField("limit") else None,
            request.order,
            request.after,
            request.before,
        )
        content = wants_content(request.include)
        try:
            page = await self._store.list_steps(request.thread_id, request.run_id, query)
        except CursorNotFound as exc:
            raise cursor_error(exc) from exc
        if page is None:
            raise await self._missing_run(request.thread_id, request.run_id)
        response = list_response(runs_pb2.ListRunStepsResponse.FromString, page)
        if not content:
            for step in response.data:
                strip_content(step)
        return response

    async def GetRunStep(
        self, request: runs_pb2.GetRunStepRequest, context: Any
    ) -> runs_pb2.RunStep:
        validation.required_id(request.step_id, "step_id")
        content = wants_content(request.include)
        await self._get(request.thread_id, request.run_id)
        step = await self._store.get_step(request.thread_id, request.run_id, request.step_id)
        if step is None:
            raise errors.not_found(
                f"No run step found with id '{errors.shown(request.step_id)}' in run "
                f"'{request.run_id}'.",
                "step_id",
            )
        if not content:
            strip_content(step)
        return step

    async def _get(self, thread_id: str, run_id: str) -> runs_pb2.Run:
        validation.required_id(thread_id, "thread_id")
        validation.required_id(run_id, "run_id")
        run = await self._store.get_run(thread_id, run_id)
        if run is None:
            raise await self._missing_run(thread_id, run_id)
        return run

    async def _missing_run(self, thread_id: str, run_id: str) -> errors.ApiError:
        if await self._store.get_thread(thread_id) is None:
            return missing_thread(thread_id)
        return errors.not_found(
            f"No run found with id '{errors.shown(run_id)}' in thread '{thread_id}'.", "run_id"
        )


# Events per batch message, at most: a reader far behind gets its backlog in several.
MAX_EVENTS_PER_BATCH = 64


class _StreamRequest(Protocol):
    accept_event_batches: bool


async def _sent(
    batches: AsyncIterator[list[runs_pb2.RunEvent]],
    request: _StreamRequest,
    run: runs_pb2.Run,
    content: bool = False,
) -> AsyncIterator[runs_pb2.RunEvent]:
    """The messages of a stream: events ready together go in one `batch` if the caller reads
    them (`accept_event_batches`), one by one otherwise. File search results come without
    their content unless the stream's request asked for it (`content`)."""
    strip = not content and searches_files(run.tools)
    async for batch in batches:
        if strip:
            batch = without_content(batch)
        if not request.accept_event_batches or len(batch) == 1:
            for event in batch:
                yield event
            continue
        for start in range(0, len(batch), MAX_EVENTS_PER_BATCH):
            part = batch[start : start + MAX_EVENTS_PER_BATCH]
            if len(part) == 1:
                yield part[0]
                continue
            message = runs_pb2.RunEvent(sequence=part[-1].sequence)
            message.batch.events.extend(part)
            yield message


def _pick(
    request: RunRequest,
    assistant: assistants_pb2.Assistant,
    name: Literal["temperature", "top_p", "reasoning_effort"],
) -> Any:
    """The request's value, else the assistant's, else None."""
    if request.HasField(name):
        return getattr(request, name)
    if assistant.HasField(name):
        return getattr(assistant, name)
    return None


def _check_tool_choice(choice: runs_pb2.ToolChoice, run: runs_pb2.Run) -> None:
    if choice.WhichOneof("choice") != "tool":
        return
    named = choice.tool
    if named.type not in ("function", "code_interpreter", "file_search"):
        raise errors.invalid(
            f"Invalid 'tool_choice.type': {errors.shown(named.type)!r}.",
            "tool_choice.type",
            "invalid_value",
        )
    if named.type == "function":
        names = {t.function.name for t in run.tools if t.WhichOneof("kind") == "function"}
        if named.function_name not in names:
            raise errors.invalid(
                f"Invalid 'tool_choice': the function '{errors.shown(named.function_name)}' "
                "is not among "
                "the run's tools.",
                "tool_choice.function.name",
            )
    elif not any(t.WhichOneof("kind") == named.type for t in run.tools):
        # Forcing a tool the run does not enable could never be obeyed.
        raise errors.invalid(
            f"Invalid 'tool_choice': the {named.type} tool is not among the run's tools.",
            "tool_choice.type",
        )
