"""A project's usage of models, as the admin surface reads it: tokens in and out and runs by
UTC day and model (stored as each run ends, `Store.usage_by_day`). What it stores is
`compat_core.storage_usage`.

`completions_usage` answers `AdminService.GetCompletionsUsage` (OpenAI's `/v1/organization/
usage/completions`): the days of the projects asked for, in one-day buckets, summed or grouped
by project and model.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Sequence

from compat_core import errors
from compat_core.store.base import Store
from compat_core.v1 import admin_pb2

DAY_SECONDS = 86_400


def _day(unix_seconds: int) -> str:
    return datetime.datetime.fromtimestamp(unix_seconds, datetime.UTC).strftime("%Y-%m-%d")


def _day_start(day: str) -> int:
    parsed = datetime.datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=datetime.UTC)
    return int(parsed.timestamp())


BUCKET_WIDTH = "1d"
DEFAULT_BUCKETS = 7
MAX_BUCKETS = 31
GROUPS = ("project_id", "model")
# The projects read at a time when usage of every project is asked for.
_PROJECTS_BATCH = 100


UsageRequest = admin_pb2.GetCompletionsUsageRequest | admin_pb2.GetStorageUsageRequest


def require_start(request: UsageRequest) -> None:
    """Every usage route requires `start_time`, as OpenAI's do."""
    if not request.HasField("start_time"):
        raise errors.invalid(
            "Missing required parameter: 'start_time'.", "start_time", "missing_required_parameter"
        )


def check_groups(request: UsageRequest, groups: Sequence[str]) -> None:
    """Each of the request's `group_by` must be one of `groups`."""
    for group in request.group_by:
        if group not in groups:
            expected = " or ".join(f"'{name}'" for name in groups)
            raise errors.invalid(
                f"Invalid 'group_by': expected {expected}, but got '{errors.shown(group)}'.",
                "group_by",
                "invalid_value",
            )


def range_end(request: UsageRequest, now: int) -> int:
    """Where the request's range ends (exclusive): its `end_time`, or else just past `now`,
    the current second included; after its `start_time`."""
    end = request.end_time if request.HasField("end_time") else now + 1
    if not 0 <= request.start_time < end:
        raise errors.invalid(
            "Invalid 'start_time': expected unix seconds before 'end_time'.", "start_time"
        )
    return end


def _usage_query(request: admin_pb2.GetCompletionsUsageRequest) -> tuple[int, int, int]:
    """The first bucket's start, the range's end and the number of buckets of the page."""
    require_start(request)
    if request.bucket_width not in ("", BUCKET_WIDTH):
        raise errors.invalid(
            f"Invalid 'bucket_width': this server keeps usage by day, so only '{BUCKET_WIDTH}' "
            f"is supported, but got '{errors.shown(request.bucket_width)}'.",
            "bucket_width",
            "invalid_value",
        )
    check_groups(request, GROUPS)
    buckets = request.limit if request.HasField("limit") else DEFAULT_BUCKETS
    if not 1 <= buckets <= MAX_BUCKETS:
        raise errors.invalid(
            f"Invalid 'limit': expected a value between 1 and {MAX_BUCKETS}, but got {buckets}.",
            "limit",
            "invalid_value",
        )
    end = range_end(request, int(time.time()))
    first = request.start_time - request.start_time % DAY_SECONDS
    if request.page:
        try:
            first = _day_start(request.page)
        except ValueError:
            first = -1
        if not request.start_time - DAY_SECONDS < first < end:
            raise errors.invalid(
                f"Invalid 'page': '{errors.shown(request.page)}' is no page of this range.", "page"
            )
    return first, end, buckets


async def _projects(store: Store, wanted: Sequence[str]) -> list[str]:
    if wanted:
        return list(dict.fromkeys(wanted))
    found: list[str] = []
    after = None
    while True:
        batch = await store.list_projects(after, _PROJECTS_BATCH, include_archived=True)
        found.extend(project.id for project in batch)
        if len(batch) < _PROJECTS_BATCH:
            return found
        after = batch[-1]


async def completions_usage(
    store: Store, request: admin_pb2.GetCompletionsUsageRequest
) -> admin_pb2.GetCompletionsUsageResponse:
    """OpenAI's completions usage in one-day buckets: every day of the page has its bucket,
    with one result per group that used anything (one result in all without `group_by`)."""
    first, end, buckets = _usage_query(request)
    starts = list(range(first, end, DAY_SECONDS))
    page, rest = starts[:buckets], starts[buckets:]
    by_project = "project_id" in request.group_by
    by_model = "model" in request.group_by
    models = set(request.models)
    totals: dict[tuple[str, str, str], list[int]] = {}
    for project_id in await _projects(store, request.project_ids):
        days = await store.usage_by_day(project_id, _day(page[0]), _day(page[-1]))
        for day in days:
            if models and day.model not in models:
                continue
            key = (day.day, project_id if by_project else "", day.model if by_model else "")
            total = totals.setdefault(key, [0, 0, 0])
            total[0] += day.input_tokens
            total[1] += day.output_tokens
            total[2] += day.runs
    out = admin_pb2.GetCompletionsUsageResponse(has_more=bool(rest))
    if rest:
        out.next_page = _day(rest[0])
    for start in page:
        bucket = out.data.add(start_time=start, end_time=start + DAY_SECONDS)
        name = _day(start)
        for (when, project_id, model), (inputs, outputs, runs) in sorted(totals.items()):
            if when != name:
                continue
            result = bucket.results.add(
                input_tokens=inputs, output_tokens=outputs, num_model_requests=runs
            )
            if by_project:
                result.project_id = project_id
            if by_model:
                result.model = model
    return out
