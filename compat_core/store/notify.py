"""Notifications between cores that share a PostgreSQL database (LISTEN on a connection of its own).

Pooled connections cannot listen: a notification reaches only the session that listens, and a
pooled session is handed to whichever transaction comes next. So each core keeps one extra
asyncpg connection that does nothing else, and opens it again whenever it drops. Notices sent
while it is down are lost; every user of them also polls the database, so a lost notice costs
latency, never correctness.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Sequence

import asyncpg
from sqlalchemy.engine import URL

from compat_core.tasks import cancel_and_wait

log = logging.getLogger(__name__)

RECONNECT_SECONDS = 1.0
CONNECT_TIMEOUT_SECONDS = 10.0
APPLICATION_NAME = "assistants-compat-listener"


class PostgresListener:
    """Delivers `(channel, payload)` of the notifications on some channels to a callback."""

    def __init__(self, url: URL) -> None:
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._task: asyncio.Task[None] | None = None

    async def start(self, channels: Sequence[str], on_notice: Callable[[str, str], None]) -> None:
        """Listen from now on; returns once the first connection listens (or failed to)."""
        if self._task is not None:
            raise RuntimeError("already listening")
        ready = asyncio.Event()
        self._task = asyncio.create_task(
            self._listen_forever(channels, on_notice, ready), name="postgres-listener"
        )
        await ready.wait()

    async def close(self) -> None:
        if self._task is None:
            return
        await cancel_and_wait(self._task)
        self._task = None

    async def _listen_forever(
        self,
        channels: Sequence[str],
        on_notice: Callable[[str, str], None],
        ready: asyncio.Event,
    ) -> None:
        def deliver(_conn: object, _pid: int, channel: str, payload: str) -> None:
            on_notice(channel, payload)

        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self._dsn,
                    timeout=CONNECT_TIMEOUT_SECONDS,
                    server_settings={"application_name": APPLICATION_NAME},
                )
                dropped = asyncio.Event()
                conn.add_termination_listener(functools.partial(_set, dropped))
                for channel in channels:
                    await conn.add_listener(channel, deliver)
                ready.set()
                await dropped.wait()
                log.warning("the notification connection to PostgreSQL dropped; reconnecting")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("cannot listen for notifications on PostgreSQL: %s", exc)
            finally:
                ready.set()
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=1.0)
            await asyncio.sleep(RECONNECT_SECONDS)


def _set(event: asyncio.Event, _conn: object) -> None:
    event.set()
