"""Hosted tools: tools that OpenAI runs on its own side (file_search, code_interpreter), run here
by the engine.

The model knows no hosted tools, only functions, so each is offered as a function named after
its kind (`file_search`), and a call of that function is the tool's call. From there a hosted
tool owns everything particular to it, so that the engine handles every one alike and knows
none by name:

- `function`: the definition the model is offered when the run enables the tool;
- `announce`: the first delta of a call, as OpenAI streams it;
- `stream`: what a delta shows of the arguments the model is writing (OpenAI shows none of a
  file_search call, and code_interpreter's code as it is written);
- `execute`: the work, which turns the model's function call into the step's own kind of call
  (`ToolCall.file_search`), holding all a later model call needs to be shown of it;
- `replay`: what a model call is shown of a stored call, as the function call and the tool
  message it stands for: after a tool round, a restart or a resume alike;
- `conclude`: the delta that shows what an executed call produced (code_interpreter's
  outputs), if the tool streams one;
- `annotator`: what the run's stored calls make of the reply's text (file_search's citation
  markers become `file_citation` annotations);
- `reply_parts`: content parts the reply after a round of calls begins with
  (code_interpreter's images).

The registry (`HostedTools`) is built once per core and keyed by that kind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Protocol

from compat_core.store.base import Store
from compat_core.v1 import common_pb2, messages_pb2, runs_pb2


@dataclass(frozen=True, slots=True)
class HostedCall:
    """One call of a hosted tool, to execute."""

    store: Store
    run: runs_pb2.Run
    # The call as the model made it (a function call); `execute` changes it, in place, into
    # the tool's own kind of call.
    call: runs_pb2.ToolCall
    # How many calls of this tool the run made before this one, from 0.
    ordinal: int


class ToolFailure(Exception):
    """A hosted call that cannot succeed: the run ends failed with this as its `last_error`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Annotated(NamedTuple):
    """Reply text to send and store now, and the annotations that lie in it, each with its
    `index` among the text part's annotations (for the delta; a stored message has none)."""

    text: str
    annotations: Sequence[messages_pb2.Annotation] = ()


class ReplyAnnotator(Protocol):
    """Annotates one reply as the model writes it. It may hold back the end of what it was fed
    (a marker not finished yet); `flush` releases that once the reply is over."""

    def feed(self, text: str) -> Annotated: ...

    def flush(self) -> Annotated: ...


async def tool_resources(
    store: Store, run: runs_pb2.Run
) -> tuple[common_pb2.ToolResources, common_pb2.ToolResources]:
    """What a hosted call may use, as it is now (so a resource attached since the run began
    counts): the run's own tool resources (a create-thread-and-run request's) or else its
    assistant's, and its thread's. Empty ones where there is none (deleted meanwhile)."""
    if run.HasField("tool_resources"):
        own = run.tool_resources
    else:
        assistant = await store.get_assistant(run.assistant_id)
        own = assistant.tool_resources if assistant else common_pb2.ToolResources()
    thread = await store.get_thread(run.thread_id)
    return own, thread.tool_resources if thread else common_pb2.ToolResources()


class HostedTool(ABC):
    """One hosted tool; see the module's docstring for what each method is for."""

    kind: ClassVar[str]
    """The `Tool` and `ToolCall` oneof field of the tool, and the function name it is offered
    under."""

    @abstractmethod
    def function(self, tool: common_pb2.Tool) -> dict[str, Any]:
        """The Chat Completions function definition (`name`, `description`, `parameters`)
        offered for the run's `tool`."""

    def announce(self, piece: runs_pb2.ToolCall) -> None:
        """Fill the first delta of a call (its index and ID are set): its kind, empty."""
        getattr(piece, self.kind).SetInParent()

    def stream(self, before: str, after: str, piece: runs_pb2.ToolCall) -> bool:
        """Fill a delta (its index is set) for the model's arguments growing from `before` to
        `after`; False when there is nothing to show."""
        return False

    def conclude(self, call: runs_pb2.ToolCall, piece: runs_pb2.ToolCall) -> bool:
        """Fill a delta (its index is set) with what the executed `call` produced; False
        when the tool streams no such delta."""
        return False

    @abstractmethod
    async def execute(self, hosted: HostedCall) -> None:
        """Do the call and turn `hosted.call` into the tool's kind of call; raises ToolFailure
        when the run cannot go on."""

    @abstractmethod
    def replay(self, call: runs_pb2.ToolCall, ordinal: int) -> tuple[str, str]:
        """The function call's arguments and the tool message a model call is shown for a
        stored call, the `ordinal`-th of its kind in the run."""

    def annotator(self, calls: Sequence[runs_pb2.ToolCall]) -> ReplyAnnotator | None:
        """What annotates a reply written after the run's `calls` of this tool (in order);
        None if nothing would."""
        return None

    def reply_parts(self, calls: Sequence[runs_pb2.ToolCall]) -> list[messages_pb2.MessageContent]:
        """The content parts a reply begins with, after a round of these `calls` (those
        of the run's latest tool step)."""
        return []


class HostedTools:
    """The hosted tools a core runs, by kind."""

    def __init__(self, tools: Iterable[HostedTool] = ()) -> None:
        self._by_kind = {tool.kind: tool for tool in tools}

    def get(self, kind: str | None) -> HostedTool | None:
        return self._by_kind.get(kind) if kind is not None else None

    def offered(self, tools: Sequence[common_pb2.Tool]) -> dict[str, HostedTool]:
        """The hosted tools among a run's `tools`, by the function name the model calls."""
        return {
            kind: tool
            for kind, tool in self._by_kind.items()
            if any(entry.WhichOneof("kind") == kind for entry in tools)
        }

    def numbered(
        self,
        steps: Sequence[runs_pb2.RunStep],
        calls: Iterable[runs_pb2.ToolCall],
        offered: dict[str, HostedTool],
    ) -> list[tuple[HostedTool, runs_pb2.ToolCall, int]]:
        """The model's `calls` of the `offered` tools, each with its tool and its ordinal: how
        many calls of that tool come before it, in `steps` (the run's earlier steps) and then
        in `calls`."""
        counts = {kind: len(found) for kind, found in self._calls(steps).items()}
        numbered = []
        for call in calls:
            tool = offered.get(call.function.name) if call.HasField("function") else None
            if tool is None:
                continue
            ordinal = counts.get(tool.kind, 0)
            counts[tool.kind] = ordinal + 1
            numbered.append((tool, call, ordinal))
        return numbered

    def annotator(self, steps: Sequence[runs_pb2.RunStep]) -> ReplyAnnotator | None:
        """What annotates the next reply of a run with these `steps`: each tool's annotator
        in turn, when more than one would."""
        found = [
            annotator
            for kind, calls in self._calls(steps).items()
            if (annotator := self._by_kind[kind].annotator(calls)) is not None
        ]
        if len(found) > 1:
            return ChainedAnnotator(found)
        return found[0] if found else None

    def reply_parts(self, steps: Sequence[runs_pb2.RunStep]) -> list[messages_pb2.MessageContent]:
        """The content parts the next reply begins with: what the tools make of the calls of
        the run's latest step, if it is a round of tool calls (a reply after a reply gets
        none)."""
        if not steps or steps[-1].step_details.WhichOneof("kind") != "tool_calls":
            return []
        parts = []
        for kind, calls in self._calls(steps[-1:]).items():
            parts.extend(self._by_kind[kind].reply_parts(calls))
        return parts

    def _calls(self, steps: Sequence[runs_pb2.RunStep]) -> dict[str, list[runs_pb2.ToolCall]]:
        """The hosted calls stored in `steps`, by kind, in the run's order."""
        found: dict[str, list[runs_pb2.ToolCall]] = {kind: [] for kind in self._by_kind}
        for step in steps:
            if step.step_details.WhichOneof("kind") != "tool_calls":
                continue
            for call in step.step_details.tool_calls.tool_calls:
                kind = call.WhichOneof("kind")
                if kind in found:
                    found[kind].append(call)
        return found


class ChainedAnnotator:
    """Several annotators over one reply: the text each lets through is fed to the next.

    Annotations keep their places (no annotator changes the text, it only holds some back), but
    one is sent only with the text it lies in, and all are numbered anew in the order sent.
    """

    def __init__(self, annotators: Sequence[ReplyAnnotator]) -> None:
        self._annotators = list(annotators)
        self._waiting: list[messages_pb2.Annotation] = []
        self._sent = 0
        self._count = 0

    def feed(self, text: str) -> Annotated:
        return self._pass(text, final=False)

    def flush(self) -> Annotated:
        return self._pass("", final=True)

    def _pass(self, text: str, final: bool) -> Annotated:
        for annotator in self._annotators:
            step = annotator.feed(text) if text else Annotated("")
            if final:
                tail = annotator.flush()
                step = Annotated(step.text + tail.text, [*step.annotations, *tail.annotations])
            text = step.text
            self._waiting.extend(step.annotations)
        self._sent += len(text)
        ready = [a for a in self._waiting if a.end_index <= self._sent]
        self._waiting = [a for a in self._waiting if a.end_index > self._sent]
        ready.sort(key=lambda a: a.start_index)
        for annotation in ready:
            annotation.index = self._count
            self._count += 1
        return Annotated(text, ready)
