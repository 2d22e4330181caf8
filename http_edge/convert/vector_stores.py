"""Vector stores: OpenAI's `vector_store` JSON ⇄ `compat_core.v1.VectorStore`."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any, Final

from compat_core.v1 import common_pb2, vector_stores_pb2
from http_edge.convert.attribute_filters import filter_in
from http_edge.convert.common import (
    Json,
    Setter,
    apply_fields,
    check_keys,
    chunking_strategy_in,
    deleted_out,
    enum_name,
    expect_bool,
    expect_int32,
    expect_number,
    expect_object,
    expect_str,
    expect_str_list,
    join,
    list_out,
    metadata_in,
    metadata_out,
    opt_str,
    require,
)
from http_edge.errors import invalid_type, invalid_value
from http_edge.json_io import PageParams

VectorStore = vector_stores_pb2.VectorStore

_EXPIRES_AFTER_KEYS: Final = frozenset({"anchor", "days"})
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


def create_request(body: dict[str, Any]) -> vector_stores_pb2.CreateVectorStoreRequest:
    """`file_ids` and `chunking_strategy` are carried to the core, which judges them."""
    request = vector_stores_pb2.CreateVectorStoreRequest()
    fields = dict(body)
    file_ids = fields.pop("file_ids", None)
    if file_ids is not None:
        request.file_ids.extend(expect_str_list(file_ids, "file_ids"))
    chunking = fields.pop("chunking_strategy", None)
    if chunking is not None:
        request.chunking_strategy.CopyFrom(chunking_strategy_in(chunking, "chunking_strategy"))
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


def file_counts_out(counts: vector_stores_pb2.VectorStoreFileCounts) -> Json:
    return {
        "in_progress": counts.in_progress,
        "completed": counts.completed,
        "failed": counts.failed,
        "cancelled": counts.cancelled,
        "total": counts.total,
    }


def vector_store_out(v: VectorStore) -> Json:
    out: Json = {
        "id": v.id,
        "object": "vector_store",
        "created_at": v.created_at,
        "name": v.name,
        "usage_bytes": v.usage_bytes,
        "file_counts": file_counts_out(v.file_counts),
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


# Files of vector stores

VectorStoreFile = vector_stores_pb2.VectorStoreFile
_FILE_CREATE_KEYS: Final = frozenset({"file_id", "chunking_strategy", "attributes"})
_FILE_UPDATE_KEYS: Final = frozenset({"attributes"})
_FILE_STATUS_NAMES: Final = (None, "in_progress", "completed", "cancelled", "failed")
_FILE_STATUSES: Final = {
    name: number for number, name in enumerate(_FILE_STATUS_NAMES) if name is not None
}


def attributes_in(
    value: object, param: str
) -> dict[str, vector_stores_pb2.VectorStoreFileAttribute]:
    out: dict[str, vector_stores_pb2.VectorStoreFileAttribute] = {}
    for key, item in expect_object(value, param).items():
        attribute = vector_stores_pb2.VectorStoreFileAttribute()
        # bool before number: JSON's true is a Python int too.
        if isinstance(item, bool):
            attribute.bool_value = item
        elif isinstance(item, int | float):
            attribute.number_value = float(item)
        elif isinstance(item, str):
            attribute.string_value = item
        else:
            raise invalid_type(join(param, key), "a string, number or boolean", item)
        out[key] = attribute
    return out


def _put_attributes(
    target: MutableMapping[str, vector_stores_pb2.VectorStoreFileAttribute], value: object
) -> None:
    """Message-valued map entries cannot be assigned, only filled in."""
    for key, attribute in attributes_in(value, "attributes").items():
        target[key].CopyFrom(attribute)


def _attributes_out(
    attributes: Mapping[str, vector_stores_pb2.VectorStoreFileAttribute],
) -> dict[str, str | float | bool]:
    out: dict[str, str | float | bool] = {}
    for key in sorted(attributes):
        attribute = attributes[key]
        kind = attribute.WhichOneof("value")
        if kind == "bool_value":
            out[key] = attribute.bool_value
        elif kind == "number_value":
            number = attribute.number_value
            out[key] = int(number) if number.is_integer() else number
        else:
            out[key] = attribute.string_value
    return out


def file_create_request(
    store_id: str, body: dict[str, Any]
) -> vector_stores_pb2.CreateVectorStoreFileRequest:
    check_keys(body, _FILE_CREATE_KEYS)
    request = vector_stores_pb2.CreateVectorStoreFileRequest(vector_store_id=store_id)
    request.file_id = expect_str(require(body, "file_id"), "file_id")
    if body.get("chunking_strategy") is not None:
        request.chunking_strategy.CopyFrom(
            chunking_strategy_in(body["chunking_strategy"], "chunking_strategy")
        )
    if body.get("attributes") is not None:
        _put_attributes(request.attributes, body["attributes"])
    return request


def file_update_request(
    store_id: str, file_id: str, body: dict[str, Any]
) -> vector_stores_pb2.UpdateVectorStoreFileAttributesRequest:
    check_keys(body, _FILE_UPDATE_KEYS)
    request = vector_stores_pb2.UpdateVectorStoreFileAttributesRequest(
        vector_store_id=store_id, file_id=file_id
    )
    attributes = require(body, "attributes")
    if attributes is not None:
        _put_attributes(request.attributes, attributes)
    return request


def file_list_request(
    store_id: str, page: PageParams, status: str | None
) -> vector_stores_pb2.ListVectorStoreFilesRequest:
    request = vector_stores_pb2.ListVectorStoreFilesRequest(
        vector_store_id=store_id, order=page.order, after=page.after, before=page.before
    )
    if page.limit is not None:
        request.limit = page.limit
    if status is not None:
        request.filter = file_status_in(status)
    return request


def file_status_in(status: str) -> vector_stores_pb2.VectorStoreFileStatus.ValueType:
    """The `filter` of a list of files."""
    if status not in _FILE_STATUSES:
        raise invalid_value("filter", status, tuple(_FILE_STATUSES))
    return _FILE_STATUSES[status]  # type: ignore[return-value]


def _strategy_out(strategy: common_pb2.ChunkingStrategy) -> Json:
    """OpenAI answers every stored strategy as `static`, `auto` with its sizes."""
    if strategy.WhichOneof("kind") == "static":
        sizes = strategy.static
        size, overlap = sizes.max_chunk_size_tokens, sizes.chunk_overlap_tokens
    else:
        size, overlap = AUTO_SIZES
    return {
        "type": "static",
        "static": {"max_chunk_size_tokens": size, "chunk_overlap_tokens": overlap},
    }


AUTO_SIZES: Final = (800, 400)


def file_out(f: VectorStoreFile) -> Json:
    return {
        "id": f.id,
        "object": "vector_store.file",
        "usage_bytes": f.usage_bytes,
        "created_at": f.created_at,
        "vector_store_id": f.vector_store_id,
        "status": enum_name(_FILE_STATUS_NAMES, f.status),
        "last_error": (
            {"code": f.last_error.code, "message": f.last_error.message}
            if f.HasField("last_error")
            else None
        ),
        "chunking_strategy": _strategy_out(f.chunking_strategy),
        "attributes": _attributes_out(f.attributes),
    }


def file_list_out(response: vector_stores_pb2.ListVectorStoreFilesResponse) -> Json:
    return list_out(
        [file_out(f) for f in response.data],
        response.first_id,
        response.last_id,
        response.has_more,
    )


def file_deleted_out(status: common_pb2.DeletionStatus) -> Json:
    return deleted_out(status, "vector_store.file.deleted")


def file_content_out(content: vector_stores_pb2.VectorStoreFileContent) -> Json:
    return {
        "object": "vector_store.file_content.page",
        "data": [{"type": "text", "text": text} for text in content.texts],
        "has_more": False,
        "next_page": None,
    }


_SEARCH_KEYS: Final = frozenset(
    {"query", "rewrite_query", "max_num_results", "filters", "ranking_options"}
)
_SEARCH_RANKING_KEYS: Final = frozenset({"ranker", "score_threshold"})


def search_request(
    store_id: str, body: dict[str, Any]
) -> vector_stores_pb2.SearchVectorStoreRequest:
    """OpenAI's `VectorStoreSearchRequest`; whether its values are acceptable is the core's
    to judge, only their JSON types are checked here."""
    check_keys(body, _SEARCH_KEYS)
    request = vector_stores_pb2.SearchVectorStoreRequest(vector_store_id=store_id)
    if body.get("filters") is not None:
        request.filters.CopyFrom(filter_in(body["filters"]))
    query = require(body, "query")
    if isinstance(query, str):
        request.query.append(query)
    else:
        request.query.extend(expect_str_list(query, "query"))
    if body.get("rewrite_query") is not None:
        request.rewrite_query = expect_bool(body["rewrite_query"], "rewrite_query")
    if body.get("max_num_results") is not None:
        request.max_num_results = expect_int32(body["max_num_results"], "max_num_results")
    if body.get("ranking_options") is not None:
        param = "ranking_options"
        obj = expect_object(body["ranking_options"], param)
        check_keys(obj, _SEARCH_RANKING_KEYS, param)
        options = request.ranking_options
        options.SetInParent()
        ranker = opt_str(obj, "ranker", param)
        if ranker is not None:
            options.ranker = ranker
        if obj.get("score_threshold") is not None:
            options.score_threshold = expect_number(
                obj["score_threshold"], f"{param}.score_threshold"
            )
    return request


def search_out(response: vector_stores_pb2.SearchVectorStoreResponse) -> Json:
    """One page holds every result (at most 50), so there is never a next one."""
    return {
        "object": "vector_store.search_results.page",
        "search_query": list(response.search_query),
        "data": [
            {
                "file_id": r.file_id,
                "filename": r.filename,
                "score": r.score,
                "attributes": _attributes_out(r.attributes),
                "content": [{"type": c.type, "text": c.text} for c in r.content],
            }
            for r in response.data
        ],
        "has_more": False,
        "next_page": None,
    }
