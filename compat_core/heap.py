"""The garbage collector in a long-lived server process.

Importing grpc, SQLAlchemy, pydantic and the `openai` SDK leaves some 165,000 objects that the
collector tracks (modules, classes, the SDK's models, compiled statements), and a full
collection visits every one of them: on a 2-core machine one took 80 ms, and it holds the GIL,
so every request and every stream of the process stops meanwhile. Under load a full
collection comes every few seconds. None of those objects ever becomes garbage, so once the
server has started they are moved out of the collector's sight (`gc.freeze`, as pre-forking
servers do before they fork); what requests allocate is collected as before.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Leave everything allocated so far out of every later collection.

    For a server process once it is serving: the command line calls it after start-up. A
    program that embeds the server may call it too, once its own start-up is done.
    """
    # What start-up left as garbage goes first: frozen, it would never be freed.
    gc.collect()
    gc.freeze()
