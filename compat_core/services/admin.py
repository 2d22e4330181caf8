"""AdminService: projects, their service accounts and their API keys (OpenAI's Administration
API), for callers with an admin key (`compat_core.admin_auth`).

A service account and its key are one stored row (`schema.api_keys`): the account
`svc_acct_X` holds the key `key_X`, as every account made here has exactly one key, so no
table of accounts is needed and deleting either deletes both. Keys made by
`assistants-compat keys create` show up as service accounts too.

Revocation goes through the `KeyRing`, so a deleted key, or every key of an archived project,
stops working at once on this core and, by the notice the store sends, on the others.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Final, Protocol, TypeVar

from compat_core import errors, ids, storage_usage, tenancy, validation
from compat_core.keyring import API_KEY_PREFIX, PROJECT_PREFIX, KeyRing
from compat_core.ratelimit import RateLimiter
from compat_core.services import admin_limits
from compat_core.store.base import ApiKey, Project, Store
from compat_core.usage import completions_usage
from compat_core.v1 import admin_pb2, admin_pb2_grpc, common_pb2

SERVICE_ACCOUNT_PREFIX: Final = "svc_acct_"
MAX_NAME: Final = 256
ROLE: Final = "member"
T = TypeVar("T")


def service_account_id(key_id: str) -> str:
    return SERVICE_ACCOUNT_PREFIX + key_id.removeprefix(API_KEY_PREFIX)


def key_of_service_account(account_id: str) -> str | None:
    """The ID of the key a service account holds; None for an ID no account could have."""
    if not account_id.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    return API_KEY_PREFIX + account_id.removeprefix(SERVICE_ACCOUNT_PREFIX)


def _project_out(project: Project) -> admin_pb2.Project:
    out = admin_pb2.Project(id=project.id, name=project.name, created_at=project.created_at)
    if project.archived_at is not None:
        out.archived_at = project.archived_at
    return out


def _account_out(key: ApiKey) -> admin_pb2.ServiceAccount:
    return admin_pb2.ServiceAccount(
        id=service_account_id(key.id), name=key.name, role=ROLE, created_at=key.created_at
    )


def _key_out(key: ApiKey) -> admin_pb2.ApiKey:
    out = admin_pb2.ApiKey(
        id=key.id,
        name=key.name,
        redacted_value=key.redacted_value,
        created_at=key.created_at,
        owner=_account_out(key),
    )
    if key.last_used_at is not None:
        out.last_used_at = key.last_used_at
    return out


def _name(value: str) -> str:
    if not value:
        raise errors.invalid(
            "Missing required parameter: 'name'.", "name", "missing_required_parameter"
        )
    validation.max_length(value, MAX_NAME, "name")
    validation.free_of_controls(value, "name", "a name")
    return value


def _limit(request: Any) -> int:
    limit: int = request.limit if request.HasField("limit") else validation.DEFAULT_LIMIT
    validation.page_query(limit, common_pb2.SORT_ORDER_UNSPECIFIED, "", "")
    return limit


def _page(
    items: Sequence[T], ids_of: Sequence[str], after: str, limit: int
) -> tuple[list[T], bool]:
    """One page of a list held whole (a project's keys: a handful, read in one query)."""
    start = 0
    if after:
        if after not in ids_of:
            raise validation.unknown_cursor("after", after)
        start = ids_of.index(after) + 1
    return list(items[start : start + limit]), start + limit < len(items)


class _ListResponse(Protocol):
    first_id: str
    last_id: str
    has_more: bool

    @property
    def data(self) -> Sequence[Any]: ...


L = TypeVar("L", bound=_ListResponse)


def _listed(response: L, has_more: bool) -> L:
    """A list response with its cursor IDs (empty for an empty page) and `has_more` set."""
    if response.data:
        response.first_id = response.data[0].id
        response.last_id = response.data[-1].id
    response.has_more = has_more
    return response


def _no_project(project_id: str) -> errors.ApiError:
    return errors.not_found(f"No project found with id '{errors.shown(project_id)}'.", "project_id")


class AdminService(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, store: Store, keys: KeyRing, limiter: RateLimiter) -> None:
        self._store = store
        self._keys = keys
        self._limiter = limiter

    async def _project(self, project_id: str) -> Project:
        validation.required_id(project_id, "project_id")
        found = await self._store.get_project(project_id)
        if found is None:
            raise _no_project(project_id)
        return found

    async def _key(self, project_id: str, key_id: str | None, param: str, shown: str) -> ApiKey:
        """A key of the project (which must exist); 404 on `param` otherwise."""
        await self._project(project_id)
        validation.required_id(shown, param)
        key = None if key_id is None else await self._store.get_api_key(key_id)
        if key is None or key.project_id != project_id:
            what = "API key" if param == "key_id" else "service account"
            raise errors.not_found(f"No {what} found with id '{errors.shown(shown)}'.", param)
        return key

    async def _account(self, project_id: str, account_id: str) -> ApiKey:
        """The key that is the project's service account `account_id`; 404 otherwise."""
        return await self._key(
            project_id, key_of_service_account(account_id), "service_account_id", account_id
        )

    async def AuthenticateAdmin(
        self, request: admin_pb2.AuthenticateAdminRequest, context: Any
    ) -> admin_pb2.AuthenticateAdminResponse:
        return admin_pb2.AuthenticateAdminResponse()

    async def ListProjects(
        self, request: admin_pb2.ListProjectsRequest, context: Any
    ) -> admin_pb2.ListProjectsResponse:
        limit = _limit(request)
        after = None
        if request.after:
            after = await self._store.get_project(request.after)
            if after is None:
                raise validation.unknown_cursor("after", request.after)
        found = await self._store.list_projects(after, limit + 1, request.include_archived)
        page = found[:limit]
        return _listed(
            admin_pb2.ListProjectsResponse(data=[_project_out(project) for project in page]),
            len(found) > limit,
        )

    async def CreateProject(
        self, request: admin_pb2.CreateProjectRequest, context: Any
    ) -> admin_pb2.Project:
        project = Project(ids.new_id(PROJECT_PREFIX), _name(request.name), int(time.time()))
        await self._store.create_project(project)
        return _project_out(project)

    async def GetProject(
        self, request: admin_pb2.GetProjectRequest, context: Any
    ) -> admin_pb2.Project:
        return _project_out(await self._project(request.project_id))

    async def ModifyProject(
        self, request: admin_pb2.ModifyProjectRequest, context: Any
    ) -> admin_pb2.Project:
        name = _name(request.name)
        project = await self._project(request.project_id)
        if project.archived_at is not None:
            raise errors.precondition(
                f"Project {project.id} is archived and cannot be modified.", "project_id"
            )
        renamed = await self._store.rename_project(project.id, name)
        if renamed is None:
            raise _no_project(project.id)
        return _project_out(renamed)

    async def ArchiveProject(
        self, request: admin_pb2.ArchiveProjectRequest, context: Any
    ) -> admin_pb2.Project:
        if request.project_id == tenancy.DEFAULT_PROJECT:
            raise errors.precondition(
                "The default project cannot be archived: the keys of COMPAT_API_KEYS open it, "
                "and a server without keys serves it.",
                "project_id",
            )
        await self._project(request.project_id)
        key_ids = await self._store.archive_project(request.project_id, int(time.time()))
        for key_id in key_ids or ():
            self._keys.forget(key_id)
        return _project_out(await self._project(request.project_id))

    async def CreateServiceAccount(
        self, request: admin_pb2.CreateServiceAccountRequest, context: Any
    ) -> admin_pb2.CreateServiceAccountResponse:
        name = _name(request.name)
        project = await self._project(request.project_id)
        if project.archived_at is not None:
            raise errors.precondition(
                f"Project {project.id} is archived: it cannot get new service accounts.",
                "project_id",
            )
        record, value = await self._keys.create(project.id, name)
        return admin_pb2.CreateServiceAccountResponse(
            service_account=_account_out(record),
            api_key=admin_pb2.ServiceAccountApiKey(
                id=record.id, value=value, name=record.name, created_at=record.created_at
            ),
        )

    async def ListServiceAccounts(
        self, request: admin_pb2.ListServiceAccountsRequest, context: Any
    ) -> admin_pb2.ListServiceAccountsResponse:
        limit = _limit(request)
        await self._project(request.project_id)
        keys = await self._store.list_api_keys(request.project_id)
        accounts = [_account_out(key) for key in keys]
        page, more = _page(accounts, [a.id for a in accounts], request.after, limit)
        return _listed(admin_pb2.ListServiceAccountsResponse(data=page), more)

    async def GetServiceAccount(
        self, request: admin_pb2.GetServiceAccountRequest, context: Any
    ) -> admin_pb2.ServiceAccount:
        return _account_out(await self._account(request.project_id, request.service_account_id))

    async def DeleteServiceAccount(
        self, request: admin_pb2.DeleteServiceAccountRequest, context: Any
    ) -> admin_pb2.DeleteServiceAccountResponse:
        key = await self._account(request.project_id, request.service_account_id)
        await self._keys.revoke(key.id)
        return admin_pb2.DeleteServiceAccountResponse(id=request.service_account_id, deleted=True)

    async def ListApiKeys(
        self, request: admin_pb2.ListApiKeysRequest, context: Any
    ) -> admin_pb2.ListApiKeysResponse:
        limit = _limit(request)
        await self._project(request.project_id)
        keys = await self._store.list_api_keys(request.project_id)
        page, more = _page(keys, [key.id for key in keys], request.after, limit)
        return _listed(admin_pb2.ListApiKeysResponse(data=[_key_out(key) for key in page]), more)

    async def GetApiKey(
        self, request: admin_pb2.GetApiKeyRequest, context: Any
    ) -> admin_pb2.ApiKey:
        key = await self._key(request.project_id, request.key_id, "key_id", request.key_id)
        return _key_out(key)

    async def DeleteApiKey(
        self, request: admin_pb2.DeleteApiKeyRequest, context: Any
    ) -> admin_pb2.DeleteApiKeyResponse:
        key = await self._key(request.project_id, request.key_id, "key_id", request.key_id)
        await self._keys.revoke(key.id)
        return admin_pb2.DeleteApiKeyResponse(id=key.id, deleted=True)

    async def ListProjectRateLimits(
        self, request: admin_pb2.ListProjectRateLimitsRequest, context: Any
    ) -> admin_pb2.ListProjectRateLimitsResponse:
        limit = request.limit if request.HasField("limit") else validation.MAX_LIMIT
        validation.page_query(limit, common_pb2.SORT_ORDER_UNSPECIFIED, "", "")
        await self._project(request.project_id)
        own = await self._store.get_project_limits(request.project_id)
        only = admin_limits.rate_limit_out(self._limiter.defaults, own)
        page, _ = _page([only], [only.id], request.after, limit)
        return _listed(admin_pb2.ListProjectRateLimitsResponse(data=page), False)

    async def ModifyProjectRateLimit(
        self, request: admin_pb2.ModifyProjectRateLimitRequest, context: Any
    ) -> admin_pb2.ProjectRateLimit:
        await self._project(request.project_id)
        admin_limits.check_rate_limit_id(request.rate_limit_id)
        return await admin_limits.modify_limits(self._store, self._limiter, request)

    async def GetCompletionsUsage(
        self, request: admin_pb2.GetCompletionsUsageRequest, context: Any
    ) -> admin_pb2.GetCompletionsUsageResponse:
        return await completions_usage(self._store, request)

    async def GetVectorStoresUsage(
        self, request: admin_pb2.GetStorageUsageRequest, context: Any
    ) -> admin_pb2.GetStorageUsageResponse:
        return await storage_usage.storage_usage(self._store, request, storage_usage.vector_stores)

    async def GetFilesUsage(
        self, request: admin_pb2.GetStorageUsageRequest, context: Any
    ) -> admin_pb2.GetStorageUsageResponse:
        return await storage_usage.storage_usage(self._store, request, storage_usage.files)
