"""The run engine of one core: which runs execute here, and what changes them from outside.

It owns the asyncio task of each executing run. Cancels and tool outputs are written to the
store first, through a conditional update (so two callers racing cannot both win), then acted
on. On start it resumes what a previous process left unfinished, and a sweeper expires runs
whose client never answered their tool calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Sequence

from compat_core import errors
from compat_core.engine.events import STOPPING_EVENTS, RunEventHub, done_event
from compat_core.engine.executor import (
    STEP_EVENTS,
    EngineContext,
    RunExecution,
    end_step,
    publish,
)
from compat_core.store.base import ACTIVE_RUN_STATUSES
from compat_core.v1 import messages_pb2, runs_pb2, threads_pb2

log = logging.getLogger(__name__)

SWEEP_INTERVAL_SECONDS = 1.0
STATUS_NAMES = {
    runs_pb2.RUN_STATUS_QUEUED: "queued",
    runs_pb2.RUN_STATUS_IN_PROGRESS: "in_progress",
    runs_pb2.RUN_STATUS_REQUIRES_ACTION: "requires_action",
    runs_pb2.RUN_STATUS_CANCELLING: "cancelling",
    runs_pb2.RUN_STATUS_CANCELLED: "cancelled",
    runs_pb2.RUN_STATUS_FAILED: "failed",
    runs_pb2.RUN_STATUS_COMPLETED: "completed",
    runs_pb2.RUN_STATUS_INCOMPLETE: "incomplete",
    runs_pb2.RUN_STATUS_EXPIRED: "expired",
}
STATUS_EVENTS = {
    runs_pb2.RUN_STATUS_QUEUED: "thread_run_queued",
    runs_pb2.RUN_STATUS_IN_PROGRESS: "thread_run_in_progress",
    runs_pb2.RUN_STATUS_REQUIRES_ACTION: "thread_run_requires_action",
    runs_pb2.RUN_STATUS_CANCELLING: "thread_run_cancelling",
    runs_pb2.RUN_STATUS_CANCELLED: "thread_run_cancelled",
    runs_pb2.RUN_STATUS_FAILED: "thread_run_failed",
    runs_pb2.RUN_STATUS_COMPLETED: "thread_run_completed",
    runs_pb2.RUN_STATUS_INCOMPLETE: "thread_run_incomplete",
    runs_pb2.RUN_STATUS_EXPIRED: "thread_run_expired",
}


class RunEngine:
    """Starts, resumes, cancels and expires runs, and serves their event streams."""

    def __init__(self, ctx: EngineContext) -> None:
        self.ctx = ctx
        self._executions: dict[str, tuple[RunExecution, asyncio.Task[None]]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def hub(self) -> RunEventHub:
        return self.ctx.hub

    async def start(self) -> None:
        """Resume unfinished runs and start the expiry sweeper."""
        await self._recover()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="run-expiry-sweeper")

    async def stop(self) -> None:
        """Stop executing; runs stay stored as they are and resume on the next start."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        tasks = [task for _, task in self._executions.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._executions.clear()
        for provider in self.ctx.providers.values():
            await provider.close()

    # Starting runs.

    async def start_run(
        self,
        run: runs_pb2.Run,
        messages: Sequence[messages_pb2.Message] = (),
        thread: threads_pb2.Thread | None = None,
    ) -> None:
        """Store a new queued run (and its thread and messages), announce it, execute it."""
        if not await self.ctx.store.create_run(run, messages, thread):
            raise errors.not_found(f"No thread found with id '{run.thread_id}'.", "thread_id")
        if thread is not None:
            publish(self.hub, run.id, "thread_created", thread)
        publish(self.hub, run.id, "thread_run_created", run)
        publish(self.hub, run.id, "thread_run_queued", run)
        self._execute(run)

    def _execute(self, run: runs_pb2.Run) -> None:
        execution = RunExecution(self.ctx, run)
        task = asyncio.create_task(execution.execute(), name=f"run-{run.id}")
        self._executions[run.id] = (execution, task)
        task.add_done_callback(functools.partial(self._forget, run.id))

    def _forget(self, run_id: str, task: asyncio.Task[None]) -> None:
        current = self._executions.get(run_id)
        if current is not None and current[1] is task:
            del self._executions[run_id]

    # Changes from outside.

    async def cancel(self, thread_id: str, run_id: str) -> runs_pb2.Run:
        """Mark the run `cancelling` at once; it becomes `cancelled` as soon as it stops."""

        def mutate(run: runs_pb2.Run) -> None:
            if run.status not in ACTIVE_RUN_STATUSES:
                raise errors.precondition(
                    f"Cannot cancel run with status '{STATUS_NAMES[run.status]}'.", "run_id"
                )
            run.status = runs_pb2.RUN_STATUS_CANCELLING

        run = await self._update(thread_id, run_id, mutate)
        publish(self.hub, run.id, "thread_run_cancelling", run)
        current = self._executions.get(run.id)
        if current is not None:
            execution, task = current
            execution.cancel_requested = True
            if execution.started:
                task.cancel()
        else:
            await self._finish_cancelled_idle(run)
        return run

    async def submit_tool_outputs(
        self, thread_id: str, run_id: str, outputs: Sequence[runs_pb2.ToolOutput]
    ) -> runs_pb2.Run:
        """Record the client's outputs (each pending call exactly once) and resume the run."""
        answers: dict[str, str] = {}
        for index, output in enumerate(outputs):
            if output.tool_call_id in answers:
                raise errors.invalid(
                    f"Duplicate tool output for tool call '{output.tool_call_id}'.",
                    f"tool_outputs[{index}].tool_call_id",
                )
            answers[output.tool_call_id] = output.output

        def mutate(run: runs_pb2.Run) -> None:
            if run.status != runs_pb2.RUN_STATUS_REQUIRES_ACTION:
                raise errors.precondition(
                    f"Runs in status '{STATUS_NAMES[run.status]}' do not accept tool outputs.",
                    "run_id",
                )
            pending = [c.id for c in run.required_action.tool_calls]
            unknown = [call_id for call_id in answers if call_id not in pending]
            if unknown:
                raise errors.invalid(
                    f"Tool call '{unknown[0]}' is not pending on this run.", "tool_outputs"
                )
            missing = [call_id for call_id in pending if call_id not in answers]
            if missing:
                raise errors.invalid(
                    "Expected tool outputs for call_ids "
                    f"{pending}, got {list(answers)}; missing: {missing}.",
                    "tool_outputs",
                )
            run.status = runs_pb2.RUN_STATUS_QUEUED
            run.ClearField("required_action")
            run.expires_at = self.ctx.now() + self.ctx.requires_action_timeout

        run = await self._update(thread_id, run_id, mutate)
        step = await self._open_tool_step(run.id)
        if step is not None:
            for call in step.step_details.tool_calls.tool_calls:
                if call.id in answers:
                    call.function.output = answers[call.id]
            end_step(step, runs_pb2.RUN_STEP_STATUS_COMPLETED, self.ctx.now())
            await self.ctx.store.save_progress(steps=[step])
            publish(self.hub, run.id, "thread_run_step_completed", step)
        publish(self.hub, run.id, "thread_run_queued", run)
        self._execute(run)
        return run

    async def _update(self, thread_id: str, run_id: str, mutate: object) -> runs_pb2.Run:
        updated = await self.ctx.store.update_run(thread_id, run_id, mutate)  # type: ignore[arg-type]
        if updated is None:
            raise errors.not_found(
                f"No run found with id '{run_id}' in thread '{thread_id}'.", "run_id"
            )
        return updated

    async def _open_tool_step(self, run_id: str) -> runs_pb2.RunStep | None:
        steps = await self.ctx.store.run_steps(run_id)
        for step in reversed(steps):
            if (
                step.status == runs_pb2.RUN_STEP_STATUS_IN_PROGRESS
                and step.step_details.WhichOneof("kind") == "tool_calls"
            ):
                return step
        return None

    async def _finish_cancelled_idle(self, run: runs_pb2.Run) -> None:
        """Cancel a run that no task here executes (queued elsewhere, or awaiting tools)."""
        await self._end_idle(run, runs_pb2.RUN_STATUS_CANCELLED, runs_pb2.RUN_STEP_STATUS_CANCELLED)

    async def _end_idle(
        self,
        run: runs_pb2.Run,
        status: runs_pb2.RunStatus.ValueType,
        step_status: runs_pb2.RunStepStatus.ValueType,
        guard: Callable[[runs_pb2.Run], None] | None = None,
    ) -> None:
        """End a run no task executes, and its open step, in one transaction."""
        now = self.ctx.now()
        step = await self._open_tool_step(run.id)
        run.status = status
        run.ClearField("required_action")
        if status == runs_pb2.RUN_STATUS_CANCELLED:
            run.cancelled_at = now
            run.ClearField("expires_at")
        steps = []
        if step is not None:
            end_step(step, step_status, now)
            steps.append(step)
        await self.ctx.store.save_progress(run=run, steps=steps, guard=guard)
        for ended in steps:
            publish(self.hub, run.id, STEP_EVENTS[step_status], ended)
        publish(self.hub, run.id, STATUS_EVENTS[status], run)

    # Watching.

    async def watch(
        self, run: runs_pb2.Run, after_sequence: int | None
    ) -> AsyncIterator[runs_pb2.RunEvent]:
        """A run's events: from `after_sequence`, else its current state then what follows."""
        if after_sequence is not None and self.hub.has_log(run.id):
            async for event in self.hub.follow(run.id, after_sequence):
                yield event
            return
        position = self.hub.last_sequence(run.id)
        name = STATUS_EVENTS[run.status]
        current = runs_pb2.RunEvent(sequence=position)
        getattr(current, name).CopyFrom(run)
        yield current
        if name in STOPPING_EVENTS or not self.hub.has_log(run.id):
            yield done_event(position)
            return
        async for event in self.hub.follow(run.id, position):
            yield event

    # Restart recovery and expiry.

    async def _recover(self) -> None:
        store = self.ctx.store
        unfinished = await store.runs_with_status(
            (
                runs_pb2.RUN_STATUS_QUEUED,
                runs_pb2.RUN_STATUS_IN_PROGRESS,
                runs_pb2.RUN_STATUS_CANCELLING,
            )
        )
        for run in unfinished:
            if run.status == runs_pb2.RUN_STATUS_CANCELLING:
                await self._finish_cancelled_idle(run)
                continue
            # Whatever was being written when the last process stopped is written again.
            steps = await store.run_steps(run.id)
            unfinished_steps = [
                s for s in steps if s.status == runs_pb2.RUN_STEP_STATUS_IN_PROGRESS
            ]
            message_ids = [
                s.step_details.message_creation.message_id
                for s in unfinished_steps
                if s.step_details.WhichOneof("kind") == "message_creation"
            ]
            await store.delete_run_output([s.id for s in unfinished_steps], message_ids)
            log.info("resuming run %s (%s)", run.id, STATUS_NAMES[run.status])
            self._execute(run)

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self._expire_waiting_runs()
            except Exception:
                log.exception("run expiry sweep failed")
            await asyncio.sleep(SWEEP_INTERVAL_SECONDS)

    async def _expire_waiting_runs(self) -> None:
        now = self.ctx.now()
        waiting = await self.ctx.store.runs_with_status((runs_pb2.RUN_STATUS_REQUIRES_ACTION,))
        for run in waiting:
            if not run.HasField("expires_at") or run.expires_at > now:
                continue

            def still_waiting(current: runs_pb2.Run) -> None:
                if current.status != runs_pb2.RUN_STATUS_REQUIRES_ACTION:
                    raise _AlreadyMoved

            with contextlib.suppress(_AlreadyMoved):
                await self._end_idle(
                    run,
                    runs_pb2.RUN_STATUS_EXPIRED,
                    runs_pb2.RUN_STEP_STATUS_EXPIRED,
                    guard=still_waiting,
                )


class _AlreadyMoved(Exception):
    """The run left `requires_action` between the sweep's read and its update."""
