"""A round of the model's tool calls, as the server answers them.

Calls of the hosted tools the run enables and of the server-side tools registered in the core
run here, side by side; a function call left without an output is the client's, which the run
hands over through `requires_action`.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import MutableSequence, Sequence

import orjson

from compat_core.engine.hosted import HostedCall, HostedTool, HostedTools
from compat_core.store.base import Store
from compat_core.tools import Tool
from compat_core.v1 import runs_pb2

TOOL_TIMEOUT_SECONDS = 60.0


async def answer_calls(
    store: Store,
    run: runs_pb2.Run,
    earlier_steps: Sequence[runs_pb2.RunStep],
    calls: MutableSequence[runs_pb2.ToolCall],
    tools: dict[str, Tool],
    hosted: HostedTools,
    offered: dict[str, HostedTool],
) -> list[runs_pb2.ToolCall]:
    """Answer, in place, every call of `calls` the server runs: a hosted tool's (`offered` by
    the run) becomes that tool's kind of call, a server-side tool's gets its output. The
    function calls left for the client, in order. Raises `ToolFailure` when a hosted call ends
    the run."""
    numbered = hosted.numbered(earlier_steps, calls, offered)
    server = [c for c in calls if c.function.name in tools and c.function.name not in offered]
    outputs, _ = await asyncio.gather(
        asyncio.gather(*(run_tool(tools[c.function.name], c.function.arguments) for c in server)),
        asyncio.gather(
            *(
                tool.execute(HostedCall(store, run, call, ordinal))
                for tool, call, ordinal in numbered
            )
        ),
    )
    for call, output in zip(server, outputs, strict=True):
        call.function.output = output
    return [
        c for c in calls if c.WhichOneof("kind") == "function" and not c.function.HasField("output")
    ]


def required_action(pending: Sequence[runs_pb2.ToolCall]) -> runs_pb2.RequiredAction:
    """What the client must answer: the function calls left to it."""
    return runs_pb2.RequiredAction(
        tool_calls=[
            runs_pb2.RequiredToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments)
            for c in pending
        ]
    )


async def run_tool(tool: Tool, arguments: str) -> str:
    """Run a server-side tool; any failure becomes its output text so the model can react."""
    try:
        parsed = orjson.loads(arguments or "{}")
        if not isinstance(parsed, dict):
            return f"Error: the arguments of {tool.name} must be a JSON object."
        if inspect.iscoroutinefunction(tool.function):
            result = await asyncio.wait_for(tool.function(**parsed), TOOL_TIMEOUT_SECONDS)
        else:
            result = await asyncio.wait_for(
                asyncio.to_thread(tool.function, **parsed), TOOL_TIMEOUT_SECONDS
            )
    except TimeoutError:
        return f"Error: {tool.name} did not finish within {TOOL_TIMEOUT_SECONDS:g} seconds."
    except Exception as exc:
        return f"Error: {type(exc).__name__}: {exc}"
    if isinstance(result, str):
        return result
    try:
        return orjson.dumps(result).decode()
    except TypeError:
        return str(result)
