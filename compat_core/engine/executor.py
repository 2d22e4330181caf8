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
import os
import secrets
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from compat_core import ids
from compat_core.engine.events import RunEventHub
from compat_core.engine.hosted import HostedTool, HostedTools, ReplyAnnotator, ToolFailure
from compat_core.engine.prompt import (
    PromptTooLong,
    build_prompt,
    chat_response_format,
    chat_tool_choice,
    chat_tools,
)
from compat_core.engine.tool_calls import answer_calls, required_action
from compat_core.models import ModelRegistry
from compat_core.providers.base import ChatProvider, ChatRequest, ProviderError, TokenUsage
from compat_core.store.base import LeaseLost, Store
from compat_core.tools import Tool
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


def new_replica_id() -> str:
    """A name no other live core has: host, process and a random part (PIDs repeat)."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass
class EngineContext:
    """What every execution needs; one per core process."""

    store: Store
    hub: RunEventHub
    models: ModelRegistry
    providers: dict[str, ChatProvider]
    tools: dict[str, Tool]
    hosted: HostedTools
    requires_action_timeout: int = 600
    # This core's name on the leases of the runs it executes; unique among live cores.
    replica_id: str = field(default_factory=new_replica_id)
    # How long a lease lasts unless renewed: how soon another core resumes the runs of one
    # that died.
    lease_seconds: float = 10.0

    def now(self) -> int:
        return int(time.time())


class Reply(NamedTuple):
    """An assistant message the model writes, and the run step that creates it."""

    message: messages_pb2.Message
    step: runs_pb2.RunStep


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
        self._message: messages_pb2.Message | None = None
        # Text of the open reply not yet in `_message` (joined once, not copied per piece).
        self._written: list[str] = []
        # A reply stored ahead of the model's first piece and not announced yet.
        self._unannounced: asyncio.Future[Reply | None] | None = None
        # The tools the model is offered, in Chat Completions' shape; none: a text-only run.
        self._tools = chat_tools(run.tools, ctx.tools, ctx.hosted)
        # The hosted tools the run enables, by the function name the model calls them by.
        self._hosted = ctx.hosted.offered(run.tools)
        # The run's steps before the current model call, and what they make of its reply.
        self._steps: list[runs_pb2.RunStep] = []
        self._annotator: ReplyAnnotator | None = None
        self._message_step: runs_pb2.RunStep | None = None
        self._tool_step: runs_pb2.RunStep | None = None
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
        calls: dict[int, runs_pb2.ToolCall] = {}
        finish: str | None = None
        usage: TokenUsage | None = None
        self._message = self._message_step = self._tool_step = None
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
                    await self._append_tool_call(
                        calls, piece.index, piece.id, piece.name, piece.arguments
                    )
                if delta.finish_reason:
                    finish = delta.finish_reason
                if delta.usage is not None:
                    usage = delta.usage
        if starting is not None:
            await starting

        if usage is None:
            text = self._reply_so_far().content[-1].text.value if self._message else ""
            arguments = "".join(c.function.arguments for c in calls.values())
            usage = TokenUsage(prompt.estimated_tokens, max(1, (len(text) + len(arguments)) // 4))
        _add_usage(run.usage, usage)
        truncated = finish == "length"
        step_usage = _usage(usage)
        if truncated:
            if self._message is None:
                await self._drop_unannounced_reply()
            elif self._message_open():
                await self._close_message(True, step_usage if self._tool_step is None else None)
            await self._finish_incomplete("max_completion_tokens")
            return False
        if self._tool_step is None:
            if self._message is None:
                # An empty reply still leaves the thread an (empty) assistant message.
                await self._open_message()
            await self._finish_completed(step_usage)
            return False
        self._tool_step.usage.CopyFrom(step_usage)
        return await self._tool_round(list(calls.values()))

    async def _append_text(self, text: str) -> None:
        first = self._message is None
        if first:
            await self._open_message()
        annotations: Sequence[messages_pb2.Annotation] = ()
        if self._annotator is not None:
            text, annotations = self._annotator.feed(text)
        if not text and not annotations:
            return
        self._write(text, annotations)
        if first:
            await asyncio.sleep(FIRST_PIECE_PAUSE_SECONDS)
            # The watchers just had the loop: the next piece need not hand it over again.
            self._relayed_at = time.monotonic()
        else:
            await self._let_watchers_read()

    def _write(self, text: str, annotations: Sequence[messages_pb2.Annotation] = ()) -> None:
        """Add a piece to the open reply and announce it, with the annotations that lie in it
        (kept in the reply without their delta `index`)."""
        assert self._message is not None
        self._written.append(text)
        # Built in place rather than copied into an event, as `publish` does: once per piece.
        event = runs_pb2.RunEvent()
        delta = event.thread_message_delta
        delta.id = self._message.id
        # The text is the reply's last part: the images of the round before come first.
        last = len(self._message.content) - 1
        part = delta.content.add(index=last).part.text
        part.value = text
        if annotations:
            part.annotations.extend(annotations)
            kept = self._message.content[last].text.annotations
            for annotation in annotations:
                kept.append(annotation)
                kept[-1].ClearField("index")
        self.ctx.hub.publish(self.run.id, event)

    def _release_held_text(self) -> None:
        """The reply ends: write what the annotator still holds back (an unfinished marker)."""
        if self._annotator is None or not self._message_open():
            return
        text, annotations = self._annotator.flush()
        if text or annotations:
            self._write(text, annotations)

    def _reply_so_far(self) -> messages_pb2.Message:
        """The open reply with all its text."""
        assert self._message is not None
        if self._written:
            self._message.content[-1].text.value += "".join(self._written)
            self._written.clear()
        return self._message

    def _message_open(self) -> bool:
        return (
            self._message is not None
            and self._message.status == messages_pb2.MESSAGE_STATUS_IN_PROGRESS
        )

    async def _open_message(self) -> None:
        reply = None
        if self._unannounced is not None:
            stored, self._unannounced = self._unannounced, None
            reply = await stored
        if reply is None:
            reply = self._new_reply()
            await self._save(steps=[reply.step], messages=[reply.message])
        message, step = reply.message, reply.step
        self._message, self._message_step = message, step
        self._publish("thread_run_step_created", step)
        self._publish("thread_run_step_in_progress", step)
        announced = _without_content(message)
        self._publish("thread_message_created", announced)
        self._publish("thread_message_in_progress", announced)
        if len(message.content) > 1:
            parts = runs_pb2.RunEvent()
            parts.thread_message_delta.id = message.id
            for index, part in enumerate(message.content[:-1]):
                parts.thread_message_delta.content.add(index=index, part=part)
            self.ctx.hub.publish(self.run.id, parts)

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
        ended = self._ended_reply(truncated, usage)
        await self._save(steps=[ended.step], messages=[ended.message])
        self._publish_ended(ended, truncated)

    def _ended_reply(self, truncated: bool, usage: common_pb2.Usage | None) -> Reply:
        """The open reply as it ends: copies, so that it stays open here until that is stored
        (a store that refuses leaves it to be ended otherwise, as incomplete)."""
        assert self._message is not None
        assert self._message_step is not None
        self._release_held_text()
        message, step = messages_pb2.Message(), runs_pb2.RunStep()
        message.CopyFrom(self._reply_so_far())
        step.CopyFrom(self._message_step)
        now = self.ctx.now()
        if truncated:
            message.status = messages_pb2.MESSAGE_STATUS_INCOMPLETE
            message.incomplete_at = now
            message.incomplete_details.reason = messages_pb2.MESSAGE_INCOMPLETE_REASON_MAX_TOKENS
        else:
            message.status = messages_pb2.MESSAGE_STATUS_COMPLETED
            message.completed_at = now
        step.status = runs_pb2.RUN_STEP_STATUS_COMPLETED
        step.completed_at = now
        if usage is not None:
            step.usage.CopyFrom(usage)
        return Reply(message, step)

    def _publish_ended(self, ended: Reply, truncated: bool) -> None:
        """Take the stored end of the reply as the reply's state, and announce it."""
        assert self._message is not None
        assert self._message_step is not None
        self._message.CopyFrom(ended.message)
        self._message_step.CopyFrom(ended.step)
        self._publish(
            "thread_message_incomplete" if truncated else "thread_message_completed",
            self._message,
        )
        self._publish("thread_run_step_completed", self._message_step)

    async def _append_tool_call(
        self,
        calls: dict[int, runs_pb2.ToolCall],
        index: int,
        call_id: str | None,
        name: str | None,
        arguments: str,
    ) -> None:
        if self._tool_step is None:
            await self._drop_unannounced_reply()
            if self._message_open():
                # One open step at a time: the reply so far is done once the model turns to
                # tools.
                await self._close_message(False, None)
            step = self._new_step(runs_pb2.StepDetails(tool_calls=runs_pb2.ToolCalls()))
            self._tool_step = step
            await self._save(steps=[step])
            self._publish("thread_run_step_created", step)
            self._publish("thread_run_step_in_progress", step)
        call = calls.get(index)
        late_name: str | None = None
        if call is None:
            call = runs_pb2.ToolCall(
                index=index,
                id=call_id or ids.new_id(ids.CALL),
                function=runs_pb2.FunctionCall(name=name or ""),
            )
            calls[index] = call
            # As OpenAI streams a call: a first delta that names it, with no arguments yet,
            # then the arguments piece by piece. The SDKs' helpers report the first delta of
            # an index as the call's creation and only the later ones as its deltas, so
            # arguments in the first would never reach a tool-call-delta callback.
            self._announce_call_piece(index, call_id=call.id, name=call.function.name)
        elif name and not call.function.name:
            call.function.name = late_name = name
        if arguments or late_name:
            before = call.function.arguments
            call.function.arguments += arguments
            hosted = self._hosted.get(call.function.name)
            if hosted is None:
                self._announce_call_piece(index, name=late_name, arguments=arguments)
            else:
                self._announce_hosted_piece(index, hosted, before, call.function.arguments)
        await self._let_watchers_read()

    def _announce_call_piece(
        self,
        index: int,
        *,
        call_id: str | None = None,
        name: str | None = None,
        arguments: str = "",
    ) -> None:
        """Publish one `thread.run.step.delta` of the open tool step, built in place (once
        per piece of arguments: `publish` would copy it)."""
        event, piece = self._tool_delta(index)
        if call_id is not None:
            piece.id = call_id
        hosted = self._hosted.get(name) if name is not None else None
        if hosted is not None:
            hosted.announce(piece)
            self.ctx.hub.publish(self.run.id, event)
            return
        piece.function.SetInParent()
        if name is not None:
            piece.function.name = name
        piece.function.arguments = arguments
        self.ctx.hub.publish(self.run.id, event)

    def _announce_hosted_piece(
        self, index: int, hosted: HostedTool, before: str, after: str
    ) -> None:
        """Publish what a hosted call's tool shows of its growing arguments, if anything."""
        event, piece = self._tool_delta(index)
        if hosted.stream(before, after, piece):
            self.ctx.hub.publish(self.run.id, event)

    def _announce_outputs(self, calls: Sequence[runs_pb2.ToolCall]) -> None:
        """Publish, for each executed hosted call whose tool streams one, the delta of what
        it produced."""
        for call in calls:
            hosted = self.ctx.hosted.get(call.WhichOneof("kind"))
            if hosted is None:
                continue
            event, piece = self._tool_delta(call.index)
            if hosted.conclude(call, piece):
                self.ctx.hub.publish(self.run.id, event)

    def _tool_delta(self, index: int) -> tuple[runs_pb2.RunEvent, runs_pb2.ToolCall]:
        """A `thread.run.step.delta` of the open tool step, and its one call piece (of the call
        at `index`) to fill."""
        assert self._tool_step is not None
        event = runs_pb2.RunEvent()
        delta = event.thread_run_step_delta
        delta.id = self._tool_step.id
        return event, delta.step_details.tool_calls.tool_calls.add(index=index)

    async def _let_watchers_read(self) -> None:
        moment = time.monotonic()
        if moment - self._relayed_at >= RELAY_INTERVAL_SECONDS:
            self._relayed_at = moment
            await asyncio.sleep(0)

    async def _tool_round(self, calls: list[runs_pb2.ToolCall]) -> bool:
        """Run the hosted and the server's tools; hand the rest to the client. True to call the
        model again."""
        step = self._tool_step
        assert step is not None
        step.step_details.tool_calls.ClearField("tool_calls")
        step.step_details.tool_calls.tool_calls.extend(calls)
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
        self._announce_outputs(step.step_details.tool_calls.tool_calls)
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
        ended = self._ended_reply(False, reply_usage) if self._message_open() else None
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
        self._publish_ended(ended, False)
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
        message, message_step = self._message, self._message_step
        if message is not None and message.status == messages_pb2.MESSAGE_STATUS_IN_PROGRESS:
            self._release_held_text()
            message = self._reply_so_far()
            message.status = messages_pb2.MESSAGE_STATUS_INCOMPLETE
            message.incomplete_at = now
            message.incomplete_details.reason = reason
            await self._save(messages=[message])
            self._publish("thread_message_incomplete", message)
        if step_end is None:
            return
        status, error = step_end
        open_steps = [
            s
            for s in (message_step, self._tool_step)
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


STEP_ERROR_CODES = frozenset({"server_error", "rate_limit_exceeded"})
"""The codes OpenAI's run step `last_error` has."""

STEP_EVENTS = {
    runs_pb2.RUN_STEP_STATUS_COMPLETED: "thread_run_step_completed",
    runs_pb2.RUN_STEP_STATUS_FAILED: "thread_run_step_failed",
    runs_pb2.RUN_STEP_STATUS_CANCELLED: "thread_run_step_cancelled",
    runs_pb2.RUN_STEP_STATUS_EXPIRED: "thread_run_step_expired",
}


def _without_content(message: messages_pb2.Message) -> messages_pb2.Message:
    """A reply as OpenAI announces it: no content yet, whatever is stored.

    The stored reply holds its (empty) text part from the start: the pieces are appended to
    it, and a read mid-stream finds it. The stream announces none, and its first delta adds
    the part: both SDKs' helpers report a text part as created when a delta adds one, never
    for a part the message came with.
    """
    announced = messages_pb2.Message()
    announced.CopyFrom(message)
    announced.ClearField("content")
    return announced


def publish(hub: RunEventHub, run_id: str, name: str, payload: Any) -> None:
    """Announce `payload` as event `name` (a copy: the engine keeps mutating its objects)."""
    event = runs_pb2.RunEvent()
    getattr(event, name).CopyFrom(payload)
    hub.publish(run_id, event)


def end_step(
    step: runs_pb2.RunStep,
    status: runs_pb2.RunStepStatus.ValueType,
    now: int,
    error: runs_pb2.RunError | None = None,
) -> None:
    """Set a step's final status and the matching timestamp."""
    step.status = status
    if status == runs_pb2.RUN_STEP_STATUS_COMPLETED:
        step.completed_at = now
    elif status == runs_pb2.RUN_STEP_STATUS_FAILED:
        step.failed_at = now
        if error is not None:
            step.last_error.CopyFrom(error)
    elif status == runs_pb2.RUN_STEP_STATUS_CANCELLED:
        step.cancelled_at = now
    elif status == runs_pb2.RUN_STEP_STATUS_EXPIRED:
        step.expired_at = now


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
