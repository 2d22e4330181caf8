"""A project's usage, as the admin surface reads it: tokens in and out and runs by UTC day and
model (stored as each run ends, `Store.usage_by_day`), and what it stores now.

`completions_page` shapes the days like OpenAI's usage API (`/v1/organization/usage/
completions` grouped by project and model, one-day buckets), so the admin routes can answer
with it as it is.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from compat_core.store.base import DailyUsage, Store

DAY_SECONDS = 86_400


@dataclass(frozen=True)
class ProjectUsage:
    project_id: str
    days: list[DailyUsage]
    files_bytes: int
    vector_stores_bytes: int


def _day(unix_seconds: int) -> str:
    return datetime.datetime.fromtimestamp(unix_seconds, datetime.UTC).strftime("%Y-%m-%d")


def _day_start(day: str) -> int:
    parsed = datetime.datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=datetime.UTC)
    return int(parsed.timestamp())


async def project_usage(
    store: Store, project_id: str, start_time: int, end_time: int
) -> ProjectUsage:
    """The usage of the UTC days from the one of `start_time` to the one before `end_time`
    (unix seconds, as OpenAI's usage API takes them), and the bytes stored now."""
    last = _day(max(start_time, end_time - 1))
    days = await store.usage_by_day(project_id, _day(start_time), last)
    files_bytes, vector_bytes = await store.storage_bytes(project_id)
    return ProjectUsage(project_id, days, files_bytes, vector_bytes)


def completions_page(usage: ProjectUsage) -> dict[str, Any]:
    """The days as OpenAI's completions usage answers them (one bucket a day with usage)."""
    buckets: dict[str, list[dict[str, Any]]] = {}
    for day in usage.days:
        buckets.setdefault(day.day, []).append(
            {
                "object": "organization.usage.completions.result",
                "input_tokens": day.input_tokens,
                "output_tokens": day.output_tokens,
                "num_model_requests": day.runs,
                "project_id": usage.project_id,
                "model": day.model,
            }
        )
    return {
        "object": "page",
        "data": [
            {
                "object": "bucket",
                "start_time": _day_start(day),
                "end_time": _day_start(day) + DAY_SECONDS,
                "results": results,
            }
            for day, results in buckets.items()
        ],
        "has_more": False,
        "next_page": None,
    }
