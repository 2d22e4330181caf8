"""`/v1/organization/projects…` and `/v1/organization/usage/…`: the admin API, one
`AdminService` RPC per request.

Its callers are let in by their admin key (`ADMIN_ADMISSION`, see `setup_routes`), never by a
project's key; conversion in `convert.admin`.
"""

from __future__ import annotations

from aiohttp import web

from compat_core.v1 import admin_pb2
from http_edge.convert import admin as convert
from http_edge.json_io import json_response, read_json_object
from http_edge.routes.context import core, rpc_metadata

routes = web.RouteTableDef()

_PROJECTS = "/v1/organization/projects"
_PROJECT = _PROJECTS + "/{project_id}"


@routes.get(_PROJECTS)
async def list_projects(request: web.Request) -> web.Response:
    rpc = convert.list_projects_request(request.query)
    page = await core(request).admin.ListProjects(rpc, metadata=rpc_metadata(request))
    return json_response(convert.projects_out(page))


@routes.post(_PROJECTS)
async def create_project(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    rpc = admin_pb2.CreateProjectRequest(name=convert.project_create_in(body))
    project = await core(request).admin.CreateProject(rpc, metadata=rpc_metadata(request))
    return json_response(convert.project_out(project))


@routes.get(_PROJECT)
async def get_project(request: web.Request) -> web.Response:
    rpc = admin_pb2.GetProjectRequest(project_id=request.match_info["project_id"])
    project = await core(request).admin.GetProject(rpc, metadata=rpc_metadata(request))
    return json_response(convert.project_out(project))


@routes.post(_PROJECT)
async def modify_project(request: web.Request) -> web.Response:
    rpc = admin_pb2.ModifyProjectRequest(
        project_id=request.match_info["project_id"],
        name=convert.project_modify_in(await read_json_object(request)),
    )
    project = await core(request).admin.ModifyProject(rpc, metadata=rpc_metadata(request))
    return json_response(convert.project_out(project))


@routes.post(_PROJECT + "/archive")
async def archive_project(request: web.Request) -> web.Response:
    rpc = admin_pb2.ArchiveProjectRequest(project_id=request.match_info["project_id"])
    project = await core(request).admin.ArchiveProject(rpc, metadata=rpc_metadata(request))
    return json_response(convert.project_out(project))


@routes.post(_PROJECT + "/service_accounts")
async def create_service_account(request: web.Request) -> web.Response:
    rpc = admin_pb2.CreateServiceAccountRequest(
        project_id=request.match_info["project_id"],
        name=convert.service_account_in(await read_json_object(request)),
    )
    created = await core(request).admin.CreateServiceAccount(rpc, metadata=rpc_metadata(request))
    return json_response(convert.created_service_account_out(created))


@routes.get(_PROJECT + "/service_accounts")
async def list_service_accounts(request: web.Request) -> web.Response:
    limit, after = convert.page_of(request.query)
    rpc = admin_pb2.ListServiceAccountsRequest(
        project_id=request.match_info["project_id"], after=after, limit=limit
    )
    page = await core(request).admin.ListServiceAccounts(rpc, metadata=rpc_metadata(request))
    return json_response(convert.service_accounts_out(page))


@routes.get(_PROJECT + "/service_accounts/{service_account_id}")
async def get_service_account(request: web.Request) -> web.Response:
    rpc = admin_pb2.GetServiceAccountRequest(
        project_id=request.match_info["project_id"],
        service_account_id=request.match_info["service_account_id"],
    )
    account = await core(request).admin.GetServiceAccount(rpc, metadata=rpc_metadata(request))
    return json_response(convert.service_account_out(account))


@routes.delete(_PROJECT + "/service_accounts/{service_account_id}")
async def delete_service_account(request: web.Request) -> web.Response:
    rpc = admin_pb2.DeleteServiceAccountRequest(
        project_id=request.match_info["project_id"],
        service_account_id=request.match_info["service_account_id"],
    )
    deleted = await core(request).admin.DeleteServiceAccount(rpc, metadata=rpc_metadata(request))
    return json_response(
        convert.deleted_out("organization.project.service_account.deleted", deleted.id)
    )


@routes.get(_PROJECT + "/api_keys")
async def list_api_keys(request: web.Request) -> web.Response:
    limit, after = convert.page_of(request.query)
    rpc = admin_pb2.ListApiKeysRequest(
        project_id=request.match_info["project_id"], after=after, limit=limit
    )
    page = await core(request).admin.ListApiKeys(rpc, metadata=rpc_metadata(request))
    return json_response(convert.api_keys_out(page))


@routes.get(_PROJECT + "/api_keys/{key_id}")
async def get_api_key(request: web.Request) -> web.Response:
    rpc = admin_pb2.GetApiKeyRequest(
        project_id=request.match_info["project_id"], key_id=request.match_info["key_id"]
    )
    key = await core(request).admin.GetApiKey(rpc, metadata=rpc_metadata(request))
    return json_response(convert.api_key_out(key))


@routes.delete(_PROJECT + "/api_keys/{key_id}")
async def delete_api_key(request: web.Request) -> web.Response:
    rpc = admin_pb2.DeleteApiKeyRequest(
        project_id=request.match_info["project_id"], key_id=request.match_info["key_id"]
    )
    deleted = await core(request).admin.DeleteApiKey(rpc, metadata=rpc_metadata(request))
    return json_response(convert.deleted_out("organization.project.api_key.deleted", deleted.id))


@routes.get(_PROJECT + "/rate_limits")
async def list_rate_limits(request: web.Request) -> web.Response:
    limit, after = convert.page_of(request.query)
    rpc = admin_pb2.ListProjectRateLimitsRequest(
        project_id=request.match_info["project_id"], after=after, limit=limit
    )
    page = await core(request).admin.ListProjectRateLimits(rpc, metadata=rpc_metadata(request))
    return json_response(convert.rate_limits_out(page))


@routes.post(_PROJECT + "/rate_limits/{rate_limit_id}")
async def modify_rate_limit(request: web.Request) -> web.Response:
    rpc = admin_pb2.ModifyProjectRateLimitRequest(
        project_id=request.match_info["project_id"],
        rate_limit_id=request.match_info["rate_limit_id"],
    )
    convert.modify_rate_limit_in(await read_json_object(request), rpc)
    limit = await core(request).admin.ModifyProjectRateLimit(rpc, metadata=rpc_metadata(request))
    return json_response(convert.rate_limit_out(limit))


@routes.get("/v1/organization/usage/completions")
async def completions_usage(request: web.Request) -> web.Response:
    rpc = convert.completions_usage_request(request.query)
    page = await core(request).admin.GetCompletionsUsage(rpc, metadata=rpc_metadata(request))
    return json_response(convert.completions_usage_out(page))


@routes.get("/v1/organization/usage/vector_stores")
async def vector_stores_usage(request: web.Request) -> web.Response:
    rpc = convert.storage_usage_request(request.query)
    page = await core(request).admin.GetVectorStoresUsage(rpc, metadata=rpc_metadata(request))
    return json_response(convert.storage_usage_out(page, "vector_stores"))


@routes.get("/v1/organization/usage/files")
async def files_usage(request: web.Request) -> web.Response:
    rpc = convert.storage_usage_request(request.query)
    page = await core(request).admin.GetFilesUsage(rpc, metadata=rpc_metadata(request))
    return json_response(convert.storage_usage_out(page, "files"))
