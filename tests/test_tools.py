"""Server-side tool declarations: name, docstring and pydantic schema from the signature."""

from __future__ import annotations

import sys
import types

import pytest

from compat_core.tools import Tool, as_tools, load_tools, registry, tool


def test_tool_from_sync_function() -> None:
    @tool
    def calculator(expression: str, precision: int = 2) -> str:
        """Perform calculations"""
        return expression

    assert isinstance(calculator, Tool)
    assert calculator.name == "calculator"
    assert calculator.description == "Perform calculations"
    assert calculator.parameters["type"] == "object"
    assert calculator.parameters["required"] == ["expression"]
    assert calculator.parameters["properties"]["expression"] == {"type": "string"}
    assert calculator.parameters["properties"]["precision"]["default"] == 2


def test_tool_from_async_function() -> None:
    async def lookup(city: str) -> str:
        """Weather by city"""
        return city

    (declared,) = as_tools(lookup)
    assert declared.name == "lookup"
    assert declared.function is lookup
    assert '"city"' in declared.parameters_json


def test_load_tools_from_module_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("fake_tools_mod")

    def one(x: int) -> int:
        """One"""
        return x

    def two(y: str) -> str:
        """Two"""
        return y

    module.single = one  # type: ignore[attr-defined]
    module.several = [tool(two)]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_tools_mod", module)
    loaded = load_tools(["fake_tools_mod:single", "fake_tools_mod:several"])
    assert [t.name for t in loaded] == ["one", "two"]


@pytest.mark.parametrize("spec", ["no_colon", "fake_tools_missing:thing", ":x"])
def test_bad_tool_specs_fail(spec: str) -> None:
    with pytest.raises((ValueError, ImportError)):
        load_tools([spec])


def test_duplicate_names_are_rejected() -> None:
    def same(a: int) -> int:
        """A"""
        return a

    with pytest.raises(ValueError, match="same"):
        registry([tool(same), tool(same)])
