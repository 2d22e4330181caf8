"""The tool calls one model call is making: gathered piece by piece into the run's open
`tool_calls` step, and streamed as OpenAI streams them.

Each announcement is a `thread.run.step.delta` built in place (once per piece of arguments:
`publish` would copy it). A hosted tool decides what its calls show (`HostedTool.announce`,
`stream`, `conclude`); a function call shows its name first and then its arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from compat_core import ids
from compat_core.engine.events import RunEventHub
from compat_core.engine.hosted import HostedTool, HostedTools
from compat_core.v1 import runs_pb2


class OpenToolStep:
    """A `tool_calls` step from its announcement until its calls are answered."""

    def __init__(
        self,
        hub: RunEventHub,
        run_id: str,
        step: runs_pb2.RunStep,
        hosted: HostedTools,
        offered: Mapping[str, HostedTool],
    ) -> None:
        self._hub = hub
        self._run_id = run_id
        self.step = step
        self._hosted = hosted
        # The hosted tools the run enables, by the function name the model calls them by.
        self._offered = offered
        # The calls so far, by the model's index of each.
        self.calls: dict[int, runs_pb2.ToolCall] = {}

    def add_piece(self, index: int, call_id: str | None, name: str | None, arguments: str) -> None:
        """Add a piece of the call at `index` (its start, its name, more arguments), and
        announce what it shows."""
        call = self.calls.get(index)
        late_name: str | None = None
        if call is None:
            call = runs_pb2.ToolCall(
                index=index,
                id=call_id or ids.new_id(ids.CALL),
                function=runs_pb2.FunctionCall(name=name or ""),
            )
            self.calls[index] = call
            # As OpenAI streams a call: a first delta that names it, with no arguments yet,
            # then the arguments piece by piece. The SDKs' helpers report the first delta of
            # an index as the call's creation and only the later ones as its deltas, so
            # arguments in the first would never reach a tool-call-delta callback.
            self._announce_function_piece(index, call_id=call.id, name=call.function.name)
        elif name and not call.function.name:
            call.function.name = late_name = name
        if arguments or late_name:
            before = call.function.arguments
            call.function.arguments += arguments
            hosted = self._offered.get(call.function.name)
            if hosted is None:
                self._announce_function_piece(index, name=late_name, arguments=arguments)
            else:
                self._announce_hosted_piece(index, hosted, before, call.function.arguments)

    def _announce_function_piece(
        self,
        index: int,
        *,
        call_id: str | None = None,
        name: str | None = None,
        arguments: str = "",
    ) -> None:
        event, piece = self._delta(index)
        if call_id is not None:
            piece.id = call_id
        hosted = self._offered.get(name) if name is not None else None
        if hosted is not None:
            hosted.announce(piece)
            self._hub.publish(self._run_id, event)
            return
        piece.function.SetInParent()
        if name is not None:
            piece.function.name = name
        piece.function.arguments = arguments
        self._hub.publish(self._run_id, event)

    def _announce_hosted_piece(
        self, index: int, hosted: HostedTool, before: str, after: str
    ) -> None:
        """Publish what a hosted call's tool shows of its growing arguments, if anything."""
        event, piece = self._delta(index)
        if hosted.stream(before, after, piece):
            self._hub.publish(self._run_id, event)

    def announce_outputs(self, calls: Sequence[runs_pb2.ToolCall]) -> None:
        """Publish, for each executed hosted call whose tool streams one, the delta of what
        it produced."""
        for call in calls:
            hosted = self._hosted.get(call.WhichOneof("kind"))
            if hosted is None:
                continue
            event, piece = self._delta(call.index)
            if hosted.conclude(call, piece):
                self._hub.publish(self._run_id, event)

    def _delta(self, index: int) -> tuple[runs_pb2.RunEvent, runs_pb2.ToolCall]:
        """A `thread.run.step.delta` of this step, and its one call piece (of the call at
        `index`) to fill."""
        event = runs_pb2.RunEvent()
        delta = event.thread_run_step_delta
        delta.id = self.step.id
        return event, delta.step_details.tool_calls.tool_calls.add(index=index)
