"""Projects and their API keys in `Store`, and the project of objects that maintenance finds.

These are not a tenant's objects: a key is looked up before any project is known (it says
which one), so these methods need no scope. `project_of_*` answer across projects, for work
that claimed an object in the all-projects scope and must enter its project to work on it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    created_at: int
    archived_at: int | None = None


@dataclass(frozen=True)
class ApiKey:
    """A project's key as stored: never the key itself, only its hash (`compat_core.keys`)."""

    id: str
    project_id: str
    name: str
    redacted_value: str
    created_at: int
    last_used_at: int | None = None


class Projects(ABC):
    """Projects, their keys, and the projects of objects."""

    @abstractmethod
    async def create_project(self, project: Project) -> None:
        """Store a new project (IntegrityError if its ID is taken)."""

    @abstractmethod
    async def get_project(self, project_id: str) -> Project | None: ...

    @abstractmethod
    async def projects_named(self, name: str) -> list[Project]:
        """The projects of that name, oldest first (names need not be unique)."""

    @abstractmethod
    async def list_projects(
        self, after: Project | None, limit: int, include_archived: bool
    ) -> list[Project]:
        """Up to `limit` projects, oldest first, those after `after` (in that order) only."""

    @abstractmethod
    async def rename_project(self, project_id: str, name: str) -> Project | None:
        """Give a project a new name; None if there is no such project."""

    @abstractmethod
    async def archive_project(self, project_id: str, archived_at: int) -> list[str] | None:
        """Archive a project (its keys stop opening it, its objects stay): the IDs of its
        keys, which every core sharing the database is told to forget as revoked ones
        (`on_key_revoked`); None if there is no such project. Archiving an archived project
        changes nothing and answers the same."""

    @abstractmethod
    async def create_api_key(self, key: ApiKey, key_hash: str) -> None:
        """Store a key of an existing project by the hash of its value."""

    @abstractmethod
    async def api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        """The key with that hash, if its project exists and is not archived."""

    @abstractmethod
    async def any_api_keys(self) -> bool:
        """Whether any key is stored (keys are then required, see `compat_core.keyring`)."""

    @abstractmethod
    async def list_api_keys(self, project_id: str) -> list[ApiKey]:
        """The keys of a project, oldest first."""

    @abstractmethod
    async def get_api_key(self, key_id: str) -> ApiKey | None: ...

    @abstractmethod
    async def delete_api_key(self, key_id: str) -> bool:
        """Delete a key; False if there was none. Callers revoke through `KeyRing.revoke`,
        which also forgets the key in the cores' caches."""

    @abstractmethod
    def on_key_revoked(self, watcher: Callable[[str], None]) -> None:
        """Call `watcher(key_id)` for every key deleted by any core sharing the database, once
        `listen` (`Coordination`) runs; best effort (a dropped listener loses notices), and
        nothing on a database no other core shares."""

    @abstractmethod
    async def mark_api_keys_used(self, used: Mapping[str, int]) -> None:
        """Set `last_used_at` (unix seconds) of the keys `used` names (by key ID)."""

    @abstractmethod
    async def project_of_run(self, run_id: str) -> str | None:
        """The project of a run, found across projects (a scope must be entered)."""

    @abstractmethod
    async def project_of_vector_store(self, vector_store_id: str) -> str | None:
        """The project of a vector store, found across projects (a scope must be entered)."""
