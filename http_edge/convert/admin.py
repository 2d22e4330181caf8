"""The admin API: OpenAI's `organization.project…` JSON ⇄ `compat_core.v1.AdminService`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

from multidict import MultiMapping

from compat_core.v1 import admin_pb2
from http_edge.convert.common import (
    Json,
    check_keys,
    expect_int32,
    expect_str,
    list_out,
    require,
)
from http_edge.errors import HttpError, invalid_type, invalid_value, unsupported
from http_edge.json_io import page_params

_BOOLEANS: Final = {"true": True, "false": False}
# The fields of OpenAI's bodies beside `name` that nothing here can honour, and why: each
# is accepted as null (OpenAI's default) and refused with the reason otherwise, where a field
# OpenAI does not define at all is "unrecognized".
_NO_RESIDENCY: Final = "it has no data residency regions"
_PROJECT_CREATE: Final = {
    "external_key_id": "it encrypts nothing with a key of yours",
    "geography": _NO_RESIDENCY,
    "residency": _NO_RESIDENCY,
}
_PROJECT_MODIFY: Final = {
    "external_key_id": _PROJECT_CREATE["external_key_id"],
    "geography": _NO_RESIDENCY,
}
_SERVICE_ACCOUNT_CREATE: Final = {
    "create_service_account_only": "each of its service accounts holds exactly one API key",
    "expires_in_seconds": "its API keys do not expire",
    "spend_limit": "it bills nothing, so there is no spend to limit",
}
# Where false is OpenAI's default as much as null is.
_FLAGS: Final = frozenset({"create_service_account_only"})


def _name_in(body: dict[str, Any], unsupported_fields: dict[str, str]) -> str:
    check_keys(body, frozenset({"name", *unsupported_fields}))
    for field, why in unsupported_fields.items():
        value = body.get(field)
        if field in _FLAGS:
            if not isinstance(value, bool | None):
                raise invalid_type(field, "a boolean", value)
            value = value or None
        if value is not None:
            raise unsupported(field, why)
    return expect_str(require(body, "name"), "name")


def project_create_in(body: dict[str, Any]) -> str:
    """The `name` of a project create body."""
    return _name_in(body, _PROJECT_CREATE)


def project_modify_in(body: dict[str, Any]) -> str:
    """The `name` of a project modify body (required here: it is all that can change)."""
    return _name_in(body, _PROJECT_MODIFY)


def service_account_in(body: dict[str, Any]) -> str:
    """The `name` of a service account create body."""
    return _name_in(body, _SERVICE_ACCOUNT_CREATE)


def list_projects_request(query: MultiMapping[str]) -> admin_pb2.ListProjectsRequest:
    page = page_params(query)
    request = admin_pb2.ListProjectsRequest(after=page.after)
    if page.limit is not None:
        request.limit = page.limit
    raw = query.get("include_archived", "")
    if raw:
        if raw.lower() not in _BOOLEANS:
            raise invalid_value("include_archived", raw, ("true", "false"))
        request.include_archived = _BOOLEANS[raw.lower()]
    return request


def page_of(query: MultiMapping[str]) -> tuple[int | None, str]:
    """`limit` and `after` of a list of service accounts or keys."""
    page = page_params(query)
    return page.limit, page.after


def project_out(project: admin_pb2.Project) -> Json:
    archived = project.HasField("archived_at")
    return {
        "id": project.id,
        "object": "organization.project",
        "name": project.name,
        "created_at": project.created_at,
        "archived_at": project.archived_at if archived else None,
        "status": "archived" if archived else "active",
    }


def projects_out(page: admin_pb2.ListProjectsResponse) -> Json:
    return list_out(
        [project_out(project) for project in page.data], page.first_id, page.last_id, page.has_more
    )


def service_account_out(account: admin_pb2.ServiceAccount) -> Json:
    return {
        "object": "organization.project.service_account",
        "id": account.id,
        "name": account.name,
        "role": account.role,
        "created_at": account.created_at,
    }


def created_service_account_out(created: admin_pb2.CreateServiceAccountResponse) -> Json:
    key = created.api_key
    return {
        **service_account_out(created.service_account),
        "api_key": {
            "object": "organization.project.service_account.api_key",
            "value": key.value,
            "name": key.name,
            "created_at": key.created_at,
            "id": key.id,
        },
    }


def service_accounts_out(page: admin_pb2.ListServiceAccountsResponse) -> Json:
    return list_out(
        [service_account_out(account) for account in page.data],
        page.first_id,
        page.last_id,
        page.has_more,
    )


def api_key_out(key: admin_pb2.ApiKey) -> Json:
    return {
        "object": "organization.project.api_key",
        "redacted_value": key.redacted_value,
        "name": key.name,
        "created_at": key.created_at,
        "last_used_at": key.last_used_at if key.HasField("last_used_at") else None,
        "id": key.id,
        "owner": {"type": "service_account", "service_account": service_account_out(key.owner)},
    }


def api_keys_out(page: admin_pb2.ListApiKeysResponse) -> Json:
    return list_out(
        [api_key_out(key) for key in page.data], page.first_id, page.last_id, page.has_more
    )


def deleted_out(object_name: str, object_id: str) -> Json:
    return {"object": object_name, "id": object_id, "deleted": True}


_RATE_LIMIT_FIELDS: Final = (
    "max_requests_per_1_minute",
    "max_tokens_per_1_minute",
    "max_concurrent_runs",
    "max_concurrent_streams",
)
_USAGE_LISTS: Final = ("project_ids", "models", "group_by")
_STORAGE_LISTS: Final = ("project_ids", "group_by")
UsageRequest = admin_pb2.GetCompletionsUsageRequest | admin_pb2.GetStorageUsageRequest


def rate_limit_out(limit: admin_pb2.ProjectRateLimit) -> Json:
    """OpenAI's `project.rate_limit`, with our two concurrency limits, and which fields take
    the server's setting rather than the project's own value (`uses_default`)."""
    values = {field: getattr(limit, field) for field in _RATE_LIMIT_FIELDS}
    return {
        "object": "project.rate_limit",
        "id": limit.id,
        "model": limit.model,
        **{field: value.value for field, value in values.items()},
        "uses_default": [field for field, value in values.items() if value.is_default],
    }


def rate_limits_out(page: admin_pb2.ListProjectRateLimitsResponse) -> Json:
    return list_out(
        [rate_limit_out(limit) for limit in page.data], page.first_id, page.last_id, page.has_more
    )


def modify_rate_limit_in(
    body: dict[str, Any], request: admin_pb2.ModifyProjectRateLimitRequest
) -> None:
    """The fields of a modify body: an integer is the project's own value, null goes back to
    the server's setting, and a field left out stays as it is."""
    check_keys(body, frozenset(_RATE_LIMIT_FIELDS))
    for field in _RATE_LIMIT_FIELDS:
        if field not in body:
            continue
        change: admin_pb2.RateLimitChange = getattr(request, field)
        change.SetInParent()
        if body[field] is not None:
            change.value = expect_int32(body[field], field)


def _query_int64(query: MultiMapping[str], param: str) -> int | None:
    raw = query.get(param, "")
    if raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise HttpError(
            400,
            f"Invalid '{param}': expected unix seconds, but got '{raw}' instead.",
            param=param,
            code="invalid_type",
        )
    return int(raw)


def _usage_query(query: MultiMapping[str], request: UsageRequest, lists: tuple[str, ...]) -> None:
    """The parameters every usage route shares; lists as the SDKs send them
    (`project_ids[]=…`) or as repeated keys."""
    request.bucket_width = query.get("bucket_width", "")
    request.page = query.get("page", "")
    start, end = _query_int64(query, "start_time"), _query_int64(query, "end_time")
    if start is not None:
        request.start_time = start
    if end is not None:
        request.end_time = end
    limit = page_params(query).limit
    if limit is not None:
        request.limit = limit
    for name in lists:
        values = [*query.getall(name + "[]", ()), *query.getall(name, ())]
        getattr(request, name).extend(values)


def completions_usage_request(query: MultiMapping[str]) -> admin_pb2.GetCompletionsUsageRequest:
    """The query of `/v1/organization/usage/completions`."""
    request = admin_pb2.GetCompletionsUsageRequest()
    _usage_query(query, request, _USAGE_LISTS)
    return request


def storage_usage_request(query: MultiMapping[str]) -> admin_pb2.GetStorageUsageRequest:
    """The query of `/v1/organization/usage/vector_stores` and `…/usage/files`."""
    request = admin_pb2.GetStorageUsageRequest()
    _usage_query(query, request, _STORAGE_LISTS)
    return request


class _Bucket(Protocol):
    start_time: int
    end_time: int

    @property
    def results(self) -> Sequence[Any]: ...


class _UsagePage(Protocol):
    has_more: bool
    next_page: str

    @property
    def data(self) -> Sequence[_Bucket]: ...


def _usage_page(page: _UsagePage, result_out: Callable[[Any], Json]) -> Json:
    """OpenAI's page of usage buckets, each result as `result_out` writes it."""
    return {
        "object": "page",
        "data": [
            {
                "object": "bucket",
                "start_time": bucket.start_time,
                "end_time": bucket.end_time,
                "results": [result_out(result) for result in bucket.results],
            }
            for bucket in page.data
        ],
        "has_more": page.has_more,
        "next_page": page.next_page or None,
    }


def _completions_result(result: admin_pb2.CompletionsUsageResult) -> Json:
    return {
        "object": "organization.usage.completions.result",
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "input_cached_tokens": 0,
        "input_audio_tokens": 0,
        "output_audio_tokens": 0,
        "num_model_requests": result.num_model_requests,
        "project_id": result.project_id if result.HasField("project_id") else None,
        "user_id": None,
        "api_key_id": None,
        "model": result.model if result.HasField("model") else None,
        "batch": None,
    }


def completions_usage_out(page: admin_pb2.GetCompletionsUsageResponse) -> Json:
    """OpenAI's page of buckets; the fields a group does not split on are null."""
    return _usage_page(page, _completions_result)


def storage_usage_out(page: admin_pb2.GetStorageUsageResponse, kind: str) -> Json:
    """OpenAI's page of buckets of `organization.usage.<kind>.result`s; `project_id` is null
    unless grouped by it."""

    def result_out(result: admin_pb2.StorageUsageResult) -> Json:
        return {
            "object": f"organization.usage.{kind}.result",
            "usage_bytes": result.usage_bytes,
            "project_id": result.project_id if result.HasField("project_id") else None,
        }

    return _usage_page(page, result_out)
