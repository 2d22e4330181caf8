"""A whole assistants-compat server (gRPC core and HTTP edge) on its own event loop thread.

The sync `openai.OpenAI` client blocks the thread that calls it, so the server cannot share
the test's thread: `ServerThread` starts a fresh asyncio loop in a background thread, creates
and starts the embedded server there, and hands back its addresses. Every hand-over between the
threads is a future (`run_coroutine_threadsafe`) or an event: no sleeping, no polling.

    with ServerThread(database_url=f"sqlite:///{tmp}/compat.db") as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test")
        ...
        server.restart()  # same database, new ports
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

if TYPE_CHECKING:
    from compat_core.embedded import CompatServer

T = TypeVar("T")

DEFAULT_START_TIMEOUT = 30.0
DEFAULT_STOP_TIMEOUT = 30.0


def sqlite_url(directory: Path) -> str:
    """The database URL of a SQLite file in `directory` (files then live in `directory/files`)."""
    return f"sqlite:///{directory / 'compat.db'}"


class _LoopThread:
    """An asyncio event loop running forever in a daemon thread until `close()`."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_forever()
        finally:
            self._drain()

    def _drain(self) -> None:
        """Cancel what is left, let it unwind, and close the loop in its own thread."""
        loop = self.loop
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        """Run a coroutine on the loop and wait for its result from the calling thread."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def close(self) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()


class ServerThread:
    """A `create_server(...)` server running on a background loop; a context manager.

    The keyword arguments are those of `compat_core.embedded.create_server`; unset ones get
    test-friendly values (auth off, CORS `*`, loopback, ephemeral ports). `database_url` is
    required so that each server's state lives where the test put it. The server keeps its
    configuration across `restart()`, which stops it and starts a new one on the same database.
    """

    def __init__(
        self,
        *,
        database_url: str,
        api_keys: Sequence[str] = (),
        cors_origins: Sequence[str] = ("*",),
        log_requests: bool = False,
        tools: Sequence[object] = (),
        host: str = "127.0.0.1",
        start_timeout: float = DEFAULT_START_TIMEOUT,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
        **settings_overrides: Any,
    ) -> None:
        self.database_url = database_url
        self.api_keys = list(api_keys)
        self.cors_origins = list(cors_origins)
        self.log_requests = log_requests
        self.tools = list(tools)
        self.host = host
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.settings_overrides = settings_overrides
        self._loop_thread: _LoopThread | None = None
        self._server: CompatServer | None = None
        self.starts = 0

    # Lifecycle

    def start(self) -> Self:
        """Start a loop thread and the server on it; return once both listen."""
        if self._server is not None:
            raise RuntimeError("the server is already running")
        loop_thread = _LoopThread(name=f"compat-server-{self.starts + 1}")
        try:
            self._server = loop_thread.run(self._start(), self.start_timeout)
        except BaseException:
            loop_thread.close()
            raise
        self._loop_thread = loop_thread
        self.starts += 1
        return self

    async def _start(self) -> CompatServer:
        # Imported here so that the rest of the suite (the schema self-test) collects and runs
        # even while the embedded server is missing or broken.
        from compat_core.config import Settings
        from compat_core.embedded import create_server

        # Base settings pinned to the test's needs, so that a developer's COMPAT_* environment
        # (a key, a files directory, a remote core) cannot leak into the suite.
        settings = Settings(
            database_url=self.database_url,
            files_dir="",
            core_target="",
            http_host=self.host,
            grpc_host=self.host,
            http_port=0,
            grpc_port=0,
            api_keys=self.api_keys,
            cors_origins=self.cors_origins,
            log_requests=self.log_requests,
            **self.settings_overrides,
        )
        server = create_server(
            database_url=self.database_url,
            api_keys=self.api_keys,
            cors_origins=self.cors_origins,
            log_requests=self.log_requests,
            tools=self.tools,
            host=self.host,
            http_port=0,
            grpc_port=0,
            settings=settings,
        )
        try:
            await server.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await server.stop()
            raise
        return server

    def stop(self) -> None:
        """Stop the server (it waits for in-flight calls), then its loop and thread."""
        server, loop_thread = self._server, self._loop_thread
        self._server = None
        self._loop_thread = None
        if loop_thread is None:
            return
        try:
            if server is not None:
                loop_thread.run(server.stop(), self.stop_timeout)
        finally:
            loop_thread.close()

    def restart(self) -> Self:
        """Stop, then start a new server on the same database (with new ports)."""
        self.stop()
        return self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # What tests need

    @property
    def server(self) -> CompatServer:
        if self._server is None:
            raise RuntimeError("the server is not running")
        return self._server

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`: health and other non-API routes."""
        return self.server.get_url()

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/v1`: what the SDK's `base_url` takes."""
        return self.server.get_base_url()

    @property
    def grpc_target(self) -> str:
        """`127.0.0.1:PORT` of the gRPC core."""
        return self.server.get_grpc_target()

    def is_running(self) -> bool:
        return self._server is not None and self._server.is_running()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 60.0) -> T:
        """Run a coroutine on the server's loop (for tests that need to reach inside)."""
        if self._loop_thread is None:
            raise RuntimeError("the server is not running")
        return self._loop_thread.run(coro, timeout)
