"""The run engine of one core: which runs execute here, and what changes them from outside.

It owns the asyncio task of each run executing here. Which core executes a run is decided in
the store: a core holds a lease on each run it executes and renews them all every
`_tick_seconds`; when a core dies its leases run out and any other core (or the same one,
restarted) claims the runs and resumes them from their last stored step. A core that stops
gracefully releases its leases, so that its runs move on at once.

Cancels and tool outputs are written to the store first, through a conditional update (so two
callers racing cannot both win), then acted on. Tool outputs make the run execute on the core
that took them. A cancel of a run executing on another core reaches it by a notice (shared
databases), and by that core's next lease renewal in any case. A sweeper on every core
expires runs whose client never answered their tool calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from compat_core import errors, tenancy
from compat_core.engine.context import EngineContext
from compat_core.engine.events import STATUS_EVENTS, STOPPING_EVENTS, RunEventHub, done_event
from compat_core.engine.executor import RunExecution
from compat_core.engine.step_events import STEP_EVENTS, end_step, publish
from compat_core.engine.stored_events import RETAIN_SECONDS, StoredEventLog
from compat_core.store.base import ACTIVE_RUN_STATUSES, Lease, LeaseLost, VectorStoreWrites
from compat_core.store.sql_events import CANCEL_CHANNEL, EVENTS_CHANNEL
from compat_core.tasks import cancel_and_wait
from compat_core.v1 import messages_pb2, runs_pb2, threads_pb2

log = logging.getLogger(__name__)

# The longest pause between two rounds of lease renewal, claims and expiry; shorter when the
# lease is short, so that a lease is renewed several times before it can run out.
MAX_TICK_SECONDS = 1.0
CLAIM_BATCH = 100
# A claim time after every lease (the year 10000, in unix milliseconds).
_FOREVER_MS = 253_402_300_800_000
PURGE_INTERVAL_SECONDS = 60.0
IN_PROGRESS = messages_pb2.MESSAGE_STATUS_IN_PROGRESS
INCOMPLETE_REASONS = {
    runs_pb2.RUN_STATUS_CANCELLED: messages_pb2.MESSAGE_INCOMPLETE_REASON_RUN_CANCELLED,
    runs_pb2.RUN_STATUS_EXPIRED: messages_pb2.MESSAGE_INCOMPLETE_REASON_RUN_EXPIRED,
}
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


@dataclass
class _Executing:
    execution: RunExecution
    task: asyncio.Task[None]
    # When this core took the run (monotonic): a lease renewal that began earlier cannot have
    # seen its lease.
    since: float


class RunEngine:
    """Starts, resumes, cancels and expires runs, and serves their event streams."""

    def __init__(self, ctx: EngineContext) -> None:
        self.ctx = ctx
        self._executions: dict[str, _Executing] = {}
        self._housekeeper: asyncio.Task[None] | None = None
        self._tick_seconds = min(MAX_TICK_SECONDS, ctx.lease_seconds / 4)
        self._purged_at = 0.0
        self._stored: StoredEventLog | None = None
        if ctx.store.shared:
            self._stored = StoredEventLog(ctx.store, ctx.now)
            ctx.hub.sink = self._stored.add

    @property
    def hub(self) -> RunEventHub:
        return self.ctx.hub

    @property
    def executing(self) -> int:
        """How many runs execute on this core now."""
        return len(self._executions)

    async def start(self) -> None:
        """Listen to the other cores, resume runs no core holds, start housekeeping."""
        await self.ctx.store.listen(self._on_notice)
        # Claims and housekeeping span every project; each run found is then worked on in its
        # own project (`_in_project_of`).
        with tenancy.all_projects():
            # A database no other core shares: whatever it holds leases on was this core's
            # before it crashed, and need not wait for those leases to run out.
            await self._claim_expired(everything=not self.ctx.store.shared)
            self._housekeeper = asyncio.create_task(self._keep_house(), name="run-housekeeping")

    async def stop(self) -> None:
        """Stop executing and release this core's runs, so another core resumes them at once."""
        if self._housekeeper is not None:
            await cancel_and_wait(self._housekeeper)
        tasks = [executing.task for executing in self._executions.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._executions.clear()
        if self._stored is not None:
            await self._stored.flush()
        try:
            with tenancy.all_projects():
                await self.ctx.store.release_leases(self.ctx.replica_id)
        except Exception:
            log.exception("releasing this core's runs failed; others resume them when leases end")
        for provider in self.ctx.providers.values():
            await provider.close()

    # Starting runs.

    async def start_run(
        self,
        run: runs_pb2.Run,
        messages: Sequence[messages_pb2.Message] = (),
        thread: threads_pb2.Thread | None = None,
        vector_stores: VectorStoreWrites | None = None,
        active_runs_limit: int = 0,
    ) -> None:
        """Store a new run (and its thread, messages and `vector_stores` writes, under its
        project's `active_runs_limit`, see `Store.create_run`), announce it, execute it.

        The run is announced created and queued as `run` says, and stored already started
        (in progress, with the reply of a run that can only answer in text) in the same
        transaction: one write less between the request and the model's first token. Its
        execution goes on from there.
        """
        started = runs_pb2.Run()
        started.CopyFrom(run)
        execution = RunExecution(self.ctx, started)
        reply = execution.begin()
        stored = await self.ctx.store.create_run(
            started, messages, thread, self._lease(), reply, vector_stores, active_runs_limit
        )
        if not stored:
            raise errors.not_found(f"No thread found with id '{run.thread_id}'.", "thread_id")
        self.hub.open(run.id, 0)
        if thread is not None:
            publish(self.hub, run.id, "thread_created", thread)
        publish(self.hub, run.id, "thread_run_created", run)
        publish(self.hub, run.id, "thread_run_queued", run)
        publish(self.hub, run.id, "thread_run_in_progress", started)
        self._launch(execution)

    def _execute(self, run: runs_pb2.Run) -> None:
        self._launch(RunExecution(self.ctx, run))

    def _launch(self, execution: RunExecution) -> None:
        run = execution.run
        task = asyncio.create_task(execution.execute(), name=f"run-{run.id}")
        self._executions[run.id] = _Executing(execution, task, time.monotonic())
        task.add_done_callback(functools.partial(self._forget, run.id))

    def _forget(self, run_id: str, task: asyncio.Task[None]) -> None:
        current = self._executions.get(run_id)
        if current is not None and current.task is task:
            del self._executions[run_id]

    def _lease(self) -> Lease:
        expires_at_ms = int((time.time() + self.ctx.lease_seconds) * 1000)
        return Lease(self.ctx.replica_id, expires_at_ms)

    async def _open_log(self, run_id: str) -> None:
        """Before announcing anything of a run another core may have executed."""
        after = 0
        if self._stored is not None:
            after = await self.ctx.store.last_event_sequence(run_id)
        self.hub.open(run_id, after)

    # Changes from outside.

    async def cancel(self, thread_id: str, run_id: str) -> runs_pb2.Run:
        """Mark the run `cancelling` at once; it becomes `cancelled` as soon as it stops."""
        before: list[runs_pb2.RunStatus.ValueType] = []

        def mutate(run: runs_pb2.Run) -> None:
            if run.status not in ACTIVE_RUN_STATUSES:
                raise errors.precondition(
                    f"Cannot cancel run with status '{STATUS_NAMES[run.status]}'.", "run_id"
                )
            before.append(run.status)
            run.status = runs_pb2.RUN_STATUS_CANCELLING

        # The lease only applies if no core holds the run: one that waited for tool outputs.
        run = await self._update(thread_id, run_id, mutate, self._lease())
        executing = self._executions.get(run.id)
        if executing is not None:
            self._cancel_here(executing, run)
        elif before[-1] == runs_pb2.RUN_STATUS_REQUIRES_ACTION:
            await self._open_log(run.id)
            publish(self.hub, run.id, "thread_run_cancelling", run)
            await self._end_idle(
                run,
                runs_pb2.RUN_STATUS_CANCELLED,
                runs_pb2.RUN_STEP_STATUS_CANCELLED,
                holder=self.ctx.replica_id,
            )
        else:
            # Another core executes it (or will claim it): it learns of the stored cancel
            # from this notice, else from its next lease renewal.
            await self.ctx.store.request_cancel(run.id)
        return run

    def _cancel_here(self, executing: _Executing, run: runs_pb2.Run) -> None:
        execution = executing.execution
        if execution.cancel_requested:
            return
        execution.cancel_requested = True
        publish(self.hub, run.id, "thread_run_cancelling", run)
        # A task cancelled before its first step never enters `execute`'s handlers, so a cancel
        # that arrives that early is left to `execute` itself.
        if execution.started:
            executing.task.cancel()

    def _cancel_noticed(self, run_id: str) -> None:
        """Another core stored a cancel of a run executing here."""
        executing = self._executions.get(run_id)
        if executing is None:
            return
        run = runs_pb2.Run()
        run.CopyFrom(executing.execution.run)
        run.status = runs_pb2.RUN_STATUS_CANCELLING
        self._cancel_here(executing, run)

    def _on_notice(self, channel: str, payload: str) -> None:
        if channel == CANCEL_CHANNEL:
            self._cancel_noticed(payload)
        elif channel == EVENTS_CHANNEL and self._stored is not None:
            self._stored.wake(payload)

    async def submit_tool_outputs(
        self, thread_id: str, run_id: str, outputs: Sequence[runs_pb2.ToolOutput]
    ) -> tuple[runs_pb2.Run, int]:
        """Record the client's outputs (each pending call exactly once) and resume the run here.

        Returns the run and the sequence of the last event before those the resumption
        announces (where a stream of them starts).
        """
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

        run = await self._update(thread_id, run_id, mutate, self._lease())
        await self._open_log(run.id)
        position = self.hub.last_sequence(run.id)
        step = await self._open_tool_step(run.id)
        if step is not None:
            for call in step.step_details.tool_calls.tool_calls:
                if call.id in answers:
                    call.function.output = answers[call.id]
            end_step(step, runs_pb2.RUN_STEP_STATUS_COMPLETED, self.ctx.now())
            await self.ctx.store.save_progress(steps=[step], holder=self.ctx.replica_id)
            publish(self.hub, run.id, "thread_run_step_completed", step)
        publish(self.hub, run.id, "thread_run_queued", run)
        self._execute(run)
        return run, position

    async def _update(
        self,
        thread_id: str,
        run_id: str,
        mutate: Callable[[runs_pb2.Run], None],
        lease: Lease,
    ) -> runs_pb2.Run:
        updated = await self.ctx.store.update_run(thread_id, run_id, mutate, lease)
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

    async def _end_idle(
        self,
        run: runs_pb2.Run,
        status: runs_pb2.RunStatus.ValueType,
        step_status: runs_pb2.RunStepStatus.ValueType,
        guard: Callable[[runs_pb2.Run], None] | None = None,
        holder: str | None = None,
    ) -> None:
        """End a run no task executes, with whatever it left open, in one transaction.

        Open parts are a tool step waiting for outputs, or (a run whose core died) a step and
        reply that were being written: the reply so far stays, `incomplete`.
        """
        await self._open_log(run.id)
        now = self.ctx.now()
        steps = [
            step
            for step in await self.ctx.store.run_steps(run.id)
            if step.status == runs_pb2.RUN_STEP_STATUS_IN_PROGRESS
        ]
        messages = []
        for step in steps:
            if step.step_details.WhichOneof("kind") == "message_creation":
                message = await self.ctx.store.get_message(
                    run.thread_id, step.step_details.message_creation.message_id
                )
                if message is not None and message.status == IN_PROGRESS:
                    message.status = messages_pb2.MESSAGE_STATUS_INCOMPLETE
                    message.incomplete_at = now
                    message.incomplete_details.reason = INCOMPLETE_REASONS[status]
                    messages.append(message)
            end_step(step, step_status, now)
        run.status = status
        run.ClearField("required_action")
        if status == runs_pb2.RUN_STATUS_CANCELLED:
            run.cancelled_at = now
            run.ClearField("expires_at")
        await self.ctx.store.save_progress(
            run=run, steps=steps, messages=messages, guard=guard, holder=holder
        )
        for message in messages:
            publish(self.hub, run.id, "thread_message_incomplete", message)
        for ended in steps:
            publish(self.hub, run.id, STEP_EVENTS[step_status], ended)
        publish(self.hub, run.id, STATUS_EVENTS[status], run)

    # Watching.

    async def watch(
        self, run: runs_pb2.Run, after_sequence: int | None
    ) -> AsyncIterator[list[runs_pb2.RunEvent]]:
        """A run's events, in lists of those ready together (see `RunEventHub.follow_batches`):
        from `after_sequence`, else its current state then what follows."""
        if self._stored is not None and run.id not in self._executions:
            async for batch in self._watch_stored(run, after_sequence):
                yield batch
            return
        if after_sequence is not None and self.hub.has_log(run.id):
            async for batch in self.hub.follow_batches(run.id, after_sequence):
                yield batch
            return
        position = self.hub.last_sequence(run.id)
        name = STATUS_EVENTS[run.status]
        current = runs_pb2.RunEvent(sequence=position)
        getattr(current, name).CopyFrom(run)
        if name in STOPPING_EVENTS or not self.hub.has_log(run.id):
            yield [current, done_event(position)]
            return
        yield [current]
        async for batch in self.hub.follow_batches(run.id, position):
            yield batch

    async def _watch_stored(
        self, run: runs_pb2.Run, after_sequence: int | None
    ) -> AsyncIterator[list[runs_pb2.RunEvent]]:
        """A run another core executes (or executed), from the stored log."""
        assert self._stored is not None
        store = self.ctx.store
        if after_sequence is None:
            # The position first, then the state: an event in between is told twice (in the
            # state and after it), never missed.
            after_sequence = await store.last_event_sequence(run.id)
            run = await store.find_run(run.id) or run
            name = STATUS_EVENTS[run.status]
            current = runs_pb2.RunEvent(sequence=after_sequence)
            getattr(current, name).CopyFrom(run)
            if name in STOPPING_EVENTS:
                yield [current, done_event(after_sequence)]
                return
            yield [current]
        current_state = functools.partial(store.find_run, run.id)
        async for event in self._stored.follow(run.id, after_sequence, current_state):
            yield [event]

    # Housekeeping: leases, claims, expiry.

    async def _keep_house(self) -> None:
        while True:
            await asyncio.sleep(self._tick_seconds)
            for chore in (self._renew, self._claim_expired, self._expire_waiting_runs):
                try:
                    await chore()
                except Exception:
                    log.exception("run housekeeping (%s) failed", chore.__name__)
            if self._stored is not None and time.monotonic() - self._purged_at > (
                PURGE_INTERVAL_SECONDS
            ):
                self._purged_at = time.monotonic()
                try:
                    await self.ctx.store.purge_events(self.ctx.now() - int(RETAIN_SECONDS))
                except Exception:
                    log.exception("purging old run events failed")

    async def _renew(self) -> None:
        """Extend this core's leases; stop runs it lost, cancel runs cancelled elsewhere."""
        began = time.monotonic()
        renewal = await self.ctx.store.renew_leases(
            self.ctx.replica_id, self._lease().expires_at_ms
        )
        for run_id, executing in list(self._executions.items()):
            if run_id in renewal.cancelling:
                self._cancel_noticed(run_id)
            elif run_id not in renewal.held and executing.since < began:
                # Ended meanwhile (the task is finishing), or claimed by another core after
                # this one missed renewals: either way nothing more is written from here.
                executing.execution.lease_lost = True
                executing.task.cancel()

    async def _claim_expired(self, everything: bool = False) -> None:
        """Take runs whose core died (or stopped) and resume them here."""
        lease = self._lease()
        now_ms = int(time.time() * 1000)
        claimed = await self.ctx.store.claim_runs(
            lease.owner, _FOREVER_MS if everything else now_ms, lease.expires_at_ms, CLAIM_BATCH
        )
        for run in claimed:
            if run.id in self._executions:
                continue  # still executing here: this core's own lease had run out
            project = await self.ctx.store.project_of_run(run.id)
            if project is None:
                continue  # deleted with its thread since the claim
            try:
                # The run's execution task is started in here, and so keeps its project.
                with tenancy.project(project):
                    await self._resume(run)
            except LeaseLost:
                continue

    async def _resume(self, run: runs_pb2.Run) -> None:
        store = self.ctx.store
        if run.status == runs_pb2.RUN_STATUS_CANCELLING:
            await self._end_idle(
                run,
                runs_pb2.RUN_STATUS_CANCELLED,
                runs_pb2.RUN_STEP_STATUS_CANCELLED,
                holder=self.ctx.replica_id,
            )
            return
        await self._open_log(run.id)
        # Whatever was being written when the last core stopped is written again.
        steps = await store.run_steps(run.id)
        unfinished_steps = [s for s in steps if s.status == runs_pb2.RUN_STEP_STATUS_IN_PROGRESS]
        message_ids = [
            s.step_details.message_creation.message_id
            for s in unfinished_steps
            if s.step_details.WhichOneof("kind") == "message_creation"
        ]
        await store.delete_run_output([s.id for s in unfinished_steps], message_ids)
        log.info("resuming run %s (%s)", run.id, STATUS_NAMES[run.status])
        self._execute(run)

    async def _expire_waiting_runs(self) -> None:
        now = self.ctx.now()
        waiting = await self.ctx.store.runs_with_status((runs_pb2.RUN_STATUS_REQUIRES_ACTION,))
        for run in waiting:
            if not run.HasField("expires_at") or run.expires_at > now:
                continue

            def still_waiting(current: runs_pb2.Run) -> None:
                if current.status != runs_pb2.RUN_STATUS_REQUIRES_ACTION:
                    raise _AlreadyMoved

            project = await self.ctx.store.project_of_run(run.id)
            if project is None:
                continue
            with contextlib.suppress(_AlreadyMoved), tenancy.project(project):
                await self._end_idle(
                    run,
                    runs_pb2.RUN_STATUS_EXPIRED,
                    runs_pb2.RUN_STEP_STATUS_EXPIRED,
                    guard=still_waiting,
                )


class _AlreadyMoved(Exception):
    """The run left `requires_action` between the sweep's read and its update."""
