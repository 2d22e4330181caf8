"""RunsService: the contract is complete, execution arrives with the run engine.

Until then every method answers UNIMPLEMENTED (HTTP 501, not retried), so clients learn at
once that runs are not available rather than waiting on a run that never moves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, NoReturn

from compat_core import errors
from compat_core.v1 import runs_pb2, runs_pb2_grpc

_MESSAGE = "Runs are not available on this server version yet."


def _unavailable() -> NoReturn:
    raise errors.unimplemented(_MESSAGE)


async def _no_events() -> AsyncIterator[runs_pb2.RunEvent]:
    _unavailable()
    yield runs_pb2.RunEvent()  # pragma: no cover - makes this an async generator


class RunsService(runs_pb2_grpc.RunsServiceServicer):
    """Answers every run RPC with UNIMPLEMENTED."""

    async def CreateRun(self, request: runs_pb2.CreateRunRequest, context: Any) -> runs_pb2.Run:
        _unavailable()

    def CreateRunStream(
        self, request: runs_pb2.CreateRunRequest, context: Any
    ) -> AsyncIterator[runs_pb2.RunEvent]:
        return _no_events()

    async def CreateThreadAndRun(
        self, request: runs_pb2.CreateThreadAndRunRequest, context: Any
    ) -> runs_pb2.Run:
        _unavailable()

    def CreateThreadAndRunStream(
        self, request: runs_pb2.CreateThreadAndRunRequest, context: Any
    ) -> AsyncIterator[runs_pb2.RunEvent]:
        return _no_events()

    async def GetRun(self, request: runs_pb2.GetRunRequest, context: Any) -> runs_pb2.Run:
        _unavailable()

    async def ListRuns(
        self, request: runs_pb2.ListRunsRequest, context: Any
    ) -> runs_pb2.ListRunsResponse:
        _unavailable()

    async def UpdateRun(self, request: runs_pb2.UpdateRunRequest, context: Any) -> runs_pb2.Run:
        _unavailable()

    async def CancelRun(self, request: runs_pb2.CancelRunRequest, context: Any) -> runs_pb2.Run:
        _unavailable()

    async def SubmitToolOutputs(
        self, request: runs_pb2.SubmitToolOutputsRequest, context: Any
    ) -> runs_pb2.Run:
        _unavailable()

    def SubmitToolOutputsStream(
        self, request: runs_pb2.SubmitToolOutputsRequest, context: Any
    ) -> AsyncIterator[runs_pb2.RunEvent]:
        return _no_events()

    def WatchRun(
        self, request: runs_pb2.WatchRunRequest, context: Any
    ) -> AsyncIterator[runs_pb2.RunEvent]:
        return _no_events()

    async def ListRunSteps(
        self, request: runs_pb2.ListRunStepsRequest, context: Any
    ) -> runs_pb2.ListRunStepsResponse:
        _unavailable()

    async def GetRunStep(
        self, request: runs_pb2.GetRunStepRequest, context: Any
    ) -> runs_pb2.RunStep:
        _unavailable()
