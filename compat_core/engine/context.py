"""What every run execution on a core shares, and how a core names itself on leases."""

from __future__ import annotations

import os
import secrets
import socket
import time
from dataclasses import dataclass, field

from compat_core.engine.events import RunEventHub
from compat_core.engine.hosted import HostedTools
from compat_core.models import ModelRegistry
from compat_core.providers.base import ChatProvider
from compat_core.store.base import Store
from compat_core.tools import Tool


def new_replica_id() -> str:
    """A name no other live core has: host, process and a random part (PIDs repeat)."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass
class EngineContext:
    """What every execution needs; one per core process."""

    store: Store
    hub: RunEventHub
    models: ModelRegistry
    providers: dict[str, ChatProvider]
    tools: dict[str, Tool]
    hosted: HostedTools
    requires_action_timeout: int = 600
    # This core's name on the leases of the runs it executes; unique among live cores.
    replica_id: str = field(default_factory=new_replica_id)
    # How long a lease lasts unless renewed: how soon another core resumes the runs of one
    # that died.
    lease_seconds: float = 10.0

    def now(self) -> int:
        return int(time.time())
