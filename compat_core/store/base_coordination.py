"""What the cores that share a database coordinate through `Store`: which core executes
which run, and the stored event log they pass run events on through."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

from compat_core.store.base_types import LeaseRenewal, StoredEvent
from compat_core.v1 import runs_pb2


class Coordination(ABC):
    """Which core executes which run, and the stored event log."""

    @abstractmethod
    def pending_transactions(self) -> int:
        """Transactions submitted and not yet taken up or done: how far the database lags
        behind the core (a gauge of the metrics, read when scraped)."""

    @property
    @abstractmethod
    def shared(self) -> bool:
        """Whether other core processes may share this database (PostgreSQL).

        Cores that share it keep a stored event log and notify each other; a core alone on
        its database (SQLite) needs neither.
        """

    @abstractmethod
    async def claim_runs(
        self, owner: str, expired_before_ms: int, expires_at_ms: int, limit: int
    ) -> list[runs_pb2.Run]:
        """Take up to `limit` runs whose lease ran out before `expired_before_ms`, leasing them
        until `expires_at_ms`; their current state."""

    @abstractmethod
    async def renew_leases(self, owner: str, expires_at_ms: int) -> LeaseRenewal:
        """Extend every lease `owner` holds."""

    @abstractmethod
    async def release_leases(self, owner: str) -> None:
        """Let any core claim `owner`'s runs at once (a graceful stop)."""

    @abstractmethod
    async def request_cancel(self, run_id: str) -> None:
        """Tell the core executing the run, wherever it is, that a cancel was stored."""

    # The stored event log (only used when `shared`)

    @abstractmethod
    async def append_events(self, events: Sequence[StoredEvent]) -> None:
        """Append events to their runs' logs and wake the cores watching them."""

    @abstractmethod
    async def read_events(self, run_id: str, after: int, limit: int) -> list[runs_pb2.RunEvent]:
        """A run's stored events after sequence `after`, oldest first."""

    @abstractmethod
    async def last_event_sequence(self, run_id: str) -> int:
        """The sequence of a run's newest stored event, 0 if none."""

    @abstractmethod
    async def purge_events(self, created_before: int) -> int:
        """Drop stored events older than `created_before` (unix seconds); how many went."""

    @abstractmethod
    async def listen(self, on_notice: Callable[[str, str], None]) -> None:
        """Call `on_notice(channel, payload)` for every notification other cores send.

        Returns once listening; a no-op on a database no other core shares. Delivery is best
        effort (a dropped connection loses notices until it is back): callers also poll.
        """
