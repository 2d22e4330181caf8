"""Host uids for sessions (server as root): one per live session, across processes too."""

from __future__ import annotations

from pathlib import Path

import pytest

from compat_core.sandbox.base import SandboxUnavailable
from compat_core.sandbox.bubblewrap import HostUids


def test_a_uid_is_held_by_one_holder_at_a_time(tmp_path: Path) -> None:
    # Two holders stand for two server processes: the locks are on separate open files.
    first = HostUids(range(5000, 5002), tmp_path / "uids")
    second = HostUids(range(5000, 5002), tmp_path / "uids")
    assert first.take() == 5000
    assert second.take() == 5001
    with pytest.raises(SandboxUnavailable, match="in use"):
        second.take()
    first.give_back(5000)
    assert second.take() == 5000
    assert (tmp_path / "uids").stat().st_mode & 0o777 == 0o700
