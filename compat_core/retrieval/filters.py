"""Attribute filters of a vector store search: checked once, then held in a form that is
valid by construction.

A filter arrives as the contract's `AttributeFilter` (the JSON's `ComparisonFilter` or
`CompoundFilter`, from the edge or a gRPC client). `parse` checks everything the contract
promises to refuse, naming the offending part by its path in OpenAI's JSON, and returns plain
`Comparison`/`Compound` values; the store compiles those to SQL (`store.sql_filters`) without
checking anything again.

The limits (8 levels, 1000 terms) keep a filter's SQL bounded: every comparison is a
subquery and every value a bound parameter, and both databases cap how many a statement may
hold. Deeper than 8 levels is no filter a person writes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

from compat_core.v1 import vector_stores_pb2

MAX_DEPTH: Final = 8
MAX_TERMS: Final = 1000

ComparisonOp = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"]
CompoundOp = Literal["and", "or"]
Scalar = str | float | bool

_COMPARISONS: Final[dict[int, ComparisonOp]] = {
    vector_stores_pb2.ATTRIBUTE_COMPARISON_OPERATOR_EQ: "eq",
    vector_stores_pb2.ATTRIBUTE_COMPARISON_OPERATOR_NE: "ne",
    vector_stores_pb2.ATTRIBUTE_COMPARISON_OPERATOR_GT: "gt",
    vector_stores_pb2.ATTRIBUTE_COMPARISON_OPERATOR_GTE: "gte",
    vector_stores_pb2.ATTRIBUTE_COMPARISON_OPERATOR_LT: "lt",
    vector_stores_pb2.ATTRIBUTE_COMPARISON_OPERATOR_LTE: "lte",
    vector_stores_pb2.ATTRIBUTE_COMPARISON_OPERATOR_IN: "in",
    vector_stores_pb2.ATTRIBUTE_COMPARISON_OPERATOR_NIN: "nin",
}
_COMPOUNDS: Final[dict[int, CompoundOp]] = {
    vector_stores_pb2.ATTRIBUTE_COMPOUND_OPERATOR_AND: "and",
    vector_stores_pb2.ATTRIBUTE_COMPOUND_OPERATOR_OR: "or",
}
_LIST_OPS: Final = frozenset({"in", "nin"})
_ORDER_OPS: Final = frozenset({"gt", "gte", "lt", "lte"})
_TYPES: Final = ", ".join(f"'{name}'" for name in (*_COMPARISONS.values(), *_COMPOUNDS.values()))


@dataclass(frozen=True, slots=True)
class Comparison:
    """`key`'s attribute compared with `values`: one value, or the list of `in` and `nin`.

    A value's Python type is its JSON type (`bool` is never a number here), and it decides
    which attributes the comparison can hold for: those of the same type only.
    """

    op: ComparisonOp
    key: str
    values: tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class Compound:
    """`filters`, at least one, combined with `op`."""

    op: CompoundOp
    filters: tuple[Filter, ...]


Filter = Comparison | Compound


class FilterError(ValueError):
    """A filter the contract refuses; `param` is the JSON path of the offending part."""

    def __init__(self, message: str, param: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


def parse(given: vector_stores_pb2.AttributeFilter, param: str = "filters") -> Filter:
    """The checked filter; FilterError for the first rule it breaks."""
    return _Parser().filter(given, param, 1)


class _Parser:
    """One walk over a filter, counting its terms as it goes."""

    def __init__(self) -> None:
        self._terms = 0

    def _count(self, path: str, terms: int) -> None:
        self._terms += terms
        if self._terms > MAX_TERMS:
            raise FilterError(
                f"Invalid '{path}': the filter has more than {MAX_TERMS} comparisons and list "
                "elements in all.",
                path,
                "invalid_value",
            )

    def filter(self, given: vector_stores_pb2.AttributeFilter, path: str, depth: int) -> Filter:
        if depth > MAX_DEPTH:
            raise FilterError(
                f"Invalid '{path}': filters nest at most {MAX_DEPTH} levels deep.",
                path,
                "invalid_value",
            )
        kind = given.WhichOneof("kind")
        if kind == "comparison":
            return self._comparison(given.comparison, path)
        if kind == "compound":
            return self._compound(given.compound, path, depth)
        raise FilterError(
            f"Invalid '{path}': expected a comparison or compound filter.", path, "invalid_value"
        )

    def _compound(
        self, given: vector_stores_pb2.AttributeCompound, path: str, depth: int
    ) -> Compound:
        op = _COMPOUNDS.get(given.operator)
        if op is None:
            raise _bad_type(path)
        if not given.filters:
            raise FilterError(
                f"Invalid '{path}.filters': expected an array with at least 1 filter.",
                f"{path}.filters",
                "empty_array",
            )
        return Compound(
            op,
            tuple(
                self.filter(item, f"{path}.filters[{index}]", depth + 1)
                for index, item in enumerate(given.filters)
            ),
        )

    def _comparison(self, given: vector_stores_pb2.AttributeComparison, path: str) -> Comparison:
        op = _COMPARISONS.get(given.operator)
        if op is None:
            raise _bad_type(path)
        value_path = f"{path}.value"
        value = given.value
        kind = value.WhichOneof("value")
        if kind is None:
            raise FilterError(
                f"Missing required parameter: '{value_path}'.",
                value_path,
                "missing_required_parameter",
            )
        if op in _LIST_OPS:
            if kind != "list_value":
                raise _wrong_value(value_path, op, "an array of strings and numbers")
            elements = value.list_value.elements
            self._count(path, 1 + len(elements))
            return Comparison(
                op,
                given.key,
                tuple(
                    _list_element(element, f"{value_path}[{index}]")
                    for index, element in enumerate(elements)
                ),
            )
        self._count(path, 1)
        if kind == "list_value":
            raise _wrong_value(value_path, op, "a string, number or boolean")
        if kind == "bool_value" and op in _ORDER_OPS:
            raise _wrong_value(value_path, op, "a string or number")
        if kind == "string_value":
            return Comparison(op, given.key, (value.string_value,))
        if kind == "bool_value":
            return Comparison(op, given.key, (value.bool_value,))
        return Comparison(op, given.key, (_finite(value.number_value, value_path),))


def _bad_type(path: str) -> FilterError:
    return FilterError(
        f"Invalid '{path}.type': expected one of {_TYPES}.", f"{path}.type", "invalid_value"
    )


def _list_element(element: vector_stores_pb2.AttributeFilterListElement, path: str) -> Scalar:
    kind = element.WhichOneof("value")
    if kind == "string_value":
        return element.string_value
    if kind == "number_value":
        return _finite(element.number_value, path)
    raise FilterError(f"Invalid '{path}': expected a string or number.", path, "invalid_type")


def _finite(number: float, path: str) -> float:
    if not math.isfinite(number):
        raise FilterError(f"Invalid '{path}': expected a finite number.", path, "invalid_value")
    return number


def _wrong_value(path: str, op: str, expected: str) -> FilterError:
    return FilterError(
        f"Invalid '{path}': the '{op}' comparison expects {expected}.", path, "invalid_type"
    )
