"""The project a piece of work runs for: a scope the store applies, never an argument.

Every object belongs to one project, and the store filters every statement on a tenant's
tables by the project of the scope it runs in (and stamps it on every insert), so no service
passes a project by hand and none can forget to. A request enters its key's project in the
guard; a run or an ingestion enters the project of the object it works on; maintenance that
spans every project (claiming leases, the sweeps) enters `all_projects` explicitly. Work that
entered no scope at all reaches the store with nothing to filter by, and the store refuses it
(`NoProjectScope`): a forgotten path fails in tests instead of reading another tenant's rows.

A `ContextVar`, so a task started inside a scope (a run's execution from its request) keeps
it, and concurrent requests of different projects on one event loop never see each other's.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator
from contextvars import ContextVar, Token
from typing import Final

# The project of the keys in `COMPAT_API_KEYS`, of a server with no keys, and of everything
# stored before projects existed (migration 0012).
DEFAULT_PROJECT: Final = "proj_default"
DEFAULT_PROJECT_NAME: Final = "Default project"


class AllProjects(enum.Enum):
    """The scope of maintenance that works across projects (one member, so a type of its own)."""

    ALL = "all"


ALL_PROJECTS: Final = AllProjects.ALL
Scope = str | AllProjects

_current: ContextVar[Scope | None] = ContextVar("compat_project_scope", default=None)


class NoProjectScope(RuntimeError):
    """The store was reached outside any project scope, or an insert outside one project.

    Always a fault of ours, never of a client: the guard renders it as an internal error.
    """


def current() -> Scope:
    """The scope work runs in now; NoProjectScope if none was entered."""
    scope = _current.get()
    if scope is None:
        raise NoProjectScope("no project scope: enter tenancy.project() or all_projects()")
    return scope


def current_or_none() -> Scope | None:
    return _current.get()


def project_id() -> str:
    """The one project work runs in now (what an insert stamps, what a filter compares to);
    NoProjectScope in the all-projects scope or none."""
    scope = _current.get()
    if not isinstance(scope, str):
        raise NoProjectScope(f"a project is needed here, not the scope {scope!r}")
    return scope


def filtered() -> bool:
    """Whether statements now filter on one project (False in the all-projects scope);
    NoProjectScope outside any scope."""
    return isinstance(current(), str)


def enter(entered: Scope) -> Token[Scope | None]:
    """Enter a scope without a context manager (the guard's per-call path, where a generator
    based one costs a microsecond a call); hand the token to `leave`."""
    return _current.set(entered)


def leave(token: Token[Scope | None]) -> None:
    try:
        _current.reset(token)
    except ValueError:
        # A stream's generator closed from another context than the one it entered in (one
        # the event loop finalises): that context ends here, nothing is left to restore.
        return


@contextlib.contextmanager
def scope(entered: Scope) -> Iterator[None]:
    """Run the body in `entered` (a project ID, or `ALL_PROJECTS`)."""
    if isinstance(entered, str) and not entered:
        raise ValueError("an empty project ID")
    token = _current.set(entered)
    try:
        yield
    finally:
        _current.reset(token)


def project(entered: str) -> contextlib.AbstractContextManager[None]:
    """Run the body for one project."""
    return scope(entered)


def all_projects() -> contextlib.AbstractContextManager[None]:
    """Run the body across every project: for maintenance that then enters each object's
    project before it works on that object."""
    return scope(ALL_PROJECTS)
