"""Small pieces every servicer uses: the clock, update masks and list envelopes."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message as ProtoMessage

from compat_core import errors, validation
from compat_core.store.base import CursorNotFound, Page


def now() -> int:
    """Unix seconds, as every `created_at` in OpenAI's API."""
    return int(time.time())


def mask_paths(mask: FieldMask, allowed: Collection[str]) -> list[str]:
    """The mask's paths, each one a field the caller may change, else a 400 naming it."""
    paths = list(dict.fromkeys(mask.paths))
    for path in paths:
        if path not in allowed:
            raise errors.invalid(
                f"Unrecognized request argument supplied: {errors.shown(path)}",
                errors.shown(path),
                "unknown_parameter",
            )
    return paths


def apply_mask(source: ProtoMessage, target: ProtoMessage, paths: Iterable[str]) -> None:
    """Copy each named top-level field from source to target; unset in source clears it."""
    for path in paths:
        field = target.DESCRIPTOR.fields_by_name[path]
        target.ClearField(path)
        if field.is_repeated:
            values = getattr(source, path)
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                getattr(target, path).update(values)
            else:
                getattr(target, path).extend(values)
        elif field.has_presence:
            if source.HasField(path):
                if field.message_type is not None:
                    getattr(target, path).CopyFrom(getattr(source, path))
                else:
                    setattr(target, path, getattr(source, path))
        else:
            setattr(target, path, getattr(source, path))


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


class _ListResponse(Protocol):
    """What every List…Response is: `repeated … data = 1` and the envelope's cursor fields."""

    first_id: str
    last_id: str
    has_more: bool

    @property
    def data(self) -> Sequence[_Identified]: ...


R = TypeVar("R", bound=_ListResponse)


def list_response(parse: Callable[[bytes], R], page: Page[Any]) -> R:
    """The list response for a page (`parse`: its type's `FromString`), its objects taken as
    the store holds them in one parse; the cursor IDs are empty for an empty page."""
    response = parse(page.wire())
    data = response.data
    if data:
        response.first_id = data[0].id
        response.last_id = data[-1].id
    response.has_more = page.has_more
    return response


def cursor_error(exc: CursorNotFound) -> errors.ApiError:
    """A cursor naming no object of the list: a 400 on that parameter."""
    return validation.unknown_cursor(exc.param, exc.object_id)
