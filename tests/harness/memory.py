"""How much memory a block of code held at most, measured with tracemalloc."""

from __future__ import annotations

import tracemalloc
from types import TracebackType


class AllocationPeak:
    """`with AllocationPeak() as peak: …`, then `peak.bytes`: the most memory that Python
    allocations made on any thread while the block ran held at one moment, beyond what was
    held when it began. Tracing slows allocation, so the block should be small.
    """

    def __init__(self) -> None:
        self.bytes = 0
        self._started = False
        self._baseline = 0

    def __enter__(self) -> AllocationPeak:
        # A session already tracing (`python -X tracemalloc`) keeps tracing afterwards.
        self._started = not tracemalloc.is_tracing()
        if self._started:
            tracemalloc.start()
        tracemalloc.reset_peak()
        self._baseline = tracemalloc.get_traced_memory()[0]
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.bytes = tracemalloc.get_traced_memory()[1] - self._baseline
        if self._started:
            tracemalloc.stop()
