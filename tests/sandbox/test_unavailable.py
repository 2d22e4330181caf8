"""A machine that cannot run the sandbox says so, naming the fix, and runs nothing."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from compat_core.sandbox.base import Limits, SandboxUnavailable
from compat_core.sandbox.bubblewrap import RUNTIME_PREFIX, BubblewrapSandbox

from .conftest import GRACE, TEST_UIDS


def test_missing_bubblewrap_names_the_package(tmp_path: Path) -> None:
    sandbox = BubblewrapSandbox(bwrap=str(tmp_path / "no-bwrap-here"))
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        sandbox.check()


def test_missing_environment_names_the_make_target(tmp_path: Path) -> None:
    sandbox = BubblewrapSandbox(environment=tmp_path / "not-built")
    with pytest.raises(SandboxUnavailable, match="make sandbox-env"):
        sandbox.check()


def test_user_namespaces_refused_names_the_setting(
    sandbox: BubblewrapSandbox, data_root: Path
) -> None:
    # A bwrap that fails as bubblewrap does where user namespaces are off (where sessions'
    # uids can run it).
    fake = data_root / "bwrap"
    fake.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace, likely because "
        "the kernel does not allow non-privileged user namespaces.' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    refused = BubblewrapSandbox(sandbox.environment.root, bwrap=str(fake))
    with pytest.raises(SandboxUnavailable, match="user namespaces"):
        refused.check()


async def test_a_session_failing_to_start_says_why(
    sandbox: BubblewrapSandbox, data_root: Path
) -> None:
    fake = data_root / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: something broke' >&2\nexit 1\n")
    fake.chmod(0o755)
    broken = BubblewrapSandbox(sandbox.environment.root, bwrap=str(fake))
    (data_root / "data").mkdir()
    with pytest.raises(SandboxUnavailable, match="something broke"):
        await broken.open(data_root / "data", Limits())


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs sessions as other uids")
async def test_a_data_dir_other_uids_cannot_reach_names_the_fix(
    sandbox: BubblewrapSandbox, tmp_path: Path
) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    (closed / "data").mkdir()
    with pytest.raises(SandboxUnavailable, match="chmod o\\+x"):
        await sandbox.open(closed / "data", Limits())


async def test_runtime_directories_of_dead_servers_are_removed(
    sandbox: BubblewrapSandbox, data_root: Path
) -> None:
    """A server killed without closing its sessions leaves their sockets' directories; the
    next one removes them (but not those of servers still running)."""
    dead = await asyncio.create_subprocess_exec("true")
    await dead.wait()
    left = data_root / f"{RUNTIME_PREFIX}{dead.pid}"
    (left / "sbx-old").mkdir(parents=True)
    alive = data_root / f"{RUNTIME_PREFIX}1"
    alive.mkdir()
    fresh = BubblewrapSandbox(
        sandbox.environment.root, runtime_root=data_root, interrupt_grace=GRACE, uids=TEST_UIDS
    )
    (data_root / "data").mkdir()
    session = await fresh.open(data_root / "data", Limits())
    try:
        assert (await session.execute("1 + 1")).logs == "2\n"
        assert not left.exists()
        assert alive.exists()
        assert (data_root / f"{RUNTIME_PREFIX}{os.getpid()}").is_dir()
    finally:
        await session.close()
    assert list((data_root / f"{RUNTIME_PREFIX}{os.getpid()}").iterdir()) == []
