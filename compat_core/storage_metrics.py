"""The per-project storage gauge: the bytes each project stores, refreshed in the background.

A scrape reads the figures of the last refresh and never touches the database: scrapers poll
every few seconds, from several places, and what a project stores changes slowly. A refresh
(`Store.storage_by_project`, every `COMPAT_STORAGE_METRICS_SECONDS`) is two aggregates over
indexes, whose cost grows with the files stored, not with scrapes; its duration is exported
too, so an operator sees what it costs on their database. Every core sharing a database
reports the same figures: aggregate them across cores with `max`, not `sum`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Final

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from compat_core.store.base import Store, StoredBytes
from compat_core.tasks import cancel_and_wait, every

STORAGE_BYTES: Final = "compat_project_storage_bytes"
REFRESH_SECONDS: Final = "compat_project_storage_refresh_seconds"


def _bounded(stored: dict[str, StoredBytes], most: int, other: str) -> dict[str, StoredBytes]:
    """At most `most` projects by name (the first in ID order), the rest summed as `other`,
    so that the scrape stays bounded however many projects there are."""
    if len(stored) <= most:
        return stored
    names = sorted(stored)
    kept = {name: stored[name] for name in names[:most]}
    rest = [stored[name] for name in names[most:]]
    kept[other] = StoredBytes(sum(r.files for r in rest), sum(r.vector_stores for r in rest))
    return kept


class StorageGauge(Collector):
    """Collects `compat_project_storage_bytes` from the last refresh."""

    def __init__(
        self,
        store: Store,
        interval: float,
        registry: CollectorRegistry,
        max_projects: int,
        other: str,
    ) -> None:
        self._store = store
        self._interval = interval
        self._registry = registry
        self._max_projects = max_projects
        self._other = other
        # Replaced whole by each refresh: a scrape on another thread reads one snapshot.
        self._stored: dict[str, StoredBytes] = {}
        self._took: float | None = None
        self._task: asyncio.Task[None] | None = None
        registry.register(self)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._families()[0]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stored, took = self._stored, self._took
        gauge, duration = self._families()
        for project, found in _bounded(stored, self._max_projects, self._other).items():
            gauge.add_metric([project, "files"], found.files)
            gauge.add_metric([project, "vector_stores"], found.vector_stores)
        yield gauge
        if took is not None:
            duration.add_metric([], took)
            yield duration

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                STORAGE_BYTES,
                "Bytes a project stores, by kind (files: its uploaded files; vector_stores: the "
                "usage_bytes of its vector stores' files), as of the last refresh. The same on "
                "every core sharing a database.",
                labels=("project", "kind"),
            ),
            GaugeMetricFamily(
                REFRESH_SECONDS,
                "How long the last refresh of compat_project_storage_bytes took.",
            ),
        )

    async def start(self) -> None:
        # The last figures stay while a refresh fails; the next one tries again.
        refreshing = every(
            self._interval, self.refresh, "refreshing the storage metrics failed", at_once=True
        )
        self._task = asyncio.create_task(refreshing, name="storage-metrics")

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        self._registry.unregister(self)

    async def refresh(self) -> None:
        started = time.perf_counter()
        stored = await self._store.storage_by_project()
        self._stored, self._took = stored, time.perf_counter() - started
