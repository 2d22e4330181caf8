"""Checking a search's attribute filter (`compat_core.retrieval.filters.parse`): what it
accepts, and the path in OpenAI's JSON that it names for each thing it refuses."""

from __future__ import annotations

import math

import pytest

from compat_core.retrieval.filters import (
    MAX_DEPTH,
    MAX_TERMS,
    Comparison,
    Compound,
    FilterError,
    parse,
)
from compat_core.v1 import vector_stores_pb2 as pb

EQ = pb.ATTRIBUTE_COMPARISON_OPERATOR_EQ
GT = pb.ATTRIBUTE_COMPARISON_OPERATOR_GT
IN = pb.ATTRIBUTE_COMPARISON_OPERATOR_IN
AND = pb.ATTRIBUTE_COMPOUND_OPERATOR_AND
OR = pb.ATTRIBUTE_COMPOUND_OPERATOR_OR


def comparison(operator: int = EQ, key: str = "k", **value: object) -> pb.AttributeFilter:
    return pb.AttributeFilter(
        comparison=pb.AttributeComparison(
            operator=operator,  # type: ignore[arg-type]
            key=key,
            value=pb.AttributeFilterValue(**value),  # type: ignore[arg-type]
        )
    )


def elements(*items: str | float) -> pb.AttributeFilterValueList:
    return pb.AttributeFilterValueList(
        elements=[
            pb.AttributeFilterListElement(string_value=item)
            if isinstance(item, str)
            else pb.AttributeFilterListElement(number_value=item)
            for item in items
        ]
    )


def compound(operator: int, *filters: pb.AttributeFilter) -> pb.AttributeFilter:
    return pb.AttributeFilter(
        compound=pb.AttributeCompound(operator=operator, filters=filters)  # type: ignore[arg-type]
    )


def nested(depth: int) -> pb.AttributeFilter:
    """A comparison under `depth - 1` compounds: `depth` levels."""
    f = comparison(string_value="v")
    for _ in range(depth - 1):
        f = compound(AND, f)
    return f


def test_a_valid_filter_keeps_each_values_json_type() -> None:
    given = compound(
        OR,
        comparison(key="s", string_value="x"),
        comparison(key="n", number_value=2),
        comparison(key="b", bool_value=False),
        comparison(IN, key="l", list_value=elements("a", 1)),
    )

    assert parse(given) == Compound(
        "or",
        (
            Comparison("eq", "s", ("x",)),
            Comparison("eq", "n", (2.0,)),
            Comparison("eq", "b", (False,)),
            Comparison("in", "l", ("a", 1.0)),
        ),
    )


def test_filters_nest_up_to_the_limit() -> None:
    parse(nested(MAX_DEPTH))
    with pytest.raises(FilterError) as info:
        parse(nested(MAX_DEPTH + 1))
    assert info.value.param == "filters" + ".filters[0]" * MAX_DEPTH


def test_a_filter_holds_a_bounded_number_of_terms() -> None:
    # A comparison counts one, and each list element one more.
    per = 9
    fits = [comparison(IN, list_value=elements(*range(per))) for _ in range(MAX_TERMS // (per + 1))]
    parse(compound(OR, *fits))
    with pytest.raises(FilterError) as info:
        parse(compound(OR, *fits, comparison(string_value="one too many")))
    assert info.value.param == f"filters.filters[{len(fits)}]"


@pytest.mark.parametrize(
    ("given", "param", "code"),
    [
        (pb.AttributeFilter(), "filters", "invalid_value"),
        (
            comparison(pb.ATTRIBUTE_COMPARISON_OPERATOR_UNSPECIFIED, string_value="v"),
            "filters.type",
            "invalid_value",
        ),
        (comparison(99, string_value="v"), "filters.type", "invalid_value"),
        (
            compound(pb.ATTRIBUTE_COMPOUND_OPERATOR_UNSPECIFIED, comparison(string_value="v")),
            "filters.type",
            "invalid_value",
        ),
        (compound(AND), "filters.filters", "empty_array"),
        (comparison(), "filters.value", "missing_required_parameter"),
        (comparison(IN, string_value="v"), "filters.value", "invalid_type"),
        (comparison(EQ, list_value=elements("v")), "filters.value", "invalid_type"),
        (comparison(GT, bool_value=True), "filters.value", "invalid_type"),
        (comparison(number_value=math.inf), "filters.value", "invalid_value"),
        (comparison(number_value=math.nan), "filters.value", "invalid_value"),
        (comparison(IN, list_value=elements("a", math.nan)), "filters.value[1]", "invalid_value"),
        (
            comparison(
                IN,
                list_value=pb.AttributeFilterValueList(
                    elements=[
                        pb.AttributeFilterListElement(string_value="a"),
                        pb.AttributeFilterListElement(),
                    ]
                ),
            ),
            "filters.value[1]",
            "invalid_type",
        ),
        (
            compound(
                AND, comparison(string_value="v"), compound(OR, comparison(99, string_value="v"))
            ),
            "filters.filters[1].filters[0].type",
            "invalid_value",
        ),
        (
            compound(OR, comparison(string_value="v"), compound(AND)),
            "filters.filters[1].filters",
            "empty_array",
        ),
    ],
)
def test_a_bad_filter_names_its_offending_part(
    given: pb.AttributeFilter, param: str, code: str
) -> None:
    with pytest.raises(FilterError) as info:
        parse(given)
    assert (info.value.param, info.value.code) == (param, code)
    assert param in info.value.message
