"""One run executing: model turns, tool rounds and the transitions between them.

Every transition is stored before it is announced (`_commit`), so a watcher never hears of a
state that a crash could take back. Text pieces are announced as they arrive and stored with
the transition that ends the message: a crash mid-reply loses only an unfinished reply, which
resumption deletes and writes again.

Transitions that follow each other with nothing between them are stored in one transaction:
a new run is stored started as it is created (`begin`); a run offered no tools can only answer
in text, so its reply is stored with its start (and announced with the model's first piece),
and the reply's end with the run's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from compat_core import ids
from compat_core.engine.context import EngineContext
from compat_core.engine.hosted import ReplyAnnotator, ToolFailure
from compat_core.engine.open_reply import OpenReply, Reply
from compat_core.engine.open_tool_step import OpenToolStep
from compat_core.engine.prompt import (
    PromptTooLong,
    build_prompt,
    chat_response_format,
    chat_tool_choice,
    chat_tools,
)
from compat_core.engine.step_events import STEP_ERROR_CODES, STEP_EVENTS, end_step, publish
from compat_core.engine.tool_calls import answer_calls, required_action
from compat_core.providers.base import ChatRequest, ProviderError, TokenUsage
from compat_core.store.base import LeaseLost
from compat_core.v1 import common_pb2, messages_pb2, runs_pb2

log = logging.getLogger(__name__)

# A fast upstream's chunks arrive buffered and reading them never suspends the run, so the
# run hands the loop to its watchers now and then: at most every interval, so that pieces
# reach clients batched, not held.
RELAY_INTERVAL_SECONDS = 0.002
# After a reply's first piece the run steps aside this long before reading on. A fast
# upstream's next pieces are already buffered, and reading them would take the CPU that the
# first token needs to cross gRPC and the edge; a model that paces its tokens has not sent
# the next one yet anyway. Measured with a 1,000-token burst on 2 cores, the first token's
# median added time against 2 ms and no pause: 3.1-4.6 ms vs 4.1-5.0 vs 5.0-5.3.
FIRST_PIECE_PAUSE_SECONDS = 0.005
# A safety net against a model that calls tools forever.
MAX_MODEL_TURNS = 50


class CancelStored(Exception):
    """The stored run was set to `cancelling` (by a core that does not execute it)."""


class RunExecution:
    """Drives one run from queued or in_progress until it stops or needs tool outputs."""

    def __init__(self, ctx: EngineContext, run: runs_pb2.Run) -> None:
        self.ctx = ctx
        self.run = run
        self.cancel_requested = False
        # Set when a lease renewal found another core holding the run: stop without a word.
        self.lease_lost = False
        # A task cancelled before its first step never enters `execute`'s handlers, so a cancel
        # that arrives that early is left to `execute` itself (see RunEngine.cancel).
        self.started = False
        # The reply and the tool step of the current model call, once announced.
        self._reply: OpenReply | None = None
        self._tool_step: OpenToolStep | None = None
        # A reply stored ahead of the model's first piece and not announced yet.
        self._unannounced: asyncio.Future[Reply | None] | None = None
        # The tools the model is offered, in Chat Completions' shape; none: a text-only run.
        self._tools = chat_tools(run.tools, ctx.tools, ctx.hosted)
        # The hosted tools the run enables, by the function name the model calls them by.
        self._hosted = ctx.hosted.offered(run.tools)
        # The run's steps before the current model call, and what they make of its reply.
        self._steps: list[runs_pb2.RunStep] = []
        self._annotator: ReplyAnnotator | None = None
        self._relayed_at = 0.0
        # The first model call reads no steps: a run never started has none, nor one begun as
        # it was created (its reply is not announced yet).
        self._no_steps = False

    def begin(self) -> Reply | None:
        """Start a new run as it is created: in progress, and for a text-only run with its
        reply, both for the caller to store with the run and to announce (see
        `RunEngine.start_run`). The reply is announced here with the model's first piece."""
        reply = self._move_to_in_progress()
        self._no_steps = True
        if reply is not None:
            stored: asyncio.Future[Reply | None] = asyncio.get_running_loop().create_future()
            stored.set_result(reply)
            self._unannounced = stored
        return reply

    def _move_to_in_progress(self) -> Reply | None:
        """Set the run in progress; a text-only run's reply, to be stored along with that."""
        self.run.status = runs_pb2.RUN_STATUS_IN_PROGRESS
        self.run.started_at = self.ctx.now()
        return None if self._tools else self._new_reply()

    async def execute(self) -> None:
        self.started = True
        try:
            try:
                await self._drive()
            except CancelStored:
                self.cancel_requested = True
                await self._finish_cancelled()
        except LeaseLost:
            # Another core claimed the run (this one paused past its lease): it goes on there.
            log.warning("run %s: lease lost, another core executes it now", self.run.id)

    async def _drive(self) -> None:
        try:
            if self.cancel_requested:
                await self._drop_unannounced_reply()
                await self._finish_cancelled()
                return
            starting = None
            self._no_steps = self._no_steps or not self.run.started_at
            if self.run.status == runs_pb2.RUN_STATUS_QUEUED:
                starting = asyncio.ensure_future(self._start(self._move_to_in_progress()))
            for _ in range(MAX_MODEL_TURNS):
                if not await self._model_turn(starting):
                    return
                starting = None
            await self._fail(
                "server_error", f"The run made more than {MAX_MODEL_TURNS} model calls."
            )
        except asyncio.CancelledError:
            if self.lease_lost:
                return
            if not self.cancel_requested:
                raise  # the core is shutting down: the run resumes on the next start
            await self._finish_cancelled()
        except (ProviderError, ToolFailure) as exc:
            await self._fail(exc.code, exc.message)
        except PromptTooLong:
            await self._finish_incomplete("max_prompt_tokens")
        except (CancelStored, LeaseLost):
            raise
        except Exception as exc:
            await self._fail("server_error", "The run failed because of an internal error.", exc)

    # One model call and what follows from it.

    async def _start(self, reply: Reply | None) -> Reply | None:
        """Store the run's move to in_progress and announce it, with a text-only run's reply in
        the same transaction (announced with the first piece); the reply."""
        steps, messages = ((reply.step,), (reply.message,)) if reply else ((), ())
        await self._commit(
            steps=steps, messages=messages, events=[("thread_run_in_progress", self.run)]
        )
        return reply

    async def _model_turn(self, starting: asyncio.Future[Reply | None] | None = None) -> bool:
        """Call the model once; True when the run goes on with another call.

        `starting` (the run's move to in_progress) is stored while the prompt is read and the
        model is asked, as neither changes what the other reads: the first token waits for
        the slower of the two, not for both. Nothing the model says is announced before it.
        """
        try:
            return await self._call_model(starting)
        except BaseException:
            # A reply stored ahead that the turn ended before announcing (a prompt too long,
            # a failed call, a cancel) leaves no trace.
            await self._drop_unannounced_reply()
            raise
        finally:
            if starting is not None and not starting.done():
                # Whatever ended the turn early: the run's start is stored and announced
                # before what follows it (a failure, a cancel).
                await starting

    async def _call_model(self, starting: asyncio.Future[Reply | None] | None) -> bool:
        run = self.run
        store = self.ctx.store
        if starting is not None and not self._tools:
            self._unannounced = starting
        steps: list[runs_pb2.RunStep] = []
        if self._no_steps:
            thread_messages = await store.thread_messages(run.thread_id)
            self._no_steps = False
        else:
            thread_messages, steps = await asyncio.gather(
                store.thread_messages(run.thread_id), store.run_steps(run.id)
            )
        prompt = build_prompt(run, thread_messages, steps, self.ctx.hosted)
        self._steps = steps
        self._annotator = self.ctx.hosted.annotator(steps)
        remaining: int | None = None
        if run.HasField("max_completion_tokens"):
            remaining = run.max_completion_tokens - run.usage.completion_tokens
            if remaining <= 0:
                await self._drop_unannounced_reply()
                if starting is not None:
                    await starting
                await self._finish_incomplete("max_completion_tokens")
                return False
        resolved = self.ctx.models.resolve(run.model)
        provider = self.ctx.providers[resolved.provider]
        request = ChatRequest(
            model=resolved.name,
            messages=prompt.messages,
            tools=self._tools,
            tool_choice=chat_tool_choice(
                run.tool_choice,
                self.ctx.hosted,
                tools_called=any(s.step_details.HasField("tool_calls") for s in steps),
            ),
            parallel_tool_calls=run.parallel_tool_calls,
            temperature=run.temperature if run.HasField("temperature") else None,
            top_p=run.top_p if run.HasField("top_p") else None,
            response_format=chat_response_format(run.response_format),
            max_completion_tokens=remaining,
            reasoning_effort=run.reasoning_effort if run.HasField("reasoning_effort") else None,
        )
        finish: str | None = None
        usage: TokenUsage | None = None
        self._reply = self._tool_step = None
        if not request.tools and self._unannounced is None:
            # Without tools the model can only answer in text (or fail): the reply's message
            # and step are stored while it is asked, and announced with its first piece.
            self._unannounced = asyncio.ensure_future(self._store_reply())

        async with contextlib.aclosing(provider.stream(request)) as deltas:
            async for delta in deltas:
                if starting is not None:
                    await starting
                    starting = None
                if delta.text and self._tool_step is None:
                    # Text after tool calls began would need a second open step, which
                    # the SDKs refuse; models do not interleave them in practice.
                    await self._append_text(delta.text)
                for piece in delta.tool_calls:
                    await self._append_tool_call(piece.index, piece.id, piece.name, piece.arguments)
                if delta.finish_reason:
                    finish = delta.finish_reason
                if delta.usage is not None:
                    usage = delta.usage
        if starting is not None:
            await starting

        reply, tool_step = self._reply, self._tool_step
        if usage is None:
            text = reply.so_far().content[-1].text.value if reply else ""
            calls: list[runs_pb2.ToolCall] = list(tool_step.calls.values()) if tool_step else []
            arguments = "".join(c.function.arguments for c in calls)
            usage = TokenUsage(prompt.estimated_tokens, max(1, (len(text) + len(arguments)) // 4))
        _add_usage(run.usage, usage)
        truncated = finish == "length"
        step_usage = _usage(usage)
        if truncated:
            if reply is None:
                await self._drop_unannounced_reply()
            elif reply.is_open:
                await self._close_message(True, step_usage if tool_step is None else None)
            await self._finish_incomplete("max_completion_tokens")
            return False
        if tool_step is None:
            if reply is None:
                # An empty reply still leaves the thread an (empty) assistant message.
                await self._open_message()
            await self._finish_completed(step_usage)
            return False
        tool_step.step.usage.CopyFrom(step_usage)
        return await self._tool_round(tool_step)

    async def _append_text(self, text: str) -> None:
        reply = self._reply
        first = reply is None
        if reply is None:
            reply = await self._open_message()
        if not reply.feed(text):
            return
        if first:
            await asyncio.sleep(FIRST_PIECE_PAUSE_SECONDS)
            # The watchers just had the loop: the next piece need not hand it over again.
            self._relayed_at = time.monotonic()
        else:
            await self._let_watchers_read()

    async def _open_message(self) -> OpenReply:
        reply = None
        if self._unannounced is not None:
            stored, self._unannounced = self._unannounced, None
            reply = await stored
        if reply is None:
            reply = self._new_reply()
            await self._save(steps=[reply.step], messages=[reply.message])
        self._reply = OpenReply(self.ctx.hub, self.run.id, reply, self._annotator)
        self._reply.announce()
        return self._reply

    def _new_reply(self) -> Reply:
        run = self.run
        message = messages_pb2.Message(
            id=ids.new_id(ids.MESSAGE),
            created_at=self.ctx.now(),
            thread_id=run.thread_id,
            status=messages_pb2.MESSAGE_STATUS_IN_PROGRESS,
            role=messages_pb2.MESSAGE_ROLE_ASSISTANT,
            content=[
                *self.ctx.hosted.reply_parts(self._steps),
                messages_pb2.MessageContent(text=messages_pb2.TextContent(value="")),
            ],
            assistant_id=run.assistant_id,
            run_id=run.id,
        )
        step = self._new_step(
            runs_pb2.StepDetails(message_creation=runs_pb2.MessageCreation(message_id=message.id))
        )
        return Reply(message, step)

    async def _store_reply(self) -> Reply | None:
        """Store a reply before the model's first piece (of a run already started)."""
        reply = self._new_reply()
        await self._save(steps=[reply.step], messages=[reply.message])
        return reply

    async def _drop_unannounced_reply(self) -> None:
        """Delete a reply stored ahead of a first piece that never came (the call failed, was
        cancelled or turned to tools): nobody heard of it, so the thread keeps no trace.

        Never raises: a reply left behind is an unfinished one, which resuming the run removes.
        """
        stored, self._unannounced = self._unannounced, None
        if stored is None:
            return
        try:
            reply = await stored
            if reply is not None and not self.lease_lost:
                await self.ctx.store.delete_run_output([reply.step.id], [reply.message.id])
        except Exception:
            # Its save failed (and the run's own handling reports why), or the delete did.
            log.debug("run %s: no unannounced reply to delete", self.run.id, exc_info=True)

    async def _close_message(self, truncated: bool, usage: common_pb2.Usage | None) -> None:
        assert self._reply is not None
        ended = self._reply.ended(self.ctx.now(), truncated, usage)
        await self._save(steps=[ended.step], messages=[ended.message])
        self._reply.take_ended(ended, truncated)

    async def _append_tool_call(
        self, index: int, call_id: str | None, name: str | None, arguments: str
    ) -> None:
        if self._tool_step is None:
            await self._drop_unannounced_reply()
            if self._reply is not None and self._reply.is_open:
                # One open step at a time: the reply so far is done once the model turns to
                # tools.
                await self._close_message(False, None)
            step = self._new_step(runs_pb2.StepDetails(tool_calls=runs_pb2.ToolCalls()))
            await self._save(steps=[step])
            self._tool_step = OpenToolStep(
                self.ctx.hub, self.run.id, step, self.ctx.hosted, self._hosted
            )
            self._publish("thread_run_step_created", step)
            self._publish("thread_run_step_in_progress", step)
        self._tool_step.add_piece(index, call_id, name, arguments)
        await self._let_watchers_read()

    async def _let_watchers_read(self) -> None:
        moment = time.monotonic()
        if moment - self._relayed_at >= RELAY_INTERVAL_SECONDS:
            self._relayed_at = moment
            await asyncio.sleep(0)

    async def _tool_round(self, tool_step: OpenToolStep) -> bool:
        """Run the hosted and the server's tools; hand the rest to the client. True to call the
        model again."""
        step = tool_step.step
        step.step_details.tool_calls.ClearField("tool_calls")
        step.step_details.tool_calls.tool_calls.extend(tool_step.calls.values())
        ctx = self.ctx
        pending = await answer_calls(
            ctx.store,
            self.run,
            self._steps,
            step.step_details.tool_calls.tool_calls,
            ctx.tools,
            ctx.hosted,
            self._hosted,
        )
        tool_step.announce_outputs(step.step_details.tool_calls.tool_calls)
        if pending:
            run = self.run
            run.status = runs_pb2.RUN_STATUS_REQUIRES_ACTION
            run.required_action.CopyFrom(required_action(pending))
            run.expires_at = self.ctx.now() + self.ctx.requires_action_timeout
            await self._commit(steps=[step], events=[("thread_run_requires_action", run)])
            return False
        step.status = runs_pb2.RUN_STEP_STATUS_COMPLETED
        step.completed_at = self.ctx.now()
        await self._commit(steps=[step], events=[("thread_run_step_completed", step)])
        return True

    # Endings.

    async def _finish_completed(self, reply_usage: common_pb2.Usage) -> None:
        """Complete the run, and end a reply still open (with `reply_usage`) along with it."""
        run = self.run
        reply = self._reply
        ended = reply.ended(self.ctx.now(), False, reply_usage) if reply and reply.is_open else None
        before = runs_pb2.Run()
        before.CopyFrom(run)
        run.status = runs_pb2.RUN_STATUS_COMPLETED
        run.completed_at = self.ctx.now()
        run.ClearField("expires_at")
        if ended is None:
            await self._commit(events=[("thread_run_completed", run)])
            return
        try:
            await self._commit(steps=[ended.step], messages=[ended.message])
        except BaseException:
            # Not stored: the run and its reply are still in progress, as far as anyone was
            # told, and end otherwise (cancelled, failed).
            run.CopyFrom(before)
            raise
        assert reply is not None
        reply.take_ended(ended, False)
        self._publish("thread_run_completed", run)

    async def _finish_incomplete(self, reason: str) -> None:
        run = self.run
        await self._close_open_parts(messages_pb2.MESSAGE_INCOMPLETE_REASON_MAX_TOKENS, None)
        run.status = runs_pb2.RUN_STATUS_INCOMPLETE
        run.incomplete_details.reason = reason
        run.ClearField("expires_at")
        await self._commit(events=[("thread_run_incomplete", run)])

    async def _fail(self, code: str, message: str, fault: Exception | None = None) -> None:
        """End the run failed, and log it once: at WARNING for what the model or its provider
        did, at ERROR with the traceback for `fault`, a bug of ours."""
        run = self.run
        now = self.ctx.now()
        error = runs_pb2.RunError(code=code, message=message)
        # A step's error has fewer codes than a run's (no `invalid_prompt`).
        step_code = code if code in STEP_ERROR_CODES else "server_error"
        await self._close_open_parts(
            messages_pb2.MESSAGE_INCOMPLETE_REASON_RUN_FAILED,
            (runs_pb2.RUN_STEP_STATUS_FAILED, runs_pb2.RunError(code=step_code, message=message)),
        )
        run.status = runs_pb2.RUN_STATUS_FAILED
        run.failed_at = now
        run.last_error.CopyFrom(error)
        run.ClearField("expires_at")
        run.ClearField("required_action")
        await self._commit(events=[("thread_run_failed", run)])
        log.log(
            logging.ERROR if fault else logging.WARNING,
            "run %s failed (model %s): %s: %s",
            run.id,
            run.model,
            code,
            message,
            exc_info=fault,
        )

    async def _finish_cancelled(self) -> None:
        run = self.run
        await self._close_open_parts(
            messages_pb2.MESSAGE_INCOMPLETE_REASON_RUN_CANCELLED,
            (runs_pb2.RUN_STEP_STATUS_CANCELLED, None),
        )
        run.status = runs_pb2.RUN_STATUS_CANCELLED
        run.cancelled_at = self.ctx.now()
        run.ClearField("expires_at")
        run.ClearField("required_action")
        await self._commit(events=[("thread_run_cancelled", run)])

    async def _close_open_parts(
        self,
        reason: messages_pb2.MessageIncompleteReason.ValueType,
        step_end: tuple[runs_pb2.RunStepStatus.ValueType, runs_pb2.RunError | None] | None,
    ) -> None:
        """Keep a partly written reply as `incomplete`; end open steps as `step_end` says."""
        now = self.ctx.now()
        reply, tool_step = self._reply, self._tool_step
        if reply is not None and reply.is_open:
            message = reply.interrupt(now, reason)
            await self._save(messages=[message])
            self._publish("thread_message_incomplete", message)
        if step_end is None:
            return
        status, error = step_end
        open_steps = [
            s
            for s in (reply.step if reply else None, tool_step.step if tool_step else None)
            if s is not None and s.status == runs_pb2.RUN_STEP_STATUS_IN_PROGRESS
        ]
        for step in open_steps:
            end_step(step, status, now, error)
        if open_steps:
            await self._save(steps=open_steps)
            for step in open_steps:
                self._publish(STEP_EVENTS[status], step)

    # Plumbing.

    def _new_step(self, details: runs_pb2.StepDetails) -> runs_pb2.RunStep:
        run = self.run
        return runs_pb2.RunStep(
            id=ids.new_id(ids.STEP),
            created_at=self.ctx.now(),
            assistant_id=run.assistant_id,
            thread_id=run.thread_id,
            run_id=run.id,
            status=runs_pb2.RUN_STEP_STATUS_IN_PROGRESS,
            step_details=details,
        )

    async def _commit(
        self,
        *,
        steps: Sequence[runs_pb2.RunStep] = (),
        messages: Sequence[messages_pb2.Message] = (),
        events: Sequence[tuple[str, Any]] = (),
    ) -> None:
        """Store the run (with steps and messages), then announce `events` in their order:
        never the other way round.

        Unless the run is being cancelled here, the save first checks that no other core
        stored a cancel meanwhile (it would be overwritten), and raises CancelStored if one did.
        """
        guard = None if self.run.status == runs_pb2.RUN_STATUS_CANCELLED else _not_cancelling
        await self.ctx.store.save_progress(
            run=self.run, steps=steps, messages=messages, guard=guard, holder=self.ctx.replica_id
        )
        for name, payload in events:
            self._publish(name, payload)

    async def _save(
        self,
        steps: Sequence[runs_pb2.RunStep] = (),
        messages: Sequence[messages_pb2.Message] = (),
    ) -> None:
        await self.ctx.store.save_progress(
            steps=steps, messages=messages, holder=self.ctx.replica_id
        )

    def _publish(self, name: str, payload: Any) -> None:
        publish(self.ctx.hub, self.run.id, name, payload)


def _not_cancelling(stored: runs_pb2.Run) -> None:
    if stored.status == runs_pb2.RUN_STATUS_CANCELLING:
        raise CancelStored


def _usage(usage: TokenUsage) -> common_pb2.Usage:
    return common_pb2.Usage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.prompt_tokens + usage.completion_tokens,
    )


def _add_usage(total: common_pb2.Usage, usage: TokenUsage) -> None:
    total.prompt_tokens += usage.prompt_tokens
    total.completion_tokens += usage.completion_tokens
    total.total_tokens = total.prompt_tokens + total.completion_tokens
