"""Start-up failures that a setting causes, as one-line `ConfigError`s naming the variable.

A port in use, a host that is not this machine's, a database that refuses the connection:
each surfaces deep in aiohttp, grpc or a database driver as an exception whose traceback
tells a newcomer nothing about which variable to change. These helpers wrap exactly the
calls that bind or connect, so only their failures are translated; anything else keeps its
traceback.
"""

from __future__ import annotations

import errno
import os
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import asyncpg

from compat_core.config import ConfigError, mask_password
from compat_core.store.base import VectorsUnavailable

Listener = Literal["HTTP", "GRPC", "METRICS"]

# Database errors that mean "this URL does not lead to a usable database", not a bug.
_SETTING_ERRORS = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.InsufficientPrivilegeError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.ClientConfigurationError,
)
_SQLITE_SETTING_CODES = frozenset(
    {
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PERM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_AUTH,
        sqlite3.SQLITE_NOTADB,
    }
)


@contextmanager
def listen_errors(listener: Listener, host: str, port: int) -> Iterator[None]:
    """Translate an OSError of the bind inside into a ConfigError naming the variable."""
    try:
        yield
    except OSError as exc:
        raise listen_error(listener, host, port, exc) from None


def check_listenable(listener: Listener, host: str, port: int) -> None:
    """Bind (and release) `host:port` as a server would, or raise ConfigError saying why not.

    For grpc, whose failed bind raises a RuntimeError that names no cause and prints grpc's
    own multi-line report: trying the address first with a plain socket (SO_REUSEADDR, as
    grpc binds) gives the OS's reason, and grpc is only asked to bind what is free.
    """
    with listen_errors(listener, host, port):
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        failure: OSError | None = None
        for family, kind, proto, _, address in infos:
            try:
                with socket.socket(family, kind, proto) as probe:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    probe.bind(address)
            except OSError as exc:
                failure = failure or exc
            else:
                return
        if failure is not None:
            raise failure


def listen_error(listener: Listener, host: str, port: int, exc: OSError) -> ConfigError:
    """The one line for a failed bind of `host:port`, naming the variable to change."""
    host_var, port_var = f"COMPAT_{listener}_HOST", f"COMPAT_{listener}_PORT"
    where = f"cannot listen on {format_host(host)}:{port} ({listener})"
    if isinstance(exc, socket.gaierror):
        return ConfigError(f"{host_var}={host!r}: {where}: no such host ({exc.strerror})")
    if exc.errno == errno.EADDRINUSE:
        return ConfigError(
            f"{port_var}={port}: {where}: the port is already in use by another program; "
            f"stop it or set {port_var} to a free port"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return ConfigError(
            f"{host_var}={host!r}: {where}: not an address of this machine "
            "(0.0.0.0 listens on all of them)"
        )
    if exc.errno == errno.EACCES:
        return ConfigError(
            f"{port_var}={port}: {where}: permission denied "
            "(ports below 1024 need privileges; use a higher one)"
        )
    reason = exc.strerror or str(exc)
    return ConfigError(f"{host_var}={host!r}, {port_var}={port}: {where}: {reason}")


@contextmanager
def database_errors(url: str) -> Iterator[None]:
    """Translate a failure to open or migrate the database at `url` that the URL causes (no
    server there, a wrong password, a missing database, a file that cannot be opened) into a
    ConfigError naming COMPAT_DATABASE_URL, with its password masked."""
    try:
        yield
    except ConfigError:
        # Already names its variable (COMPAT_EMBEDDING_MODEL for a database without pgvector),
        # though the driver's error it came from is in its chain.
        raise
    except Exception as exc:
        cause = _setting_cause(exc)
        if cause is None:
            raise
        reason = str(cause)
        if isinstance(cause, OSError) and cause.strerror:
            where = f": {cause.filename}" if cause.filename else ""
            reason = f"{cause.strerror}{where}"
        raise ConfigError(
            f"COMPAT_DATABASE_URL={mask_password(url)!r}: cannot open the database: {reason}"
        ) from None


@contextmanager
def vectors_errors(model: str) -> Iterator[None]:
    """Translate a database that cannot hold the configured model's vectors (PostgreSQL
    without pgvector) into a ConfigError naming COMPAT_EMBEDDING_MODEL and both ways out."""
    try:
        yield
    except VectorsUnavailable as exc:
        raise ConfigError(
            f"COMPAT_EMBEDDING_MODEL={model!r}: dense search cannot start: {exc}; "
            "or unset COMPAT_EMBEDDING_MODEL for lexical search only"
        ) from None


def check_files_dir(path: Path) -> None:
    """Raise ConfigError unless uploads can be stored under `path` (COMPAT_FILES_DIR, or
    `files/` beside the SQLite file): else the first upload, not the start, would fail.

    Creates nothing: the blob store makes the directory when it is first needed.
    """
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    problem = None
    if not existing.is_dir():
        problem = f"{existing} is not a directory"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"{existing} is not writable by this user"
    if problem is not None:
        raise ConfigError(f"COMPAT_FILES_DIR={str(path)!r}: cannot store uploads there: {problem}")


def format_host(host: str) -> str:
    """`host` as it goes before `:port` in an address (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host else host


def _setting_cause(exc: BaseException) -> BaseException | None:
    """The error in `exc`'s chain (drivers wrap their own errors) that a bad URL causes."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _SETTING_ERRORS):
            return current
        if isinstance(current, sqlite3.Error):
            code = getattr(current, "sqlite_errorcode", None)
            if code is not None and code & 0xFF in _SQLITE_SETTING_CODES:
                return current
        current = current.__cause__ or current.__context__
    return None
