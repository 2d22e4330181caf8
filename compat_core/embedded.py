"""The all-in-one server, started and stopped from Python.

This mirrors the seed project's `createOpenAIServer(…)`/`start()`/`stop()`: one object that
runs the core and the HTTP edge on the caller's event loop, for applications that embed the
server and for tests. The edge still reaches the core over a real gRPC channel on loopback,
so an embedded server behaves exactly as a deployed one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from compat_core.config import ProviderConfig, Settings
from compat_core.server import CoreServer
from compat_core.startup import listen_errors
from compat_core.tools import as_tools

if TYPE_CHECKING:
    from http_edge.connections import HttpListener


class CompatServer:
    """Core and edge in one process. Ports may be 0: the bound ones are reported."""

    def __init__(self, settings: Settings, tools: Sequence[object] = ()) -> None:
        self.settings = settings
        self._tools = [t for entry in tools for t in as_tools(entry)]
        self._core: CoreServer | None = None
        self._edge: HttpListener | None = None
        self._http_port = 0
        self._grpc_port = 0

    async def start(self) -> None:
        """Start the core, then the edge in front of it."""
        from http_edge.app import create_app
        from http_edge.connections import HttpListener

        if self.is_running():
            raise RuntimeError("the server is already running")
        core = CoreServer(self.settings, self._tools)
        self._grpc_port = await core.start()
        self._core = core
        try:
            # One scrape of the edge's `/metrics` sees the whole server, core included.
            app = create_app(self.settings, self.get_grpc_target(), (core.metrics.registry,))
            edge = HttpListener(app, self.settings)
            with listen_errors("HTTP", self.settings.http_host, self.settings.http_port):
                self._http_port = await edge.start(self.settings.http_host, self.settings.http_port)
        except BaseException:
            await self.stop()
            raise
        self._edge = edge

    async def stop(self, grace: float | None = None) -> None:
        """Stop taking requests; let those in flight and open event streams finish within
        `grace` seconds (default `COMPAT_SHUTDOWN_GRACE_SECONDS`), ending the streams still
        open with an `error` event (their runs go on); then stop the core, whose calls get
        the same grace."""
        if grace is None:
            grace = self.settings.shutdown_grace_seconds
        if self._edge is not None:
            await self._edge.stop(grace)
            self._edge = None
        if self._core is not None:
            await self._core.stop(grace)
            self._core = None

    def is_running(self) -> bool:
        return self._core is not None

    def get_url(self) -> str:
        """The edge's root URL, such as `http://127.0.0.1:8080`."""
        return f"http://{_client_host(self.settings.http_host)}:{self._http_port}"

    def get_base_url(self) -> str:
        """The URL to give an OpenAI SDK as `base_url`: the root plus `/v1`."""
        return f"{self.get_url()}/v1"

    def get_grpc_target(self) -> str:
        """The core's `host:port` for gRPC clients."""
        return f"{_client_host(self.settings.grpc_host)}:{self._grpc_port}"

    @property
    def http_port(self) -> int:
        """The edge's bound port (0 until started)."""
        return self._http_port

    @property
    def grpc_port(self) -> int:
        """The core's bound port (0 until started)."""
        return self._grpc_port

    @property
    def tools(self) -> list[str]:
        """The names of the server-side tools the core serves (none until started)."""
        return list(self._core.tools) if self._core is not None else []


def create_server(
    *,
    database_url: str | None = None,
    api_keys: Sequence[str] | None = None,
    cors_origins: Sequence[str] | None = None,
    log_requests: bool | None = None,
    tools: Sequence[object] = (),
    providers: Mapping[str, str | ProviderConfig] | None = None,
    requires_action_timeout_seconds: int | None = None,
    host: str = "127.0.0.1",
    http_port: int = 0,
    grpc_port: int = 0,
    settings: Settings | None = None,
) -> CompatServer:
    """An all-in-one server; keyword arguments override `settings` (else the environment).

    `providers` maps a provider name to its base URL (or a full `ProviderConfig` with a key):
    `providers={"local": "http://127.0.0.1:8000/v1"}` serves `local/<model>`.
    """
    overrides: dict[str, Any] = {
        "http_host": host,
        "grpc_host": host,
        "http_port": http_port,
        "grpc_port": grpc_port,
    }
    if database_url is not None:
        overrides["database_url"] = database_url
    if api_keys is not None:
        overrides["api_keys"] = list(api_keys)
    if cors_origins is not None:
        overrides["cors_origins"] = list(cors_origins)
    if log_requests is not None:
        overrides["log_requests"] = log_requests
    if providers is not None:
        overrides["extra_providers"] = {
            name: value
            if isinstance(value, ProviderConfig)
            else ProviderConfig(name=name, base_url=value)
            for name, value in providers.items()
        }
    if requires_action_timeout_seconds is not None:
        overrides["requires_action_timeout_seconds"] = requires_action_timeout_seconds
    base = settings if settings is not None else Settings()
    return CompatServer(base.model_copy(update=overrides), tools)


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
