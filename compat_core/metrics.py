"""The core's Prometheus metrics: what an operator watches to know a core is healthy.

Each `CoreServer` has its own registry (tests and embedding programs run several servers in
one process, and each must report its own figures). The stand-alone core serves it on
`COMPAT_METRICS_PORT`; the all-in-one server shows it on the edge's `/metrics` beside the
edge's own. docs/metrics.md lists every metric.

Nothing here costs a request more than a few dictionary lookups and additions: label
children are looked up once per method or status and kept, and figures that already exist
elsewhere (runs executing, event log bytes, the store's queue) are read only when scraped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncGenerator, Callable
from typing import Final
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from compat_core import tenancy
from compat_core.providers.base import ChatDelta, ChatProvider, ChatRequest, ProviderError
from compat_core.v1 import runs_pb2

# Request latencies from a cached read (~1 ms) to a long upload or stream (minutes); the
# edge's HTTP latencies use the same buckets.
LATENCY_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)
# Time to a model's first token: a local model's cold start can take a minute.
FIRST_TOKEN_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)
# Distinct projects the per-project metrics keep apart; more count as `other`. Each project
# has at most 2 token series, 5 run series (by final status) and 4 refusal series.
MAX_PROJECT_LABELS: Final = 1000
OTHER_PROJECT: Final = "other"
# Distinct models the token counters keep apart; more (a client inventing names) count as
# `other`, so a stranger cannot grow the scrape without bound.
MAX_MODEL_LABELS: Final = 100
OTHER_MODEL: Final = "other"

_RUN_STATUSES: Final = {
    runs_pb2.RUN_STATUS_COMPLETED: "completed",
    runs_pb2.RUN_STATUS_FAILED: "failed",
    runs_pb2.RUN_STATUS_CANCELLED: "cancelled",
    runs_pb2.RUN_STATUS_INCOMPLETE: "incomplete",
    runs_pb2.RUN_STATUS_EXPIRED: "expired",
}


class RpcMeter:
    """One RPC method's call counts by status code and its latency."""

    __slots__ = ("_by_code", "_calls", "_latency", "_method")

    def __init__(self, calls: Counter, latency: Histogram, method: str) -> None:
        self._calls = calls
        self._method = method
        self._latency = latency.labels(method)
        self._by_code: dict[str, Counter] = {"OK": calls.labels(method, "OK")}

    def done(self, code: str, started: float) -> None:
        """Count a call that ended with `code` (a gRPC status name), begun at `started`
        (`time.perf_counter()`)."""
        self._latency.observe(time.perf_counter() - started)
        counter = self._by_code.get(code)
        if counter is None:
            counter = self._by_code[code] = self._calls.labels(self._method, code)
        counter.inc()


class CoreMetrics:
    """Every metric of one core, in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self._rpc_calls = Counter(
            "compat_core_rpcs",
            "RPC calls the core answered, by method and gRPC status code.",
            ("method", "code"),
            registry=registry,
        )
        self._rpc_latency = Histogram(
            "compat_core_rpc_duration_seconds",
            "Time the core took to answer an RPC (a streaming one: until its stream ended).",
            ("method",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.streams_active = Gauge(
            "compat_core_streams_active",
            "Server-streaming RPCs (run event streams, WatchRun) open on this core.",
            registry=registry,
        )
        self._runs_finished = Counter(
            "compat_runs_finished",
            "Runs this core brought to a final status, by that status.",
            ("status",),
            registry=registry,
        )
        self._runs_finished_by_status = {
            status: self._runs_finished.labels(name) for status, name in _RUN_STATUSES.items()
        }
        self.runs_active = Gauge(
            "compat_runs_active", "Runs executing on this core now.", registry=registry
        )
        self.event_log_bytes = Gauge(
            "compat_run_event_log_bytes",
            "Memory the run event logs kept for watchers hold (the hub's estimate), bounded by "
            "COMPAT_EVENT_LOG_MAX_BYTES.",
            registry=registry,
        )
        self.store_pending = Gauge(
            "compat_store_transactions_pending",
            "Store transactions submitted and not yet taken up: on SQLite, waiting for its "
            "writer or reader threads; on PostgreSQL, in flight.",
            registry=registry,
        )
        self._tokens = Counter(
            "compat_tokens",
            "Tokens of finished runs, by the model string the run named and kind "
            "(prompt: in, completion: out).",
            ("model", "kind"),
            registry=registry,
        )
        self._token_children: dict[str, tuple[Counter, Counter]] = {}
        self._upstream_requests = Counter(
            "compat_upstream_requests",
            "Model calls by provider (builtin included).",
            ("provider",),
            registry=registry,
        )
        self._upstream_errors = Counter(
            "compat_upstream_errors",
            "Model calls that failed, by provider and the run's error code.",
            ("provider", "code"),
            registry=registry,
        )
        self._first_token = Histogram(
            "compat_upstream_first_token_seconds",
            "Time from sending a model call to its first piece of reply, by provider.",
            ("provider",),
            buckets=FIRST_TOKEN_BUCKETS,
            registry=registry,
        )
        self._project_tokens = Counter(
            "compat_project_tokens",
            "Tokens of runs that finished on this core, by project and kind (prompt: in, "
            f"completion: out); past {MAX_PROJECT_LABELS} projects, the rest count as `other`.",
            ("project", "kind"),
            registry=registry,
        )
        self._project_runs = Counter(
            "compat_project_runs_finished",
            "Runs this core brought to a final status, by project and that status.",
            ("project", "status"),
            registry=registry,
        )
        self._project_refused = Counter(
            "compat_project_rate_limited",
            "Calls this core refused for a project's rate limit, by project and limit "
            "(requests, tokens, runs, streams).",
            ("project", "limit"),
            registry=registry,
        )
        self._projects_labelled: set[str] = set()
        self._server: tuple[WSGIServer, threading.Thread] | None = None

    def rpc(self, method: str) -> RpcMeter:
        """The meter of one RPC method (made once, when the guard wraps the method)."""
        return RpcMeter(self._rpc_calls, self._rpc_latency, method)

    def run_finished(self, run: runs_pb2.Run) -> None:
        """Count a run that reached a final status on this core, and its tokens (in its
        project's too: the hub announces a run's end in the run's project scope)."""
        counter = self._runs_finished_by_status.get(run.status)
        if counter is not None:
            counter.inc()
        usage = run.usage
        if usage.prompt_tokens or usage.completion_tokens:
            prompt, completion = self._token_counters(run.model)
            prompt.inc(usage.prompt_tokens)
            completion.inc(usage.completion_tokens)
        scope = tenancy.current_or_none()
        status = _RUN_STATUSES.get(run.status)
        if isinstance(scope, str) and status is not None:
            project = self._project_label(scope)
            self._project_runs.labels(project, status).inc()
            if usage.prompt_tokens or usage.completion_tokens:
                self._project_tokens.labels(project, "prompt").inc(usage.prompt_tokens)
                self._project_tokens.labels(project, "completion").inc(usage.completion_tokens)

    def rate_limited(self, project: str, limit: str) -> None:
        """Count a call refused for one of its project's rate limits."""
        self._project_refused.labels(self._project_label(project), limit).inc()

    def _project_label(self, project: str) -> str:
        labelled = self._projects_labelled
        if project in labelled:
            return project
        if len(labelled) >= MAX_PROJECT_LABELS:
            return OTHER_PROJECT
        labelled.add(project)
        return project

    def _token_counters(self, model: str) -> tuple[Counter, Counter]:
        children = self._token_children.get(model)
        if children is None:
            if len(self._token_children) >= MAX_MODEL_LABELS:
                model = OTHER_MODEL
                children = self._token_children.get(model)
            if children is None:
                children = (
                    self._tokens.labels(model, "prompt"),
                    self._tokens.labels(model, "completion"),
                )
                self._token_children[model] = children
        return children

    def metered(self, name: str, provider: ChatProvider) -> ChatProvider:
        """`provider` with its calls, failures and time to first piece counted."""
        return _MeteredProvider(
            provider,
            self._upstream_requests.labels(name),
            self._first_token.labels(name),
            lambda code: self._upstream_errors.labels(name, code).inc(),
        )

    def serve(self, host: str, port: int) -> int:
        """Serve the registry over HTTP (Prometheus text) on `host:port`; the bound port."""
        server, thread = start_http_server(port, host, registry=self.registry)
        self._server = (server, thread)
        return int(server.server_port)

    def close(self) -> None:
        if self._server is not None:
            server, thread = self._server
            self._server = None
            server.shutdown()
            server.server_close()
            thread.join()


class _MeteredProvider(ChatProvider):
    """A provider whose calls are counted; the stream itself passes through unchanged."""

    def __init__(
        self,
        inner: ChatProvider,
        requests: Counter,
        first_token: Histogram,
        failed: Callable[[str], None],
    ) -> None:
        self._inner = inner
        self._requests = requests
        self._first_token = first_token
        self._failed = failed

    async def stream(self, request: ChatRequest) -> AsyncGenerator[ChatDelta, None]:
        self._requests.inc()
        started = time.perf_counter()
        pieces = self._inner.stream(request)
        try:
            try:
                first = await anext(pieces)
            except StopAsyncIteration:
                return
            self._first_token.observe(time.perf_counter() - started)
            yield first
            async for piece in pieces:
                yield piece
        except ProviderError as exc:
            self._failed(exc.code)
            raise
        finally:
            await pieces.aclose()

    async def close(self) -> None:
        await self._inner.close()
