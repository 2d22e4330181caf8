"""Attribute filters (`compat_core.retrieval.filters`) compiled to SQL, so a search applies
them in the database, before it ranks and counts results.

Each comparison becomes an EXISTS on the file's attribute rows (`vector_store_file_attributes`,
see migration 0009), which the primary key answers per file (or, for a selective filter,
PostgreSQL starts from a value index); `and`/`or` combine them. A comparison reads
only the column of its value's type, so an attribute of another type, or a missing one, meets
NULL (or no row at all) and the comparison is false: `ne` and `nin` hold only for attributes
of the value's type, as the contract says. Values always travel as bound parameters.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any, Final

from sqlalchemy import Column, ColumnElement, and_, exists, false, or_

from compat_core.retrieval.filters import Comparison, Compound, Filter, Scalar
from compat_core.store import schema

_ATTRIBUTES = schema.vector_store_file_attributes
_A = _ATTRIBUTES.c

_SCALAR_OPS: Final[dict[str, Callable[[Any, Any], ColumnElement[bool]]]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def clause(
    f: Filter, vector_store_id: ColumnElement[str], file_id: ColumnElement[str]
) -> ColumnElement[bool]:
    """True for the file (`vector_store_id`, `file_id`: columns of the searching query) whose
    attributes pass `f`."""
    if isinstance(f, Compound):
        parts = [clause(part, vector_store_id, file_id) for part in f.filters]
        return and_(*parts) if f.op == "and" else or_(*parts)
    return exists().where(
        _A.vector_store_id == vector_store_id,
        _A.file_id == file_id,
        _A.key == f.key,
        _holds(f),
    )


def _holds(c: Comparison) -> ColumnElement[bool]:
    """The comparison on one attribute row."""
    if c.op in ("in", "nin"):
        strings = [v for v in c.values if isinstance(v, str)]
        numbers = [v for v in c.values if not isinstance(v, str)]
        branches = [
            _member(column, values, c.op == "in")
            for column, values in ((_A.string_value, strings), (_A.number_value, numbers))
            if values
        ]
        return or_(*branches) if branches else false()
    value = c.values[0]
    return _SCALAR_OPS[c.op](_column(value), value)


def _member(column: Column[Any], values: Sequence[Scalar], inside: bool) -> ColumnElement[bool]:
    # NULL NOT IN (...) is NULL, so `nin` also holds only for an attribute of this type.
    return column.in_(values) if inside else column.not_in(values)


def _column(value: Scalar) -> Column[Any]:
    # bool first: it is an int, so also a number, to Python.
    if isinstance(value, bool):
        return _A.bool_value
    if isinstance(value, str):
        return _A.string_value
    return _A.number_value
