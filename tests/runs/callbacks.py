"""What the SDKs' stream helpers report for a run, and what they report for OpenAI's own streams.

Both helpers (Python's `AssistantEventHandler`, Node's `AssistantStream`) derive their
callbacks from the events: text is "created" when a delta adds a content part the message did
not have, a tool call when a step delta names an index not seen yet, "done" when the next part
or call starts or its message, step or run ends. OpenAI announces a message with `content: []`
and a tool call with a first delta that carries its `id`, `type` and `name` and empty
`arguments`; the pieces follow. `openai_counts` is what that sequence gives, so a server whose
payloads differ shows up here as a missing or extra callback.

`Observed` is what one stream reported, in names shared by both SDKs (snake case, no `on_`),
filled by the Python handler in `test_stream_callbacks` or from the Node script's JSON.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

Sdk = Literal["python", "node"]

# Every callback both helpers have, in shared names.
CALLBACKS = (
    "text_created",
    "text_delta",
    "text_done",
    "image_file_done",
    "message_created",
    "message_delta",
    "message_done",
    "run_step_created",
    "run_step_delta",
    "run_step_done",
    "tool_call_created",
    "tool_call_delta",
    "tool_call_done",
    "end",
)
# Those only one SDK has, and how often a stream that ends normally fires them.
PYTHON_ONLY = {"exception": 0, "timeout": 0}
NODE_ONLY = {"connect": 1, "run": 1, "error": 0, "abort": 0}


def snake(name: str) -> str:
    """`toolCallDelta` → `tool_call_delta`."""
    return re.sub(r"([A-Z])", r"_\1", name).lower()


@dataclass
class Observed:
    """What a stream helper reported for one stream."""

    # Callbacks fired, by shared name.
    counts: Counter[str] = field(default_factory=Counter)
    # The raw events it received, by SSE event name.
    events: Counter[str] = field(default_factory=Counter)
    # The text of the text-delta callbacks, joined.
    text: str = ""
    # The text each text-created and text-done callback was given.
    created_texts: list[str] = field(default_factory=list)
    done_texts: list[str] = field(default_factory=list)
    # (id, status, text) of each message-done callback.
    done_messages: list[tuple[str, str, str]] = field(default_factory=list)
    # The arguments each tool-call-created callback was given, by call ID.
    created_arguments: dict[str, str] = field(default_factory=dict)
    # The argument pieces of the tool-call-delta callbacks, joined, by call ID.
    delta_arguments: dict[str, str] = field(default_factory=dict)
    # (id, name, arguments) of each tool-call-done callback.
    done_calls: list[tuple[str, str, str]] = field(default_factory=list)
    # (type, status) of each run-step-done callback.
    done_steps: list[tuple[str, str]] = field(default_factory=list)
    # (id, status) of the run the stream ended with.
    run: tuple[str, str] = ("", "")

    @classmethod
    def from_node(cls, data: dict[str, Any]) -> Observed:
        """From the JSON the Node script prints for one stream."""
        return cls(
            counts=Counter({snake(name): count for name, count in data["counts"].items()}),
            events=Counter(data["events"]),
            text=data["text"],
            created_texts=data["createdTexts"],
            done_texts=data["doneTexts"],
            done_messages=[tuple(m) for m in data["doneMessages"]],
            created_arguments=data["createdArguments"],
            delta_arguments=data["deltaArguments"],
            done_calls=[tuple(c) for c in data["doneCalls"]],
            done_steps=[tuple(s) for s in data["doneSteps"]],
            run=(data["run"]["id"], data["run"]["status"]),
        )


def openai_counts(
    sdk: Sdk,
    *,
    messages: int = 0,
    text_deltas: int = 0,
    steps_created: int = 0,
    steps_done: int = 0,
    calls: int = 0,
    argument_deltas: int = 0,
    tool_step_done_in_stream: bool = False,
) -> dict[str, int]:
    """The callbacks OpenAI's event sequence gives a helper, for a stream with `messages`
    one-part text messages written in `text_deltas` deltas, `calls` function calls whose
    arguments come in `argument_deltas` pieces (after each call's first delta, which names it),
    and the steps it creates and ends.

    `tool_step_done_in_stream`: the tool step ends in this stream and a message step follows
    it. Python's helper never forgets the last tool call it reported, so it reports it done
    again at the end of every later step and of the run; Node's forgets it when its step ends.
    """
    counts = dict.fromkeys(CALLBACKS, 0)
    counts.update(
        text_created=messages,
        text_delta=text_deltas,
        text_done=messages,
        message_created=messages,
        message_delta=text_deltas,
        message_done=messages,
        run_step_created=steps_created,
        run_step_delta=calls + argument_deltas,
        run_step_done=steps_done,
        tool_call_created=calls,
        tool_call_delta=argument_deltas,
        tool_call_done=calls,
        end=1,
    )
    if sdk == "python" and tool_step_done_in_stream:
        counts["tool_call_done"] += 2  # at the end of the message step, and of the run
    counts.update(PYTHON_ONLY if sdk == "python" else NODE_ONLY)
    return counts


def assert_counts(observed: Observed, expected: dict[str, int]) -> None:
    """Every callback fired exactly as often as expected, and nothing else fired."""
    actual = {name: observed.counts.get(name, 0) for name in expected}
    unexpected = {name: n for name, n in observed.counts.items() if name not in expected and n}
    assert (actual, unexpected) == (expected, {}), (
        f"callbacks differ from OpenAI's sequence: got {actual}, extra {unexpected}, "
        f"expected {expected}; raw events {dict(observed.events)}"
    )
