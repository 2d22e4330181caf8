"""A whole assistants-compat server (gRPC core and HTTP edge) on its own event loop thread.

The sync `openai.OpenAI` client blocks the thread that calls it, so the server cannot share
the test's thread: `ServerThread` starts a fresh asyncio loop in a background thread, creates
and starts the embedded server there, and hands back its addresses. Every hand-over between the
threads is a future (`run_coroutine_threadsafe`) or an event: no sleeping, no polling.

    with ServerThread(database_url=f"sqlite:///{tmp}/compat.db") as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test")
        ...
        server.restart()  # same database, new ports

The suite runs twice: on SQLite, and on PostgreSQL when `COMPAT_TEST_POSTGRES_URL` names an
admin connection (`postgresql://postgres@127.0.0.1:5432/postgres`, say). In that PostgreSQL
pass every database a test asks for is a fresh PostgreSQL database of its own, created through
that connection and dropped at teardown: `database_url(directory)` hands one out, and a
`ServerThread` given a SQLite file URL (as `sqlite_url(directory)` makes) gets the PostgreSQL
database that stands for that file instead, so tests written for SQLite run on both unchanged.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
import uuid
from collections.abc import Coroutine, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from compat_core.embedded import CompatServer

T = TypeVar("T")

DEFAULT_START_TIMEOUT = 30.0
DEFAULT_STOP_TIMEOUT = 30.0
ADMIN_TIMEOUT = 60.0

POSTGRES_ENV = "COMPAT_TEST_POSTGRES_URL"
SQLITE_PREFIX = "sqlite:///"


def sqlite_url(directory: Path) -> str:
    """The database URL of a SQLite file in `directory` (files then live in `directory/files`)."""
    return f"{SQLITE_PREFIX}{directory / 'compat.db'}"


def postgres_admin_url() -> str | None:
    """The admin URL of the PostgreSQL pass, or None in the SQLite pass."""
    return os.environ.get(POSTGRES_ENV) or None


def database_url(directory: Path) -> str:
    """A fresh database for a test: PostgreSQL in the PostgreSQL pass, else SQLite.

    On SQLite it is `sqlite_url(directory)` (the directory need not exist yet). On PostgreSQL
    it is a new, empty database that stands for that SQLite file, so a server given either URL
    uses it and keeps its files in `directory/files`; `drop_database` or the end of the session
    drops it.
    """
    if postgres_admin_url() is None:
        return sqlite_url(directory)
    return _test_databases().stand_in_for(directory / "compat.db")


def drop_database(url: str) -> None:
    """Drop a PostgreSQL database `database_url` made (idempotent); a no-op for SQLite."""
    if _databases is not None:
        _databases.drop(url)


def drop_all_databases() -> None:
    """Drop every PostgreSQL database this process made and close the admin connection."""
    global _databases
    databases, _databases = _databases, None
    if databases is not None:
        databases.close()


class _TestDatabases:
    """The PostgreSQL pass's databases, each standing for the SQLite file a test would use.

    Created with CREATE DATABASE through one admin connection (on a loop thread of its own, so
    that sync and async tests alike can call in) and dropped WITH (FORCE), which ends any
    session a test left behind. A drop runs in the background (the next test need not wait
    for it); `close()` waits for every drop and fails if one did. One database per SQLite path:
    a server restarted on the same directory, or a second server on it, finds the first one's
    data as it would on SQLite.
    """

    def __init__(self, admin_url: str) -> None:
        from sqlalchemy.engine import make_url
        from sqlalchemy.ext.asyncio import create_async_engine

        from compat_core.store.postgres import async_url

        # Test databases' URLs keep the admin URL's form (`postgresql://…`, say), as an operator
        # would write COMPAT_DATABASE_URL.
        self._admin_url = make_url(admin_url)
        self._loop_thread = _LoopThread(name="postgres-admin")
        # AUTOCOMMIT: CREATE and DROP DATABASE cannot run inside a transaction. A few
        # connections, so that a CREATE need not wait for the drops still running.
        self._engine: AsyncEngine = create_async_engine(
            async_url(self._admin_url), isolation_level="AUTOCOMMIT", pool_size=4, max_overflow=0
        )
        self._lock = threading.Lock()
        self._by_path: dict[Path, str] = {}
        self._paths: dict[str, Path] = {}
        self._drops: list[concurrent.futures.Future[None]] = []

    def stand_in_for(self, sqlite_path: Path) -> str:
        """The URL of the database standing for `sqlite_path`, created on first use."""
        with self._lock:
            url = self._by_path.get(sqlite_path)
            if url is None:
                name = f"t_{uuid.uuid4().hex}"
                self._run(f"CREATE DATABASE {name} TEMPLATE template0")
                url = self._admin_url.set(database=name).render_as_string(hide_password=False)
                self._by_path[sqlite_path] = url
                self._paths[url] = sqlite_path
            return url

    def sqlite_path_of(self, url: str) -> Path | None:
        """The SQLite file a database of ours stands for; None if it is not ours."""
        with self._lock:
            return self._paths.get(url)

    def drop(self, url: str) -> None:
        with self._lock:
            path = self._paths.pop(url, None)
            if path is None:
                return
            del self._by_path[path]
            statement = f"DROP DATABASE IF EXISTS {_database_name(url)} WITH (FORCE)"
            self._drops.append(
                asyncio.run_coroutine_threadsafe(
                    _execute(self._engine, statement), self._loop_thread.loop
                )
            )

    def close(self) -> None:
        try:
            for url in list(self._paths):
                self.drop(url)
            done, pending = concurrent.futures.wait(self._drops, ADMIN_TIMEOUT)
            failed = [future.exception() for future in done if future.exception() is not None]
            if pending or failed:
                raise RuntimeError(f"test databases left behind: {len(pending)} pending, {failed}")
        finally:
            with contextlib.suppress(Exception):
                self._loop_thread.run(self._engine.dispose(), ADMIN_TIMEOUT)
            self._loop_thread.close()

    def _run(self, statement: str) -> None:
        self._loop_thread.run(_execute(self._engine, statement), ADMIN_TIMEOUT)


async def _execute(engine: AsyncEngine, statement: str) -> None:
    from sqlalchemy import text

    async with engine.connect() as conn:
        await conn.execute(text(statement))


def _database_name(url: str) -> str:
    from sqlalchemy.engine import make_url

    name = make_url(url).database or ""
    # Only names we made reach DDL: they are plain identifiers, nothing to quote.
    if not (name.startswith("t_") and name[2:].isalnum()):
        raise ValueError(f"not a test database: {name!r}")
    return name


_databases: _TestDatabases | None = None
_databases_lock = threading.Lock()


def _test_databases() -> _TestDatabases:
    global _databases
    admin_url = postgres_admin_url()
    if admin_url is None:
        raise RuntimeError(f"{POSTGRES_ENV} is not set: this is the SQLite pass")
    with _databases_lock:
        if _databases is None:
            _databases = _TestDatabases(admin_url)
        return _databases


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
    required so that each server's state lives where the test put it; in the PostgreSQL pass a
    SQLite file URL stands for the PostgreSQL database `database_url()` makes for that file
    (see the module's docstring). File bytes live in `files/` beside the SQLite file, or
    `files_dir`. The server keeps its configuration across `restart()`, which stops it and
    starts a new one on the same database.
    """

    def __init__(
        self,
        *,
        database_url: str,
        files_dir: str = "",
        api_keys: Sequence[str] = (),
        cors_origins: Sequence[str] = ("*",),
        log_requests: bool = False,
        tools: Sequence[object] = (),
        host: str = "127.0.0.1",
        start_timeout: float = DEFAULT_START_TIMEOUT,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
        **settings_overrides: Any,
    ) -> None:
        self.database_url, self.files_dir = _placement(database_url, files_dir)
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
            files_dir=self.files_dir,
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


def _placement(url: str, files_dir: str) -> tuple[str, str]:
    """The database URL and files directory a server really uses (see `ServerThread`)."""
    if postgres_admin_url() is not None and url.startswith(SQLITE_PREFIX):
        sqlite_path = Path(url.removeprefix(SQLITE_PREFIX))
        url = _test_databases().stand_in_for(sqlite_path)
        return url, files_dir or str(sqlite_path.parent / "files")
    if files_dir or url.startswith(SQLITE_PREFIX):
        # On SQLite the server itself puts files beside the database file.
        return url, files_dir
    stands_for = _databases.sqlite_path_of(url) if _databases is not None else None
    if stands_for is None:
        # Else the server would fall back to ./data/files in the working directory.
        raise ValueError("a server on a PostgreSQL database needs files_dir")
    return url, str(stands_for.parent / "files")
