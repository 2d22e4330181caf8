"""The edge's Prometheus metrics, and `GET /metrics`, which shows them.

Each application has its own registry, so several edges in one process (tests, embedding
programs) each report their own. The all-in-one server adds its core's registry, so one
scrape of `/metrics` sees the whole server; a stand-alone core serves its own on
`COMPAT_METRICS_PORT`. docs/metrics.md lists every metric.

Routes are labelled by their pattern (`/v1/threads/{thread_id}/runs`), never by the path a
client sent, and methods outside the API's by `OTHER`: a stranger cannot grow the scrape.
Each route's children are looked up once, when the route is set up, and per status once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Final

from aiohttp import hdrs, web
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from compat_core.metrics import LATENCY_BUCKETS

# What the catch-all route answers (unknown paths, 405s, CORS preflights) is one route.
UNROUTED: Final = "unrouted"
_METHODS: Final = frozenset(
    {
        hdrs.METH_GET,
        hdrs.METH_POST,
        hdrs.METH_DELETE,
        hdrs.METH_OPTIONS,
        hdrs.METH_HEAD,
        hdrs.METH_PUT,
        hdrs.METH_PATCH,
    }
)
_OTHER_METHOD: Final = "OTHER"


class RouteMeter:
    """One route's requests by status, and their latency (a stream's: until it ended)."""

    __slots__ = ("_by_status", "_latency", "_latency_by_method", "_method", "_requests", "_route")

    def __init__(self, metrics: EdgeMetrics, method: str, route: str) -> None:
        self._requests = metrics.requests
        self._route = route
        self._method = method
        self._by_status: dict[tuple[str, int], Counter] = {}
        self._latency = metrics.latency
        self._latency_by_method: dict[str, Histogram] = {}

    def done(self, request: web.BaseRequest, status: int, started: float) -> None:
        """Count a request answered with `status`, begun at `started` (`perf_counter`)."""
        method = self._method or _method_label(request.method)
        latency = self._latency_by_method.get(method)
        if latency is None:
            latency = self._latency_by_method[method] = self._latency.labels(method, self._route)
        latency.observe(time.perf_counter() - started)
        key = (method, status)
        counter = self._by_status.get(key)
        if counter is None:
            counter = self._by_status[key] = self._requests.labels(method, self._route, status)
        counter.inc()


class EdgeMetrics:
    """Every metric of one edge application, in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.requests = Counter(
            "compat_http_requests",
            "HTTP requests the edge answered, by method, route pattern and status.",
            ("method", "route", "status"),
            registry=registry,
        )
        self.latency = Histogram(
            "compat_http_request_duration_seconds",
            "Time from a request's head to the end of its answer (an event stream's: until it "
            "ended), by method and route pattern.",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.streams_active = Gauge(
            "compat_http_event_streams_active",
            "Event streams the edge relays now (at most COMPAT_MAX_STREAMS).",
            registry=registry,
        )
        self.connections_open = Gauge(
            "compat_http_connections_open",
            "Client connections open now (at most COMPAT_MAX_CONNECTIONS).",
            registry=registry,
        )
        self.connections_refused = Counter(
            "compat_http_connections_refused",
            "Connections answered 503 and closed because COMPAT_MAX_CONNECTIONS were open.",
            registry=registry,
        )
        self.shown: tuple[CollectorRegistry, ...] = (registry,)

    def route(self, method: str, route: str) -> RouteMeter:
        """The meter of a route; `method` `*` (the catch-all) labels each request by its own."""
        return RouteMeter(self, "" if method == hdrs.METH_ANY else method, route)

    def show_too(self, registries: Sequence[CollectorRegistry]) -> None:
        """Registries `/metrics` shows after the edge's own (the embedded core's)."""
        self.shown = (self.registry, *registries)


def _method_label(method: str) -> str:
    return method if method in _METHODS else _OTHER_METHOD


METRICS: Final = web.AppKey("metrics", EdgeMetrics)

routes = web.RouteTableDef()


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus' text format, without credentials as scrapers expect (docs/metrics.md);
    labelled version 0.0.4, which every Prometheus release reads."""
    body = b"".join(generate_latest(registry) for registry in request.app[METRICS].shown)
    response = web.Response(body=body)
    response.headers[hdrs.CONTENT_TYPE] = CONTENT_TYPE_PLAIN_0_0_4
    return response
