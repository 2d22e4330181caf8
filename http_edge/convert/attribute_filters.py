"""A vector store search's `filters`: OpenAI's `ComparisonFilter` / `CompoundFilter` JSON →
`compat_core.v1.AttributeFilter`.

Like every converter, this checks JSON types and the closed set of `type` names (which the
proto's enums cannot carry otherwise); what values mean (a boolean compared with `gt`, an
empty compound) is the core's to judge. The one rule of meaning checked here too is the
contract's nesting limit: the conversion recurses, and a filter nested far deeper than the
core accepts would not even parse as protobuf on the core's side, a 500 instead of a 400.
"""

from __future__ import annotations

from typing import Final

from compat_core.v1 import vector_stores_pb2
from http_edge.convert.common import (
    check_keys,
    expect_list,
    expect_object,
    expect_str,
    join,
    require,
)
from http_edge.errors import HttpError, invalid_type, invalid_value

# The contract's limit (`AttributeFilter` in vector_stores.proto).
MAX_DEPTH: Final = 8

_COMPARISONS: Final = {
    "eq": vector_stores_pb2.ATTRIBUTE_COMPARISON_OPERATOR_EQ,
    "ne": vector_stores_pb2.ATTRIBUTE_COMPARISON_OPERATOR_NE,
    "gt": vector_stores_pb2.ATTRIBUTE_COMPARISON_OPERATOR_GT,
    "gte": vector_stores_pb2.ATTRIBUTE_COMPARISON_OPERATOR_GTE,
    "lt": vector_stores_pb2.ATTRIBUTE_COMPARISON_OPERATOR_LT,
    "lte": vector_stores_pb2.ATTRIBUTE_COMPARISON_OPERATOR_LTE,
    "in": vector_stores_pb2.ATTRIBUTE_COMPARISON_OPERATOR_IN,
    "nin": vector_stores_pb2.ATTRIBUTE_COMPARISON_OPERATOR_NIN,
}
_COMPOUNDS: Final = {
    "and": vector_stores_pb2.ATTRIBUTE_COMPOUND_OPERATOR_AND,
    "or": vector_stores_pb2.ATTRIBUTE_COMPOUND_OPERATOR_OR,
}
_TYPES: Final = (*_COMPARISONS, *_COMPOUNDS)
_COMPARISON_KEYS: Final = frozenset({"type", "key", "value"})
_COMPOUND_KEYS: Final = frozenset({"type", "filters"})


def filter_in(
    value: object, param: str = "filters", depth: int = 1
) -> vector_stores_pb2.AttributeFilter:
    if depth > MAX_DEPTH:
        raise HttpError(
            400,
            f"Invalid '{param}': filters nest at most {MAX_DEPTH} levels deep.",
            param=param,
            code="invalid_value",
        )
    obj = expect_object(value, param)
    kind = expect_str(require(obj, "type", param), join(param, "type"))
    if kind not in _TYPES:
        raise invalid_value(join(param, "type"), kind, _TYPES)
    out = vector_stores_pb2.AttributeFilter()
    if kind in _COMPOUNDS:
        check_keys(obj, _COMPOUND_KEYS, param)
        compound = out.compound
        compound.operator = _COMPOUNDS[kind]
        items = expect_list(require(obj, "filters", param), join(param, "filters"))
        for index, item in enumerate(items):
            compound.filters.append(filter_in(item, f"{param}.filters[{index}]", depth + 1))
        return out
    check_keys(obj, _COMPARISON_KEYS, param)
    comparison = out.comparison
    comparison.operator = _COMPARISONS[kind]
    comparison.key = expect_str(require(obj, "key", param), join(param, "key"))
    _value_in(require(obj, "value", param), join(param, "value"), comparison.value)
    return out


def _value_in(value: object, param: str, out: vector_stores_pb2.AttributeFilterValue) -> None:
    # bool before number: JSON's true is a Python int too.
    if isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int | float):
        out.number_value = float(value)
    elif isinstance(value, str):
        out.string_value = value
    elif isinstance(value, list):
        out.list_value.SetInParent()
        elements = out.list_value.elements
        for index, item in enumerate(value):
            element = elements.add()
            if isinstance(item, str):
                element.string_value = item
            elif isinstance(item, int | float) and not isinstance(item, bool):
                element.number_value = float(item)
            else:
                raise invalid_type(f"{param}[{index}]", "a string or number", item)
    else:
        raise invalid_type(param, "a string, number, boolean or array", value)
