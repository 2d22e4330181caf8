"""`include`: the parts of run steps answered only to a request that asks for them.

The one such part is the text of each file_search result. The engine stores it always (a later
model call is shown it again, see `engine.file_search`), so it is taken out here, on the way
out, from every step a request did not `include` it in: steps read one by one or in a page, and
the step events of a stream. A stream of a run without a file_search tool has nothing to take
out and pays nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from compat_core import errors
from compat_core.v1 import common_pb2, runs_pb2

RESULT_CONTENT: Final = "step_details.tool_calls[*].file_search.results[*].content"
INCLUDABLE: Final = (RESULT_CONTENT,)

_STEP_EVENTS: Final = frozenset(
    {
        "thread_run_step_created",
        "thread_run_step_in_progress",
        "thread_run_step_completed",
        "thread_run_step_failed",
        "thread_run_step_cancelled",
        "thread_run_step_expired",
    }
)


def wants_content(include: Sequence[str]) -> bool:
    """Whether `include` asks for the results' content; INVALID_ARGUMENT for a value that
    names nothing includable."""
    for index, value in enumerate(include):
        if value not in INCLUDABLE:
            raise errors.invalid(
                f"Invalid value for 'include[{index}]': '{errors.shown(value)}'. Supported "
                f"values are: {', '.join(repr(v) for v in INCLUDABLE)}.",
                "include",
                "invalid_value",
            )
    return RESULT_CONTENT in include


def searches_files(tools: Iterable[common_pb2.Tool]) -> bool:
    """Whether a run with these tools can have file_search results in its steps."""
    return any(tool.WhichOneof("kind") == "file_search" for tool in tools)


def strip_content(step: runs_pb2.RunStep) -> bool:
    """Take the results' content out of `step`, in place; whether it held any."""
    if step.step_details.WhichOneof("kind") != "tool_calls":
        return False
    stripped = False
    for call in step.step_details.tool_calls.tool_calls:
        if call.WhichOneof("kind") != "file_search":
            continue
        for result in call.file_search.results:
            if result.content:
                del result.content[:]
                stripped = True
    return stripped


def without_content(events: list[runs_pb2.RunEvent]) -> list[runs_pb2.RunEvent]:
    """`events` with the results' content taken out of their steps. An event that holds some
    is copied first: the events of a run's log are shared by all its watchers."""
    kept = events
    for position, event in enumerate(events):
        name = event.WhichOneof("event")
        if name not in _STEP_EVENTS or not _has_content(getattr(event, name)):
            continue
        if kept is events:
            kept = list(events)
        copy = runs_pb2.RunEvent()
        copy.CopyFrom(event)
        strip_content(getattr(copy, name))
        kept[position] = copy
    return kept


def _has_content(step: runs_pb2.RunStep) -> bool:
    if step.step_details.WhichOneof("kind") != "tool_calls":
        return False
    return any(
        result.content
        for call in step.step_details.tool_calls.tool_calls
        if call.WhichOneof("kind") == "file_search"
        for result in call.file_search.results
    )
