"""Batches of vector store files: OpenAI's `vector_store.files_batch` JSON ⇄ the proto."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Final

from compat_core.v1 import vector_stores_pb2
from http_edge.convert.common import (
    Json,
    check_keys,
    chunking_strategy_in,
    enum_name,
    expect_list,
    expect_object,
    expect_str,
    expect_str_list,
    require,
)
from http_edge.convert.vector_stores import (
    attributes_in,
    file_counts_out,
    file_status_in,
)
from http_edge.errors import HttpError
from http_edge.json_io import PageParams

_CREATE_KEYS: Final = frozenset({"file_ids", "files", "chunking_strategy", "attributes"})
_ENTRY_KEYS: Final = frozenset({"file_id", "chunking_strategy", "attributes"})
_STATUS_NAMES: Final = (None, "in_progress", "completed", "cancelled", "failed")


def _put_attributes(
    target: MutableMapping[str, vector_stores_pb2.VectorStoreFileAttribute],
    value: object,
    param: str,
) -> None:
    for key, attribute in attributes_in(value, param).items():
        target[key].CopyFrom(attribute)


def _non_empty(items: list[Any], param: str) -> list[Any]:
    """OpenAI's `minItems: 1`. Only JSON can tell an empty list from none at all; the core
    judges the rest (one of `file_ids` and `files`, at most 2000)."""
    if not items:
        raise HttpError(
            400,
            f"Invalid '{param}': empty array. Expected an array with minimum length 1, but got "
            "an empty array instead.",
            param=param,
            code="empty_array",
        )
    return items


def create_request(
    store_id: str, body: dict[str, Any]
) -> vector_stores_pb2.CreateVectorStoreFileBatchRequest:
    check_keys(body, _CREATE_KEYS)
    request = vector_stores_pb2.CreateVectorStoreFileBatchRequest(vector_store_id=store_id)
    if body.get("file_ids") is not None:
        request.file_ids.extend(
            _non_empty(expect_str_list(body["file_ids"], "file_ids"), "file_ids")
        )
    if body.get("files") is not None:
        for index, item in enumerate(_non_empty(expect_list(body["files"], "files"), "files")):
            request.files.append(_entry_in(item, f"files[{index}]"))
    if body.get("chunking_strategy") is not None:
        request.chunking_strategy.CopyFrom(
            chunking_strategy_in(body["chunking_strategy"], "chunking_strategy")
        )
    if body.get("attributes") is not None:
        _put_attributes(request.attributes, body["attributes"], "attributes")
    return request


def _entry_in(value: object, param: str) -> vector_stores_pb2.VectorStoreFileBatchEntry:
    obj = expect_object(value, param)
    check_keys(obj, _ENTRY_KEYS, param)
    entry = vector_stores_pb2.VectorStoreFileBatchEntry()
    entry.file_id = expect_str(require(obj, "file_id", param), f"{param}.file_id")
    if obj.get("chunking_strategy") is not None:
        entry.chunking_strategy.CopyFrom(
            chunking_strategy_in(obj["chunking_strategy"], f"{param}.chunking_strategy")
        )
    if obj.get("attributes") is not None:
        _put_attributes(entry.attributes, obj["attributes"], f"{param}.attributes")
    return entry


def files_list_request(
    store_id: str, batch_id: str, page: PageParams, status: str | None
) -> vector_stores_pb2.ListVectorStoreFileBatchFilesRequest:
    request = vector_stores_pb2.ListVectorStoreFileBatchFilesRequest(
        vector_store_id=store_id,
        batch_id=batch_id,
        order=page.order,
        after=page.after,
        before=page.before,
    )
    if page.limit is not None:
        request.limit = page.limit
    if status is not None:
        request.filter = file_status_in(status)
    return request


def batch_out(batch: vector_stores_pb2.VectorStoreFileBatch) -> Json:
    # The spec's (and OpenAI's) `object` is `vector_store.files_batch`, though its prose says
    # `vector_store.file_batch`.
    return {
        "id": batch.id,
        "object": "vector_store.files_batch",
        "created_at": batch.created_at,
        "vector_store_id": batch.vector_store_id,
        "status": enum_name(_STATUS_NAMES, batch.status),
        "file_counts": file_counts_out(batch.file_counts),
    }
