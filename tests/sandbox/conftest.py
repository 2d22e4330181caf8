"""Fixtures of the sandbox's own tests.

The sandbox touches no store: its tests run in the SQLite pass only (not again in the
PostgreSQL pass, `COMPAT_TEST_POSTGRES_URL` set).

- `sandbox`: the bubblewrap sandbox on the checkout's `.sandbox` environment, checked once.
  Where this machine cannot run it (no bwrap, user namespaces off, the environment not built)
  the tests skip, naming the reason, unless `COMPAT_TEST_REQUIRE_SANDBOX=1` (CI), where they
  fail.
- `data_root`: a directory for sessions' data dirs, removed at teardown. Not under pytest's
  tmp_path: when the tests run as root, sessions run as unprivileged uids, which cannot pass
  through pytest's private (0700) directories.
- `open_session(limits=SMALL, data_dir=None)`: a session on its own data directory (under
  `data_root` unless given), closed at teardown.
- `SMALL`, `GRACE`: limits and an interrupt grace small enough that every test that hits one
  is fast.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from harness.sandbox import require_sandbox, sessions_root

from compat_core.sandbox.base import Limits, Session
from compat_core.sandbox.bubblewrap import BubblewrapSandbox

SMALL = Limits(
    call_seconds=5.0,
    memory_bytes=1024**3,
    processes=48,
    file_bytes=16 * 1024**2,
    output_bytes=64 * 1024,
)

# How long an interrupted call has before its session is killed: short, so tests are fast.
GRACE = 1.0

# When root, sessions' host uids: a range of this test run's own, apart from the default one
# (servers on this machine use that), so that "no process of the session's uid is left" is
# about this run's sessions alone. The uids are locked per machine either way.
_FIRST_UID = 1_810_000_000 + os.getpid() % 10_000 * 100
TEST_UIDS = range(_FIRST_UID, _FIRST_UID + 100)

OpenSession = Callable[..., Awaitable[Session]]


HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not os.environ.get("COMPAT_TEST_POSTGRES_URL"):
        return
    skip = pytest.mark.skip(reason="the sandbox uses no store: SQLite pass only")
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def sandbox() -> BubblewrapSandbox:
    made = BubblewrapSandbox(interrupt_grace=GRACE, uids=TEST_UIDS)
    require_sandbox(made)
    return made


@pytest.fixture
def data_root() -> Iterator[Path]:
    with sessions_root() as root:
        yield root


@pytest_asyncio.fixture(loop_scope="function")
async def open_session(sandbox: BubblewrapSandbox, data_root: Path) -> AsyncIterator[OpenSession]:
    opened: list[Session] = []
    names = itertools.count()

    async def open_one(limits: Limits = SMALL, data_dir: Path | None = None) -> Session:
        if data_dir is None:
            data_dir = data_root / f"session-{next(names)}"
        data_dir.mkdir(parents=True, exist_ok=True)
        session = await sandbox.open(data_dir, limits)
        opened.append(session)
        return session

    yield open_one
    for session in opened:
        await session.close()
