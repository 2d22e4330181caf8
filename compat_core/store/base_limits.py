"""Per-project rate limits, the shared counters that enforce them, and usage, in `Store`.

Like projects and keys these are not a tenant's objects: the rate limiter reads every
project's limits at once, and the admin surface reads a project it names, so each method
names its project and needs no scope (`project_limits`, `rate_windows` and `usage_daily` are
not tenant tables), nor do the rows of the streams each core has open (`stream_slots`). The
limit of a project's concurrent runs is checked by `create_run`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ProjectLimits:
    """A project's own limits: None takes the server's default, 0 is unlimited."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    concurrent_runs: int | None = None
    concurrent_streams: int | None = None


@dataclass(frozen=True)
class StoredBytes:
    """What a project stores now: the bytes of its files, and of its vector stores' files
    (their `usage_bytes`)."""

    files: int
    vector_stores: int


@dataclass(frozen=True)
class DailyUsage:
    """What a project's runs of one model used on one UTC day (`YYYY-MM-DD`)."""

    day: str
    model: str
    input_tokens: int
    output_tokens: int
    runs: int


class LimitsAndUsage(ABC):
    """Project limits, rate windows and usage."""

    @abstractmethod
    async def set_project_limits(self, project_id: str, limits: ProjectLimits) -> None:
        """Replace a project's own limits (every field: None ones go back to the default);
        the cores apply them within `ratelimit.REFRESH_SECONDS`."""

    @abstractmethod
    async def get_project_limits(self, project_id: str) -> ProjectLimits | None:
        """A project's own limits; None if it never had any set."""

    @abstractmethod
    async def all_project_limits(self) -> dict[str, ProjectLimits]:
        """Every project's own limits, by project ID (what each core keeps in memory)."""

    @abstractmethod
    async def take_from_window(
        self, project_id: str, kind: str, window_start: int, amount: int, cap: int | None
    ) -> tuple[int, int]:
        """Add up to `amount` to what the project spent of the `kind` window starting at
        `window_start`, never past `cap` (None: no cap). Returns what was added and the
        window's total after it; atomic across the cores sharing the database."""

    @abstractmethod
    async def window_used(self, project_id: str, kind: str, window_start: int) -> int:
        """What the project spent of a window so far (0 for a window never taken from)."""

    @abstractmethod
    async def purge_windows(self, before: int) -> None:
        """Forget the windows that started before `before` (unix seconds)."""

    @abstractmethod
    async def take_stream_slot(
        self,
        project_id: str,
        core_id: str,
        own: int,
        limit: int,
        now_ms: int,
        expires_at_ms: int,
    ) -> tuple[bool, int]:
        """Count one more open stream of the project on `core_id`, which has `own` open, if
        the streams of the other cores (their rows that expire after `now_ms`) and `own`
        leave room under `limit`: the core's row then says `own + 1` until `expires_at_ms`.
        Returns whether it did, and what the other cores have open. Atomic across the cores
        sharing the database: two cores cannot both take the last slot."""

    @abstractmethod
    async def set_stream_slot(
        self, project_id: str, core_id: str, open_streams: int, expires_at_ms: int
    ) -> None:
        """Say how many streams of the project `core_id` has open, until `expires_at_ms`
        (0 deletes its row)."""

    @abstractmethod
    async def release_stream_slots(self, core_id: str) -> None:
        """Delete every row of `core_id` (it stops)."""

    @abstractmethod
    async def purge_stream_slots(self, before_ms: int) -> None:
        """Delete the rows that expired before `before_ms` (of cores that died)."""

    @abstractmethod
    async def usage_by_day(
        self, project_id: str, first_day: str, last_day: str
    ) -> list[DailyUsage]:
        """A project's usage from `first_day` to `last_day` (both included, `YYYY-MM-DD`),
        by day then model."""

    @abstractmethod
    async def storage_by_project(
        self, project_ids: Sequence[str] | None = None
    ) -> dict[str, StoredBytes]:
        """What each project stores now (only those of `project_ids`, unless None), in two
        aggregates over indexes whatever the number of projects; a project that stores
        nothing is left out."""
