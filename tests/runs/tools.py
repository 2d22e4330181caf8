"""The tools of the run tests: server-side ones (registered with the servers of this package)
and client-side function definitions (the server does not know them)."""

from __future__ import annotations

import ast
import asyncio
import operator
from collections.abc import Callable
from typing import Any

from openai.types.beta import FunctionToolParam

from compat_core.tools import Tool, tool

# Server-side tools


_OPERATORS: dict[type[ast.AST], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        result: float = _OPERATORS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
        return result
    raise ValueError("only + - * / on numbers")


@tool
def calculator(expression: str) -> str:
    """Perform calculations"""
    value = _evaluate(ast.parse(expression, mode="eval").body)
    return str(int(value)) if float(value).is_integer() else str(value)


@tool
def explode(reason: str) -> str:
    """Always fails"""
    raise RuntimeError(f"exploded because {reason}")


@tool
async def shout(text: str) -> str:
    """Upper-cases text (an async tool)"""
    await asyncio.sleep(0)
    return text.upper()


SERVER_TOOLS: list[Tool] = [calculator, explode, shout]

# Client-side function tools (the server does not know them).
GET_WEATHER: FunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
            "required": ["city"],
        },
    },
}
GET_TIME: FunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The time in a time zone",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}},
    },
}
