"""Announcing a run's objects, and ending its steps: shared by the execution of a run and by
the engine's handling of runs no execution holds (cancels, expiries, tool outputs)."""

from __future__ import annotations

from typing import Any

from compat_core.engine.events import RunEventHub
from compat_core.v1 import runs_pb2

STEP_ERROR_CODES = frozenset({"server_error", "rate_limit_exceeded"})
"""The codes OpenAI's run step `last_error` has."""

STEP_EVENTS = {
    runs_pb2.RUN_STEP_STATUS_COMPLETED: "thread_run_step_completed",
    runs_pb2.RUN_STEP_STATUS_FAILED: "thread_run_step_failed",
    runs_pb2.RUN_STEP_STATUS_CANCELLED: "thread_run_step_cancelled",
    runs_pb2.RUN_STEP_STATUS_EXPIRED: "thread_run_step_expired",
}


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
