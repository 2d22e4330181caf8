"""What the engine asks of a sandbox: somewhere to run a model's Python, stateful per session,
that cannot reach the host.

code_interpreter (`compat_core.engine.code_interpreter`) knows only this module. The sandbox
that implements it (bubblewrap today; gVisor or a remote service could replace it) decides how
code is isolated and limited; the engine decides which session a call uses and what becomes of
its outputs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

MNT_DATA = "/mnt/data"
"""Where a session's files are, as its code sees them (OpenAI's path)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What one session may use. A call that passes `call_seconds` or writes more than
    `output_bytes` of output is stopped; the others are enforced by the kernel of the host on
    everything the session starts."""

    call_seconds: float = 60.0
    memory_bytes: int = 2 * 1024**3
    processes: int = 64
    file_bytes: int = 256 * 1024**2
    output_bytes: int = 1024**2


@dataclass(slots=True)
class Execution:
    """What one call produced, in the order the code produced it."""

    # stdout, stderr, the value of the last expression and, when the code raised, the
    # traceback (without terminal colours): what OpenAI shows as the call's `logs` output.
    logs: str = ""
    # Each image the code showed (a matplotlib figure, `display(Image(...))`), as PNG bytes.
    images: list[bytes] = field(default_factory=list)
    # The code raised (its traceback is in `logs`).
    error: bool = False
    # Why the sandbox stopped the call (the time or output limit, the session's death), said
    # to the model in words; also at the end of `logs`. None when the code ran to its end.
    stopped: str | None = None
    # The session's state is gone: it died or was killed during this call, and the next call
    # starts a new one (its files under /mnt/data stay).
    lost_state: bool = False


class SandboxUnavailable(Exception):
    """This machine cannot run a sandbox (the tool is missing, user namespaces are off, the
    sandbox's Python environment is not installed): the message says which and how to fix it."""


class Session(ABC):
    """One stateful interpreter, with its own `/mnt/data` (`data_dir` on the host)."""

    data_dir: Path

    @abstractmethod
    async def execute(self, code: str) -> Execution:
        """Run `code` in the session's interpreter. Cancelling the call kills the session and
        everything it started (the session is then closed)."""

    @abstractmethod
    async def close(self) -> None:
        """Kill the interpreter and every process it started; the files stay. Idempotent."""

    @property
    @abstractmethod
    def alive(self) -> bool:
        """Whether the next `execute` finds the state earlier calls left."""


class Sandbox(ABC):
    """Makes sessions."""

    @abstractmethod
    def check(self) -> None:
        """Raise `SandboxUnavailable` if this machine cannot run sessions."""

    @abstractmethod
    async def open(self, data_dir: Path, limits: Limits) -> Session:
        """Start a session whose `/mnt/data` is `data_dir` (which exists)."""
