"""The load generator: a fixed number of concurrent workers, each issuing one request after the
other, for a fixed time or request count, whichever comes first.

A closed loop (each worker waits for its answer before the next request) measures what a
server sustains at a given concurrency without queueing requests inside the generator, so
latency percentiles are the server's and throughput is not an artefact of an open-loop rate.
Each point starts with a short warm-up whose results are thrown away (connections opened,
caches and the JIT-less interpreter's first calls behind us).

HTTP goes over keep-alive connections of one aiohttp session whose connector allows exactly
`concurrency` connections, so every worker holds one connection, as a pool of clients would.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

import aiohttp

from bench.procs import cpu_seconds, raise_if_cancelled

# A request that takes longer than this counts as an error instead of stalling the point.
REQUEST_TIMEOUT: Final = 30.0
JSON_HEADERS: Final = {"Content-Type": "application/json"}

Call = Callable[[], Awaitable[None]]
# Gives worker `i` its call: workers may each have their own resource (a thread of their own).
CallFactory = Callable[[int], Call]


class StatusError(Exception):
    """The server answered, but not with 200."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:300]!r}")
        self.status = status


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (NaN when there are none)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass(frozen=True)
class LoadResult:
    """What one load point measured. Latencies are in seconds, sorted."""

    concurrency: int
    requests: int
    errors: int
    elapsed: float
    latencies: tuple[float, ...]
    first_error: str = ""
    # CPU seconds the measured server process(es) spent during the measured phase (NaN: not
    # measured). Per request, it says what a call costs whatever the machine's noise.
    server_cpu: float = math.nan

    @property
    def rps(self) -> float:
        """Successful requests per second."""
        return self.requests / self.elapsed if self.elapsed > 0 else math.nan

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies, 0.50) * 1000.0

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 0.99) * 1000.0

    @property
    def cpu_per_request_us(self) -> float:
        """Server CPU microseconds per successful request."""
        return self.server_cpu / self.requests * 1e6 if self.requests else math.nan

    def summary(self) -> str:
        text = f"{self.rps:,.0f} req/s · p50 {self.p50_ms:.2f} · p99 {self.p99_ms:.2f} ms"
        if not math.isnan(self.server_cpu):
            text += f" · {self.cpu_per_request_us:,.0f} µs CPU/req"
        if self.errors:
            text += f" · {self.errors} errors"
        return text


async def _phase(
    calls: Sequence[Call], duration: float, max_requests: int
) -> tuple[list[float], int, float, str]:
    """Run every worker until the deadline or the request budget; latencies, errors, time."""
    latencies: list[float] = []
    errors = 0
    first_error = ""
    issued = 0
    clock = time.perf_counter
    started = clock()
    deadline = started + duration

    async def worker(call: Call) -> None:
        nonlocal errors, first_error, issued
        while issued < max_requests and clock() < deadline:
            issued += 1
            sent = clock()
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    await call()
            except Exception as exc:
                raise_if_cancelled()
                errors += 1
                first_error = first_error or f"{type(exc).__name__}: {exc}"
            else:
                latencies.append(clock() - sent)

    await asyncio.gather(*(worker(call) for call in calls))
    return latencies, errors, clock() - started, first_error


async def run_load(
    make_call: CallFactory,
    *,
    concurrency: int,
    duration: float,
    warmup: float,
    max_requests: int = 1_000_000,
    cpu_pids: Sequence[int] = (),
) -> LoadResult:
    """`concurrency` workers for `warmup` seconds (discarded), then `duration` seconds.

    `cpu_pids`: processes whose CPU time over the measured phase is reported (the server).
    """
    raise_if_cancelled()
    calls = [make_call(worker) for worker in range(concurrency)]
    if warmup > 0:
        await _phase(calls, warmup, max_requests)
    cpu_before = sum(cpu_seconds(pid) for pid in cpu_pids)
    latencies, errors, elapsed, first_error = await _phase(calls, duration, max_requests)
    cpu = sum(cpu_seconds(pid) for pid in cpu_pids) - cpu_before if cpu_pids else math.nan
    latencies.sort()
    return LoadResult(
        concurrency, len(latencies), errors, elapsed, tuple(latencies), first_error, cpu
    )


def http_session(concurrency: int) -> aiohttp.ClientSession:
    """A session that keeps exactly `concurrency` connections alive to its servers."""
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
        skip_auto_headers=("User-Agent",),
    )


def http_call(
    session: aiohttp.ClientSession, method: str, url: str, body: bytes | None = None
) -> Call:
    """One request whose whole answer is read; anything but 200 is an error."""
    headers = JSON_HEADERS if body is not None else None

    async def call() -> None:
        async with session.request(method, url, data=body, headers=headers) as response:
            payload = await response.read()
            if response.status != 200:
                raise StatusError(response.status, payload)

    return call


def merged(results: Sequence[LoadResult]) -> LoadResult:
    """Several runs of one point as one: requests and time add up, latencies pool."""
    latencies = sorted(value for result in results for value in result.latencies)
    return LoadResult(
        concurrency=results[0].concurrency,
        requests=sum(result.requests for result in results),
        errors=sum(result.errors for result in results),
        elapsed=sum(result.elapsed for result in results),
        latencies=tuple(latencies),
        first_error=next((result.first_error for result in results if result.first_error), ""),
        server_cpu=sum(result.server_cpu for result in results),
    )


async def alternate(
    ours: Callable[[], Awaitable[LoadResult]],
    baseline: Callable[[], Awaitable[LoadResult]],
    rounds: int,
) -> tuple[LoadResult, LoadResult]:
    """Measure ours and the baseline in turns (A B B A …), each result pooled over rounds.

    On a noisy machine, load from elsewhere comes and goes over seconds; alternating in a
    mirrored order spreads it over both sides instead of letting it land on one.
    """
    mine: list[LoadResult] = []
    theirs: list[LoadResult] = []
    for index in range(rounds):
        raise_if_cancelled()
        if index % 2 == 0:
            mine.append(await ours())
            theirs.append(await baseline())
        else:
            theirs.append(await baseline())
            mine.append(await ours())
    return merged(mine), merged(theirs)
