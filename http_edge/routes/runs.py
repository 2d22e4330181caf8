"""Runs and run steps. A body with `stream: true` calls the streaming RPC and answers SSE.

`/v1/threads/runs` must be registered before `/v1/threads/{thread_id}`, which would
otherwise take `runs` for a thread ID; `routes.setup_routes` keeps that order.
"""

from __future__ import annotations

from aiohttp import web

from compat_core.v1 import runs_pb2
from http_edge.convert import runs as convert
from http_edge.json_io import include_param, json_response, page_params, read_json_object
from http_edge.routes.context import core, rpc_metadata
from http_edge.routes.sse import relay_run_events

routes = web.RouteTableDef()


@routes.post("/v1/threads/runs")
async def create_thread_and_run(request: web.Request) -> web.StreamResponse:
    rpc, stream = convert.create_thread_and_run_request(await read_json_object(request))
    runs = core(request).runs
    if stream:
        rpc.accept_event_batches = True  # relay_run_events reads them
        return await relay_run_events(
            request, lambda: runs.CreateThreadAndRunStream(rpc, metadata=rpc_metadata(request))
        )
    run = await runs.CreateThreadAndRun(rpc, metadata=rpc_metadata(request))
    return json_response(convert.run_out(run))


@routes.post("/v1/threads/{thread_id}/runs")
async def create_run(request: web.Request) -> web.StreamResponse:
    rpc, stream = convert.create_run_request(
        request.match_info["thread_id"],
        await read_json_object(request),
        include_param(request.query),
    )
    runs = core(request).runs
    if stream:
        rpc.accept_event_batches = True  # relay_run_events reads them
        return await relay_run_events(
            request, lambda: runs.CreateRunStream(rpc, metadata=rpc_metadata(request))
        )
    run = await runs.CreateRun(rpc, metadata=rpc_metadata(request))
    return json_response(convert.run_out(run))


@routes.get("/v1/threads/{thread_id}/runs")
async def list_runs(request: web.Request) -> web.Response:
    rpc = convert.list_runs_request(request.match_info["thread_id"], page_params(request.query))
    page = await core(request).runs.ListRuns(rpc, metadata=rpc_metadata(request))
    return json_response(convert.list_runs_out(page))


@routes.get("/v1/threads/{thread_id}/runs/{run_id}")
async def get_run(request: web.Request) -> web.Response:
    match = request.match_info
    rpc = runs_pb2.GetRunRequest(thread_id=match["thread_id"], run_id=match["run_id"])
    run = await core(request).runs.GetRun(rpc, metadata=rpc_metadata(request))
    return json_response(convert.run_out(run))


@routes.post("/v1/threads/{thread_id}/runs/{run_id}")
async def update_run(request: web.Request) -> web.Response:
    match = request.match_info
    rpc = convert.update_run_request(
        match["thread_id"], match["run_id"], await read_json_object(request)
    )
    run = await core(request).runs.UpdateRun(rpc, metadata=rpc_metadata(request))
    return json_response(convert.run_out(run))


@routes.post("/v1/threads/{thread_id}/runs/{run_id}/cancel")
async def cancel_run(request: web.Request) -> web.Response:
    match = request.match_info
    rpc = runs_pb2.CancelRunRequest(thread_id=match["thread_id"], run_id=match["run_id"])
    run = await core(request).runs.CancelRun(rpc, metadata=rpc_metadata(request))
    return json_response(convert.run_out(run))


@routes.post("/v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs")
async def submit_tool_outputs(request: web.Request) -> web.StreamResponse:
    match = request.match_info
    rpc, stream = convert.submit_tool_outputs_request(
        match["thread_id"], match["run_id"], await read_json_object(request)
    )
    runs = core(request).runs
    if stream:
        rpc.accept_event_batches = True  # relay_run_events reads them
        return await relay_run_events(
            request, lambda: runs.SubmitToolOutputsStream(rpc, metadata=rpc_metadata(request))
        )
    run = await runs.SubmitToolOutputs(rpc, metadata=rpc_metadata(request))
    return json_response(convert.run_out(run))


@routes.get("/v1/threads/{thread_id}/runs/{run_id}/steps")
async def list_run_steps(request: web.Request) -> web.Response:
    match = request.match_info
    query = request.query
    rpc = convert.list_steps_request(
        match["thread_id"], match["run_id"], page_params(query), include_param(query)
    )
    page = await core(request).runs.ListRunSteps(rpc, metadata=rpc_metadata(request))
    return json_response(convert.list_steps_out(page))


@routes.get("/v1/threads/{thread_id}/runs/{run_id}/steps/{step_id}")
async def get_run_step(request: web.Request) -> web.Response:
    match = request.match_info
    rpc = runs_pb2.GetRunStepRequest(
        thread_id=match["thread_id"],
        run_id=match["run_id"],
        step_id=match["step_id"],
        include=include_param(request.query),
    )
    step = await core(request).runs.GetRunStep(rpc, metadata=rpc_metadata(request))
    return json_response(convert.run_step_out(step))
