"""The admin API: OpenAI's `organization.project…` JSON ⇄ `compat_core.v1.AdminService`."""

from __future__ import annotations

from typing import Any, Final

from multidict import MultiMapping

from compat_core.v1 import admin_pb2
from http_edge.convert.common import Json, check_keys, expect_str, list_out, require
from http_edge.errors import invalid_value
from http_edge.json_io import page_params

_NAME_ONLY: Final = frozenset({"name"})
_BOOLEANS: Final = {"true": True, "false": False}


def name_in(body: dict[str, Any]) -> str:
    """The `name` of a create or modify body, the only field these take."""
    check_keys(body, _NAME_ONLY)
    return expect_str(require(body, "name"), "name")


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
