"""The start-up heap is frozen: full collections skip it, and garbage made later is freed."""

from __future__ import annotations

import subprocess
import sys

# In a process of its own: freezing the test runner's heap would outlive the test.
PROBE = """
import gc
import weakref

import compat_core.server  # what a core imports: grpc, SQLAlchemy, the openai SDK
from compat_core.heap import freeze_startup_heap

class Node:
    pass

freeze_startup_heap()
frozen = gc.get_freeze_count()
assert frozen > 50_000, frozen

# A cycle made after start-up is still found and freed by a full collection.
after = Node()
after.self = after
gone = weakref.ref(after)
del after
gc.collect()
assert gone() is None

# A full collection no longer visits the frozen objects.
assert len(gc.get_objects(2)) < frozen // 10, len(gc.get_objects(2))
print("ok", frozen)
"""


def test_start_up_objects_are_frozen_and_later_garbage_is_collected() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok ")
