"""Whether this machine runs code_interpreter's sandbox, for the tests that need one.

Without one (no bubblewrap, user namespaces off, `.sandbox` not built) those tests skip,
naming the reason, unless `COMPAT_TEST_REQUIRE_SANDBOX=1` (CI), where they fail.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from compat_core.sandbox.base import SandboxUnavailable
from compat_core.sandbox.bubblewrap import BubblewrapSandbox


def require_sandbox(sandbox: BubblewrapSandbox) -> None:
    """Skip (or, when required, fail) the test unless `sandbox` can run here."""
    try:
        sandbox.check()
    except SandboxUnavailable as exc:
        if os.environ.get("COMPAT_TEST_REQUIRE_SANDBOX") == "1":
            pytest.fail(f"the sandbox is required (COMPAT_TEST_REQUIRE_SANDBOX=1): {exc}")
        pytest.skip(f"no sandbox on this machine: {exc}")


@contextmanager
def sessions_root() -> Iterator[Path]:
    """A directory for sessions' data, removed afterwards. Not under pytest's tmp_path: when
    the tests run as root, sessions run as unprivileged uids, which cannot pass through
    pytest's private (0700) directories."""
    root = Path(tempfile.mkdtemp(prefix="sandbox-test-"))
    root.chmod(0o711)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
