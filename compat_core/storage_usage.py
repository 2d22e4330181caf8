"""What the projects store, in the buckets of OpenAI's usage API: `AdminService.
GetVectorStoresUsage` (OpenAI's `/v1/organization/usage/vector_stores`) and `GetFilesUsage`
(ours: OpenAI reports no usage of files).

No history of storage is kept, only what is stored now (`Store.storage_by_project`, two
aggregates over indexes). So the bucket that holds the moment of the call reports it and the
others have no results: an empty bucket means "not known", which reporting today's figure for
last week would hide. Tokens, which are stored by day, are `compat_core.usage`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from compat_core import errors, usage
from compat_core.store.base import Store, StoredBytes
from compat_core.v1 import admin_pb2


@dataclass(frozen=True)
class _Width:
    seconds: int
    default_buckets: int
    max_buckets: int


# OpenAI's widths and their bucket counts.
WIDTHS: Final = {
    "1m": _Width(60, 60, 1440),
    "1h": _Width(3600, 24, 168),
    "1d": _Width(86_400, 7, 31),
}
DEFAULT_WIDTH: Final = "1d"
GROUPS: Final = ("project_id",)

# Which bytes of a project a route reports.
Kind = Callable[[StoredBytes], int]


def files(stored: StoredBytes) -> int:
    return stored.files


def vector_stores(stored: StoredBytes) -> int:
    return stored.vector_stores


@dataclass(frozen=True)
class _Page:
    first: int
    width: int
    buckets: int
    has_more: bool
    # The range's end (exclusive).
    end: int


def _query(request: admin_pb2.GetStorageUsageRequest, now: int) -> _Page:
    usage.require_start(request)
    name = request.bucket_width or DEFAULT_WIDTH
    width = WIDTHS.get(name)
    if width is None:
        raise errors.invalid(
            f"Invalid 'bucket_width': expected '1m', '1h' or '1d', but got "
            f"'{errors.shown(request.bucket_width)}'.",
            "bucket_width",
            "invalid_value",
        )
    usage.check_groups(request, GROUPS)
    limit = request.limit if request.HasField("limit") else width.default_buckets
    if not 1 <= limit <= width.max_buckets:
        raise errors.invalid(
            f"Invalid 'limit': with bucket_width '{name}', expected a value between 1 and "
            f"{width.max_buckets}, but got {limit}.",
            "limit",
            "invalid_value",
        )
    end = usage.range_end(request, now)
    step = width.seconds
    first = request.start_time - request.start_time % step
    if request.page:
        page = request.page
        start = int(page) if page.isascii() and page.isdigit() and len(page) <= 12 else -1
        if start % step or not first <= start < end:
            raise errors.invalid(
                f"Invalid 'page': '{errors.shown(page)}' is no page of this range.", "page"
            )
        first = start
    total = -(-(end - first) // step)
    return _Page(first, step, min(total, limit), total > limit, end)


async def storage_usage(
    store: Store, request: admin_pb2.GetStorageUsageRequest, kind: Kind
) -> admin_pb2.GetStorageUsageResponse:
    """A page of buckets; only the one holding now (if the range does) has results."""
    now = int(time.time())
    page = _query(request, now)
    out = admin_pb2.GetStorageUsageResponse(has_more=page.has_more)
    if page.has_more:
        out.next_page = str(page.first + page.buckets * page.width)
    current = request.start_time <= now < page.end
    for index in range(page.buckets):
        start = page.first + index * page.width
        bucket = out.data.add(start_time=start, end_time=start + page.width)
        if current and start <= now < start + page.width:
            await _fill_current(store, request, kind, bucket)
    return out


async def _fill_current(
    store: Store,
    request: admin_pb2.GetStorageUsageRequest,
    kind: Kind,
    bucket: admin_pb2.StorageUsageBucket,
) -> None:
    """The results of the bucket holding now: the sum, or one per project storing any."""
    wanted = list(request.project_ids) or None
    stored = {
        project: kind(found) for project, found in (await store.storage_by_project(wanted)).items()
    }
    if "project_id" not in request.group_by:
        bucket.results.add(usage_bytes=sum(stored.values()))
        return
    for project, used in sorted(stored.items()):
        if used:
            bucket.results.add(usage_bytes=used, project_id=project)
