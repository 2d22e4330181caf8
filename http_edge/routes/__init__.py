"""Route tables, one module per resource."""

from __future__ import annotations

from aiohttp import hdrs, web

from http_edge import metrics
from http_edge.handling import (
    UNROUTED_PATH,
    admin_admit_before_continue,
    admit_before_continue,
    guarded,
    unrouted,
)
from http_edge.routes import (
    admin,
    assistants,
    files,
    health,
    messages,
    models,
    runs,
    threads,
    vector_store_batches,
    vector_stores,
)
from http_edge.routes.context import ADMIN_ADMISSION, ADMISSION


def setup_routes(app: web.Application) -> None:
    """Every route of the API, each handler guarded (`http_edge.handling`; a POST's body is
    read only once the core has let its caller in), then the catch-all that answers what
    none of them takes."""
    # `runs` goes before `threads`: its `/v1/threads/runs` must win over `/v1/threads/{id}`.
    meters = app[metrics.METRICS]
    for table in (
        health.routes,
        metrics.routes,
        assistants.routes,
        runs.routes,
        threads.routes,
        messages.routes,
        files.routes,
        vector_stores.routes,
        vector_store_batches.routes,
        models.routes,
        admin.routes,
    ):
        # The admin routes let in admin keys alone (`compat_core.admin_auth`).
        admitting = ADMIN_ADMISSION if table is admin.routes else ADMISSION
        expecting = admin_admit_before_continue if table is admin.routes else admit_before_continue
        for route in table:
            if not isinstance(route, web.RouteDef):
                raise TypeError(f"not a handler's route: {route!r}")
            kwargs = dict(route.kwargs)
            reads_body = route.method == hdrs.METH_POST
            if reads_body:
                kwargs["expect_handler"] = expecting
            meter = meters.route(route.method, route.path)
            guard = guarded(route.handler, meter, reads_body=reads_body, admission=admitting)
            app.router.add_routes([web.RouteDef(route.method, route.path, guard, kwargs)])
    catch_all = guarded(unrouted, meters.route(hdrs.METH_ANY, metrics.UNROUTED))
    app.router.add_route("*", UNROUTED_PATH, catch_all)
