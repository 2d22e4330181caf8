"""The rate limits and usage half of `AdminService`: a project's one rate limit object, and
completions usage by day.

OpenAI's Administration API lists rate limits per model; this server limits a project as a
whole, so each project shows one object, `rl-project` for model `*`, whose fields are the
limits that apply now, each marked as the project's own or the server's setting.
"""

from __future__ import annotations

from typing import Final

from compat_core import errors
from compat_core.ratelimit import Limits, RateLimiter
from compat_core.store.base import ProjectLimits, Store
from compat_core.v1 import admin_pb2

RATE_LIMIT_ID: Final = "rl-project"
ALL_MODELS: Final = "*"
# The stored columns are 64-bit, but a limit past int32 is no limit anyone needs.
MAX_LIMIT_VALUE: Final = 2**31 - 1
# The proto's field names, in the order of `ProjectLimits`' fields.
FIELDS: Final = (
    "max_requests_per_1_minute",
    "max_tokens_per_1_minute",
    "max_concurrent_runs",
    "max_concurrent_streams",
)


def rate_limit_out(defaults: Limits, own: ProjectLimits | None) -> admin_pb2.ProjectRateLimit:
    mine = own or ProjectLimits()
    out = admin_pb2.ProjectRateLimit(id=RATE_LIMIT_ID, model=ALL_MODELS)
    values = zip(
        FIELDS,
        (
            defaults.requests_per_minute,
            defaults.tokens_per_minute,
            defaults.concurrent_runs,
            defaults.concurrent_streams,
        ),
        (
            mine.requests_per_minute,
            mine.tokens_per_minute,
            mine.concurrent_runs,
            mine.concurrent_streams,
        ),
        strict=True,
    )
    for field, default, value in values:
        getattr(out, field).CopyFrom(
            admin_pb2.RateLimitValue(
                value=default if value is None else value, is_default=value is None
            )
        )
    return out


def _changed(
    request: admin_pb2.ModifyProjectRateLimitRequest, field: str, old: int | None
) -> int | None:
    if not request.HasField(field):  # type: ignore[arg-type]
        return old
    change: admin_pb2.RateLimitChange = getattr(request, field)
    if not change.HasField("value"):
        return None
    if not 0 <= change.value <= MAX_LIMIT_VALUE:
        raise errors.invalid(
            f"Invalid '{field}': expected an integer from 0 (unlimited) to {MAX_LIMIT_VALUE}, "
            f"but got {change.value} instead.",
            field,
            "invalid_value",
        )
    return change.value


def check_rate_limit_id(rate_limit_id: str) -> None:
    if rate_limit_id != RATE_LIMIT_ID:
        raise errors.not_found(
            f"No rate limit found with id '{errors.shown(rate_limit_id)}': a project has one, "
            f"'{RATE_LIMIT_ID}'.",
            "rate_limit_id",
        )


async def modify_limits(
    store: Store, limiter: RateLimiter, request: admin_pb2.ModifyProjectRateLimitRequest
) -> admin_pb2.ProjectRateLimit:
    """Store the project's new own limits (the project exists) and apply them on this core now,
    so that its next call already sees them; the other cores refresh on their own."""
    old = await store.get_project_limits(request.project_id) or ProjectLimits()
    new = ProjectLimits(
        _changed(request, FIELDS[0], old.requests_per_minute),
        _changed(request, FIELDS[1], old.tokens_per_minute),
        _changed(request, FIELDS[2], old.concurrent_runs),
        _changed(request, FIELDS[3], old.concurrent_streams),
    )
    await store.set_project_limits(request.project_id, new)
    await limiter.refresh()
    return rate_limit_out(limiter.defaults, new)
