"""Vector stores: OpenAI's `vector_store` JSON ⇄ `compat_core.v1.VectorStore`."""

from __future__ import annotations

from typing import Any, Final

from compat_core.v1 import common_pb2, vector_stores_pb2
from http_edge.convert.common import (
    Json,
    Setter,
    apply_fields,
    check_keys,
    deleted_out,
    enum_name,
    expect_int32,
    expect_object,
    expect_str,
    expect_str_list,
    join,
    list_out,
    metadata_in,
    metadata_out,
    require,
)
from http_edge.errors import invalid_type, invalid_value
from http_edge.json_io import PageParams

VectorStore = vector_stores_pb2.VectorStore

_EXPIRES_AFTER_KEYS: Final = frozenset({"anchor", "days"})
_CHUNKING_KEYS: Final = frozenset({"type", "static"})
_STATIC_KEYS: Final = frozenset({"max_chunk_size_tokens", "chunk_overlap_tokens"})
_STATUS_NAMES: Final = (None, "expired", "in_progress", "completed")


def _set_name(v: VectorStore, value: object, param: str) -> None:
    v.name = expect_str(value, param)


def _set_description(v: VectorStore, value: object, param: str) -> None:
    v.description = expect_str(value, param)


def _set_metadata(v: VectorStore, value: object, param: str) -> None:
    v.metadata.update(metadata_in(value, param))


def _set_expires_after(v: VectorStore, value: object, param: str) -> None:
    obj = expect_object(value, param)
    check_keys(obj, _EXPIRES_AFTER_KEYS, param)
    v.expires_after.anchor = expect_str(require(obj, "anchor", param), join(param, "anchor"))
    v.expires_after.days = expect_int32(require(obj, "days", param), join(param, "days"))


_UPDATE: Final[dict[str, Setter]] = {
    "name": _set_name,
    "expires_after": _set_expires_after,
    "metadata": _set_metadata,
}
_STORE_FIELDS: Final[dict[str, Setter]] = {**_UPDATE, "description": _set_description}


def _chunking_in(value: object, param: str) -> vector_stores_pb2.ChunkingStrategy:
    obj = expect_object(value, param)
    check_keys(obj, _CHUNKING_KEYS, param)
    kind = require(obj, "type", param)
    strategy = vector_stores_pb2.ChunkingStrategy()
    if kind == "auto":
        strategy.auto.SetInParent()
    elif kind == "static":
        static = expect_object(require(obj, "static", param), join(param, "static"))
        check_keys(static, _STATIC_KEYS, join(param, "static"))
        for key in sorted(_STATIC_KEYS):
            number = expect_int32(
                require(static, key, join(param, "static")), f"{param}.static.{key}"
            )
            setattr(strategy.static, key, number)
    elif isinstance(kind, str):
        raise invalid_value(join(param, "type"), kind, ("auto", "static"))
    else:
        raise invalid_type(join(param, "type"), "a string", kind)
    return strategy


def create_request(body: dict[str, Any]) -> vector_stores_pb2.CreateVectorStoreRequest:
    """`file_ids` and `chunking_strategy` are carried to the core, which judges them."""
    request = vector_stores_pb2.CreateVectorStoreRequest()
    fields = dict(body)
    file_ids = fields.pop("file_ids", None)
    if file_ids is not None:
        request.file_ids.extend(expect_str_list(file_ids, "file_ids"))
    chunking = fields.pop("chunking_strategy", None)
    if chunking is not None:
        request.chunking_strategy.CopyFrom(_chunking_in(chunking, "chunking_strategy"))
    apply_fields(request.vector_store, fields, _STORE_FIELDS)
    return request


def update_request(
    store_id: str, body: dict[str, Any]
) -> vector_stores_pb2.UpdateVectorStoreRequest:
    """The body's fields become the update mask; JSON names are the proto's field names."""
    request = vector_stores_pb2.UpdateVectorStoreRequest()
    request.vector_store.id = store_id
    request.update_mask.paths.extend(apply_fields(request.vector_store, body, _UPDATE))
    return request


def list_request(page: PageParams) -> vector_stores_pb2.ListVectorStoresRequest:
    request = vector_stores_pb2.ListVectorStoresRequest(
        order=page.order, after=page.after, before=page.before
    )
    if page.limit is not None:
        request.limit = page.limit
    return request


def vector_store_out(v: VectorStore) -> Json:
    counts = v.file_counts
    out: Json = {
        "id": v.id,
        "object": "vector_store",
        "created_at": v.created_at,
        "name": v.name,
        "usage_bytes": v.usage_bytes,
        "file_counts": {
            "in_progress": counts.in_progress,
            "completed": counts.completed,
            "failed": counts.failed,
            "cancelled": counts.cancelled,
            "total": counts.total,
        },
        "status": enum_name(_STATUS_NAMES, v.status),
        "expires_at": v.expires_at if v.HasField("expires_at") else None,
        "last_active_at": v.last_active_at,
        "metadata": metadata_out(v.metadata),
    }
    if v.HasField("expires_after"):
        # Not nullable in OpenAI's schema: a store that never expires has no key at all.
        out["expires_after"] = {"anchor": v.expires_after.anchor, "days": v.expires_after.days}
    return out


def list_response_out(response: vector_stores_pb2.ListVectorStoresResponse) -> Json:
    return list_out(
        [vector_store_out(v) for v in response.data],
        response.first_id,
        response.last_id,
        response.has_more,
    )


def deleted_response_out(status: common_pb2.DeletionStatus) -> Json:
    return deleted_out(status, "vector_store.deleted")
