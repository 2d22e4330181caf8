"""Per-project rate limits: requests and tokens per minute, concurrent runs and streams.

Limits come from the settings (`COMPAT_RATE_LIMIT_*`, 0 = unlimited, the default) and from a
project's own row (`Store.set_project_limits`), which every core reads into memory at start
and again every `REFRESH_SECONDS`. A server where nothing is limited answers every call with
one attribute test more (`admit_now`); a limited project's requests are counted in memory too,
and reach the database only to lease budget.

Requests per minute count in fixed windows of `COMPAT_RATE_LIMIT_WINDOW_SECONDS` (60 unless a
test shortens them), aligned on the clock so that every core agrees which window a moment is
in. On SQLite the one process owns the whole window. On PostgreSQL each core leases budget from
the window's shared counter (`Store.take_from_window`, one statement) in batches of a twentieth
of the limit (1 to `MAX_BATCH`), and spends it from memory, leasing the next batch in the
background once half of one is left. The cores together never admit more than the limit in a
window, but a core may hold unspent budget that another core, having run out, cannot use: up
to 1.5 batches each, so (cores - 1) x 7.5% of the limit may be refused early. A lease costs
its core about 0.7 ms of CPU, so a call of a project at a high limit pays under 1 µs for it
(a batch of 1,000), and at a low one the round trips are as rare as its calls.
A window found spent is remembered, so refusals cost no round trip either. As with any fixed
window, a client may make the limit's worth at the end of one window and again at the start
of the next.

Tokens per minute count the tokens of runs as they finish (a run's tokens are known only
then), in the window in which each finished; a run is refused while its project's current
window is spent. On PostgreSQL the cores add their runs' tokens to the shared counter in the
background and read it at most once every `TOKENS_STALE_SECONDS` per project: another core's
tokens reach the check within that, and runs started meanwhile may overshoot (as every run
that starts before a window is spent may: the limit refuses the next run, not the tokens of one
in flight).

Concurrent runs count the project's runs that are queued, in progress, waiting for tool outputs
or cancelling (every status in which its thread accepts no other run). The store counts them in
the transaction that creates a run of a project with this limit (`Store.create_run`, given the
limit by `admit_run`), under a lock of the project (PostgreSQL: an advisory lock; SQLite: its
one writer), so the limit holds exactly, across cores and for creations at the same moment.
Projects without it take no lock and count nothing.

Concurrent event streams (`limits_streams`, then `open_stream` and `close_stream`) are
counted in memory on SQLite, where one process serves every stream, and across the cores on
PostgreSQL (`compat_core.stream_slots`: a row per project and core, one transaction a stream
opens; the rows of a core that died stop counting after `slot_seconds`, the run lease's time).
A stream of an unlimited project costs no await and no round trip.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import grpc

from compat_core import errors, tenancy
from compat_core.store.base import ProjectLimits, Store
from compat_core.stream_slots import StreamSlots
from compat_core.tasks import cancel_and_wait, every
from compat_core.v1 import runs_pb2

log = logging.getLogger(__name__)

REFRESH_SECONDS: Final = 5.0
TOKENS_STALE_SECONDS: Final = 1.0
# A core leases this share of a window's requests at a time (and at most MAX_BATCH).
BATCH_SHARE: Final = 20
MAX_BATCH: Final = 1000
# How long a client is asked to wait when a concurrency limit refuses it: a run or a stream
# must end first, which no clock predicts.
CONCURRENCY_RETRY_SECONDS: Final = 1
REQUESTS: Final = "requests"
TOKENS: Final = "tokens"


@dataclass(frozen=True)
class Limits:
    """The limits that apply to a project; 0 is unlimited."""

    requests_per_minute: int = 0
    tokens_per_minute: int = 0
    concurrent_runs: int = 0
    concurrent_streams: int = 0

    def any(self) -> bool:
        return bool(
            self.requests_per_minute
            or self.tokens_per_minute
            or self.concurrent_runs
            or self.concurrent_streams
        )

    def over(self, own: ProjectLimits) -> Limits:
        """These defaults with a project's own limits in place of those it set."""
        return Limits(
            *(
                default if mine is None else mine
                for default, mine in zip(
                    dataclasses.astuple(self), dataclasses.astuple(own), strict=True
                )
            )
        )


@dataclass
class _Requests:
    """A project's requests in one window, as this core knows them."""

    start: int
    # Budget leased at a time, and how little may be left before the next lease starts (in
    # the background; -1: never, the whole window is leased at once).
    batch: int
    low: int
    granted: int = 0
    used: int = 0
    spent: bool = False
    leasing: asyncio.Task[bool] | None = None


@dataclass
class _Tokens:
    """A project's tokens in one window: the shared total last read, plus what this core's
    runs added since that is not written yet."""

    start: int
    stored: int = 0
    pending: int = 0
    read_at: float = -math.inf


def format_reset(seconds: float) -> str:
    """A wait as OpenAI's `x-ratelimit-reset-*` headers write it: `120ms`, `1s`, `8.64s`,
    `6m0s`, `1h2m3s`."""
    if seconds < 1:
        return f"{max(1, math.ceil(seconds * 1000))}ms"
    minutes, rest = divmod(round(seconds, 3), 60)
    hours, minutes = divmod(int(minutes), 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    if minutes or hours:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return text


def rate_limited(
    message: str, error_type: str, retry_seconds: float, headers: dict[str, str]
) -> errors.ApiError:
    """A 429 as OpenAI answers one: its type, `rate_limit_exceeded`, and the headers."""
    metadata = {
        errors.ERROR_TYPE: error_type,
        "retry-after": str(max(1, math.ceil(retry_seconds))),
        "retry-after-ms": str(max(1, math.ceil(retry_seconds * 1000))),
        **headers,
    }
    return errors.ApiError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        message,
        code=errors.RATE_LIMIT_EXCEEDED,
        metadata=metadata,
    )


class RateLimiter:
    """The limits of every project, as one core enforces them."""

    def __init__(
        self,
        store: Store,
        defaults: Limits,
        window_seconds: int = 60,
        clock: Callable[[], float] = time.time,
        on_refused: Callable[[str, str], None] | None = None,
        core_id: str = "",
        slot_seconds: float = 10.0,
    ) -> None:
        self._store = store
        self._defaults = defaults
        self._window = window_seconds
        self._clock = clock
        self._on_refused = on_refused
        self._own: dict[str, Limits] = {}
        # Whether any project has any limit: when not, nothing below is looked at.
        self.active = defaults.any()
        self._requests: dict[str, _Requests] = {}
        self._tokens: dict[str, _Tokens] = {}
        # Open streams of limited projects: on SQLite in memory, else shared by the cores.
        self._streams: dict[str, int] = {}
        self._slots: StreamSlots | None = None
        if store.shared:
            self._slots = StreamSlots(store, core_id, slot_seconds, clock)
        self._background: set[asyncio.Task[Any]] = set()
        self._refresher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Read the projects' own limits, and again every `REFRESH_SECONDS` from now on."""
        await self.refresh()
        self._refresher = asyncio.create_task(
            every(REFRESH_SECONDS, self._upkeep, "reading the projects' rate limits failed"),
            name="rate-limits",
        )
        if self._slots is not None:
            self._slots.start()

    async def close(self) -> None:
        if self._refresher is not None:
            await cancel_and_wait(self._refresher)
            self._refresher = None
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._slots is not None:
            await self._slots.close()

    async def refresh(self) -> None:
        own = await self._store.all_project_limits()
        self._own = {project: self._defaults.over(limits) for project, limits in own.items()}
        self.active = self._defaults.any() or any(limits.any() for limits in self._own.values())

    @property
    def defaults(self) -> Limits:
        """The settings' limits, which apply to a project without its own."""
        return self._defaults

    def limits_of(self, project: str) -> Limits:
        return self._own.get(project, self._defaults)

    def _window_start(self, now: float) -> int:
        return int(now // self._window) * self._window

    # Requests.

    def admit_now(self, project: str) -> bool:
        """Count a request of `project` from memory; False when `admit` must decide."""
        if not self.active:
            return True
        limit = self.limits_of(project).requests_per_minute
        if not limit:
            return True
        window = self._requests.get(project)
        if window is None or window.used >= window.granted:
            return False
        if window.start != self._window_start(self._clock()):
            return False
        window.used += 1
        if window.granted - window.used <= window.low and not window.spent:
            # Lease the next batch before this one runs out, off the request path.
            self._start_lease(project, window, limit)
        return True

    async def admit(self, project: str) -> None:
        """Count a request that `admit_now` could not: lease budget, or refuse."""
        limit = self.limits_of(project).requests_per_minute
        if not limit:
            return  # lifted since `admit_now` looked
        start = self._window_start(self._clock())
        window = self._requests.get(project)
        if window is None or window.start != start:
            window = self._requests[project] = self._new_window(start, limit)
        while window.used >= window.granted:
            if window.spent:
                wait = start + self._window - self._clock()
                raise self._requests_refused(project, limit, wait)
            leasing = self._start_lease(project, window, limit)
            # Shielded: the lease is every waiting request's, not only this one's.
            if not await asyncio.shield(leasing):
                raise RuntimeError(f"could not lease requests of project {project}'s window")
        window.used += 1

    def _new_window(self, start: int, limit: int) -> _Requests:
        if not self._store.shared:
            return _Requests(start, limit, -1)
        batch = max(1, min(MAX_BATCH, limit // BATCH_SHARE))
        return _Requests(start, batch, batch // 2)

    def _start_lease(self, project: str, window: _Requests, limit: int) -> asyncio.Task[bool]:
        """The lease of `window`'s next batch under way, started if none is."""
        if window.leasing is None:
            window.leasing = asyncio.get_running_loop().create_task(
                self._lease(project, window, limit)
            )
            self._background.add(window.leasing)
            window.leasing.add_done_callback(self._background.discard)
        return window.leasing

    async def _lease(self, project: str, window: _Requests, limit: int) -> bool:
        """Add the next batch to `window` (none left: it is spent); False if the store failed."""
        try:
            if self._store.shared:
                granted, _ = await self._store.take_from_window(
                    project, REQUESTS, window.start, window.batch, limit
                )
            else:
                granted = max(0, limit - window.granted)
        except Exception:
            log.exception("could not lease requests of project %s's window", project)
            return False
        finally:
            window.leasing = None
        window.granted += granted
        if not granted:
            window.spent = True
        return True

    def _requests_refused(self, project: str, limit: int, wait: float) -> errors.ApiError:
        self._refused(project, REQUESTS)
        reset = format_reset(wait)
        return rate_limited(
            f"Rate limit reached in project {project} on requests per min (RPM): "
            f"Limit {limit}, Used {limit}, Requested 1. Please try again in {reset}.",
            REQUESTS,
            wait,
            {
                "x-ratelimit-limit-requests": str(limit),
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": reset,
            },
        )

    # Runs and their tokens.

    async def admit_run(self, project: str) -> int:
        """Refuse a new run of `project` while its tokens window is spent. Returns its limit
        of concurrent runs (0: none), for the store to check as it creates the run
        (`Store.create_run`; `runs_refused` is the refusal)."""
        if not self.active:
            return 0
        limits = self.limits_of(project)
        if limits.tokens_per_minute:
            now = self._clock()
            used = await self._tokens_used(project, now)
            if used >= limits.tokens_per_minute:
                raise self._tokens_refused(
                    project,
                    limits.tokens_per_minute,
                    used,
                    self._window_start(now) + self._window - now,
                )
        return limits.concurrent_runs

    def runs_refused(self, project: str, limit: int, active: int) -> errors.ApiError:
        """The 429 of a run refused by the limit of its project's concurrent runs."""
        self._refused(project, "runs")
        return rate_limited(
            f"Rate limit reached in project {project} on concurrent runs: "
            f"Limit {limit}, Active {active}. Please try again once a run ends.",
            REQUESTS,
            CONCURRENCY_RETRY_SECONDS,
            {},
        )

    async def _tokens_used(self, project: str, now: float) -> int:
        window = self._tokens_window(project, now)
        if self._store.shared and self._clock() - window.read_at > TOKENS_STALE_SECONDS:
            window.stored = await self._store.window_used(project, TOKENS, window.start)
            window.read_at = self._clock()
        return window.stored + window.pending

    def _tokens_window(self, project: str, now: float) -> _Tokens:
        start = self._window_start(now)
        window = self._tokens.get(project)
        if window is None or window.start != start:
            window = self._tokens[project] = _Tokens(start)
        return window

    def _tokens_refused(self, project: str, limit: int, used: int, wait: float) -> errors.ApiError:
        self._refused(project, TOKENS)
        reset = format_reset(wait)
        return rate_limited(
            f"Rate limit reached in project {project} on tokens per min (TPM): "
            f"Limit {limit}, Used {used}. Please try again in {reset}.",
            TOKENS,
            wait,
            {
                "x-ratelimit-limit-tokens": str(limit),
                "x-ratelimit-remaining-tokens": "0",
                "x-ratelimit-reset-tokens": reset,
            },
        )

    def run_finished(self, run: runs_pb2.Run) -> None:
        """Count the tokens of a run this core just ended (in the run's project scope)."""
        project = tenancy.current_or_none()
        tokens = run.usage.prompt_tokens + run.usage.completion_tokens
        if not isinstance(project, str) or not tokens or not self.active:
            return
        if not self.limits_of(project).tokens_per_minute:
            return
        window = self._tokens_window(project, self._clock())
        if not self._store.shared:
            window.stored += tokens
            return
        window.pending += tokens
        task = asyncio.get_running_loop().create_task(self._add_tokens(project, window, tokens))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _add_tokens(self, project: str, window: _Tokens, tokens: int) -> None:
        try:
            _, total = await self._store.take_from_window(
                project, TOKENS, window.start, tokens, None
            )
        except Exception:
            log.exception("could not add %d tokens to the window of project %s", tokens, project)
            return
        finally:
            window.pending -= tokens
        window.stored = max(window.stored, total)
        window.read_at = self._clock()

    # Streams.

    def limits_streams(self, project: str) -> bool:
        """Whether `project`'s streams are limited (then `open_stream` each, and
        `close_stream` it when it ends); from memory."""
        return self.active and bool(self.limits_of(project).concurrent_streams)

    async def open_stream(self, project: str) -> None:
        """Count a stream of `project` opening, or refuse it (on a shared database, once the
        core's row says so)."""
        limit = self.limits_of(project).concurrent_streams
        if self._slots is not None:
            taken, open_now = await self._slots.take(project, limit)
            if not taken:
                raise self._streams_refused(project, limit, open_now)
            return
        open_now = self._streams.get(project, 0)
        if open_now >= limit:
            raise self._streams_refused(project, limit, open_now)
        self._streams[project] = open_now + 1

    def close_stream(self, project: str) -> None:
        """A stream `open_stream` counted ended."""
        if self._slots is not None:
            self._slots.give_back(project)
            return
        left = self._streams.get(project, 1) - 1
        if left > 0:
            self._streams[project] = left
        else:
            self._streams.pop(project, None)

    def _streams_refused(self, project: str, limit: int, open_now: int) -> errors.ApiError:
        self._refused(project, "streams")
        return rate_limited(
            f"Rate limit reached in project {project} on concurrent streams: "
            f"Limit {limit}, Open {open_now}. Please try again once a stream ends.",
            REQUESTS,
            CONCURRENCY_RETRY_SECONDS,
            {},
        )

    # Upkeep.

    def _refused(self, project: str, limit: str) -> None:
        if self._on_refused is not None:
            self._on_refused(project, limit)

    async def _upkeep(self) -> None:
        """Forget the windows past, read the projects' limits again, and drop the shared
        counts no one will read."""
        now = self._window_start(self._clock())
        for kept in (self._requests, self._tokens):
            for project in [p for p, w in kept.items() if w.start < now]:
                del kept[project]
        await self.refresh()
        if self.active:
            # Windows older than the one before this are of no use to anyone.
            await self._store.purge_windows(now - self._window)
        if self._slots is not None and self._limits_any_streams():
            await self._slots.purge()

    def _limits_any_streams(self) -> bool:
        return bool(self._defaults.concurrent_streams) or any(
            limits.concurrent_streams for limits in self._own.values()
        )
