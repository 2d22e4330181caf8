"""`SqlStore`'s side of the cores that share one database: which core executes which run
(`sql_claims`), cancel notices and the stored event log (`sql_events`), notices relayed by the
`PostgresListener`. Without a listener (SQLite) the store is not `shared`: a cancel notifies
nobody and `listen` does nothing.

Claims, renewals, releases and the purge are maintenance across projects
(`ScopedRunner.write_across`); a run's stored events are read once the run was found in the
caller's project (events carry no project of their own)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from compat_core.store import sql_claims, sql_events
from compat_core.store.base import LeaseRenewal, StoredEvent
from compat_core.store.base_coordination import Coordination
from compat_core.store.sql_store_base import SqlStoreBase
from compat_core.v1 import runs_pb2


class SqlCoordination(SqlStoreBase, Coordination):
    """The coordination part of `SqlStore`."""

    def pending_transactions(self) -> int:
        return self._db.pending()

    @property
    def shared(self) -> bool:
        return self._listener is not None

    async def claim_runs(
        self, owner: str, expired_before_ms: int, expires_at_ms: int, limit: int
    ) -> list[runs_pb2.Run]:
        return await self._db.write_across(
            lambda conn: sql_claims.claim(conn, owner, expired_before_ms, expires_at_ms, limit)
        )

    async def renew_leases(self, owner: str, expires_at_ms: int) -> LeaseRenewal:
        return await self._db.write_across(
            lambda conn: sql_claims.renew(conn, owner, expires_at_ms)
        )

    async def release_leases(self, owner: str) -> None:
        await self._db.write_across(lambda conn: sql_claims.release(conn, owner))

    async def request_cancel(self, run_id: str) -> None:
        if self._listener is not None:
            await self._db.write(
                lambda conn: sql_events.notify(conn, sql_events.CANCEL_CHANNEL, [run_id])
            )

    # The stored event log

    async def append_events(self, events: Sequence[StoredEvent]) -> None:
        await self._db.write(lambda conn: sql_events.append(conn, events))

    async def read_events(self, run_id: str, after: int, limit: int) -> list[runs_pb2.RunEvent]:
        return await self._db.read(lambda conn: sql_events.read(conn, run_id, after, limit))

    async def last_event_sequence(self, run_id: str) -> int:
        return await self._lookup(lambda conn: sql_events.last_sequence(conn, run_id))

    async def purge_events(self, created_before: int) -> int:
        return await self._db.write_across(lambda conn: sql_events.purge(conn, created_before))

    async def listen(self, on_notice: Callable[[str, str], None]) -> None:
        if self._listener is None:
            return
        watchers = self._revocation_watchers

        def deliver(channel: str, payload: str) -> None:
            # Revoked keys go to the key rings (`on_key_revoked`), the rest to the caller.
            if channel == sql_events.KEYS_CHANNEL:
                for watcher in watchers:
                    watcher(payload)
            else:
                on_notice(channel, payload)

        channels = (sql_events.EVENTS_CHANNEL, sql_events.CANCEL_CHANNEL, sql_events.KEYS_CHANNEL)
        await self._listener.start(channels, deliver)
