"""Route tables, one module per resource."""

from __future__ import annotations

from aiohttp import web

from http_edge.routes import assistants, files, health, messages, models, runs, threads


def setup_routes(app: web.Application) -> None:
    # `runs` goes before `threads`: its `/v1/threads/runs` must win over `/v1/threads/{id}`.
    for table in (
        health.routes,
        assistants.routes,
        runs.routes,
        threads.routes,
        messages.routes,
        files.routes,
        models.routes,
    ):
        app.router.add_routes(table)
