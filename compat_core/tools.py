"""Server-side tools: Python functions the core runs when the model calls them.

A tool's name is its function's, its description the docstring, and its JSON-schema
parameters come from the signature through pydantic, so a tool is declared once, in Python.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import PydanticUserError, create_model

from compat_core.config import ConfigError

ToolFunction = Callable[..., Any] | Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Tool:
    """A registered server-side tool."""

    name: str
    description: str
    parameters: dict[str, Any]
    function: ToolFunction

    @property
    def parameters_json(self) -> str:
        return orjson.dumps(self.parameters).decode()


def tool(function: ToolFunction) -> Tool:
    """Declare a server-side tool from a sync or async function with annotated parameters."""
    signature = inspect.signature(function)
    fields: dict[str, Any] = {}
    for name, parameter in signature.parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(f"tool {function.__name__}: *args and **kwargs are not supported")
        annotation = parameter.annotation if parameter.annotation is not parameter.empty else Any
        default = parameter.default if parameter.default is not parameter.empty else ...
        fields[name] = (annotation, default)
    model = create_model(f"{function.__name__}_parameters", **fields)
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return Tool(
        name=function.__name__,
        description=inspect.getdoc(function) or "",
        parameters=schema,
        function=function,
    )


def load_tools(specs: Iterable[str]) -> list[Tool]:
    """Import each `package.module:attribute` (a Tool, a function, or a list of either).

    Modules are also looked for in the working directory, as `python -m` would: the console
    script `assistants-compat` puts only its own directory on `sys.path`, and a user who
    keeps `mytools.py` beside their `.env` expects `COMPAT_TOOLS=mytools:add` to find it. It
    goes last, so a file there never hides an installed package the server itself imports.

    Raises ConfigError naming COMPAT_TOOLS, the entry and what went wrong, in one line.
    """
    specs = list(specs)
    if specs and os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    loaded: list[Tool] = []
    for spec in specs:
        module_name, sep, attribute = spec.partition(":")
        if not sep or not module_name or not attribute:
            raise ConfigError(
                f"COMPAT_TOOLS entry {spec!r} must look like package.module:attribute"
            )
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not f"{module_name}.".startswith(f"{exc.name}."):
                raise ConfigError(
                    f"COMPAT_TOOLS entry {spec!r}: importing module {module_name!r} failed: {exc}"
                ) from exc
            raise ConfigError(
                f"COMPAT_TOOLS entry {spec!r}: no module {exc.name!r} in the working directory "
                f"({os.getcwd()}) or the installed packages"
            ) from exc
        except Exception as exc:
            raise ConfigError(
                f"COMPAT_TOOLS entry {spec!r}: importing module {module_name!r} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        try:
            value = getattr(module, attribute)
        except AttributeError as exc:
            raise ConfigError(
                f"COMPAT_TOOLS entry {spec!r}: module {module_name!r} "
                f"({getattr(module, '__file__', None) or 'built in'}) has no {attribute!r}"
            ) from exc
        try:
            loaded.extend(as_tools(value, spec))
        except (ValueError, TypeError, PydanticUserError) as exc:
            raise ConfigError(f"COMPAT_TOOLS entry {spec!r}: {exc}") from exc
    return loaded


def as_tools(value: object, origin: str = "tools") -> list[Tool]:
    """Accept a Tool, a plain function, or a sequence of them."""
    if isinstance(value, Tool):
        return [value]
    if callable(value):
        return [tool(value)]
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [item for entry in value for item in as_tools(entry, origin)]
    raise ValueError(f"{origin}: {value!r} is not a tool, a function or a list of them")


def registry(tools: Iterable[Tool]) -> dict[str, Tool]:
    """Tools by name; two tools with one name are a configuration error."""
    by_name: dict[str, Tool] = {}
    for entry in tools:
        if entry.name in by_name:
            raise ConfigError(
                f"two server-side tools are named {entry.name!r} "
                "(from COMPAT_TOOLS or the tools given to the server)"
            )
        by_name[entry.name] = entry
    return by_name
