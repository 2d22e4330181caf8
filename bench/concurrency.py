"""Section 3, concurrency: a thousand streamed runs at once, each on a thread of its own.

The upstream paces its tokens (20 ms apart, 200 of them), as a real model does, so that the
runs overlap for their whole length. The baseline is the same number of streams read straight
from the upstream, at once, with the same raw client: its time to first token is what the
upstream itself gives under that load.

Measured on our server's process: peak RSS (VmHWM) and CPU seconds per 1,000 tokens relayed
(utime + stime across the run). Every stream is started at once (the client's connector
allows them all), and each has its own bound, so a stuck stream is counted as an error rather
than hanging the section. On 2 cores the load generator competes with the server and the
upstream: its own CPU use is reported so that a client-bound result can be told apart.

Beside the one-token runs, the floor of our shape (`bench.floor`: a bare aiohttp handler
making one bare grpc.aio call, no work) answers as many requests sent at once: how long the
last of them waits when nothing but the two frameworks' own work is done, the least that any
server of this shape adds to the first token of the last stream.

If any stream fails, the section halves the number of streams (fresh processes each time, a
bounded number of times) and reports the largest number that ran without errors as well.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

import aiohttp
import orjson

from bench import api, floor, upstream
from bench.config import Context
from bench.load import percentile
from bench.procs import cpu_seconds, peak_rss_bytes, raise_if_cancelled, rss_bytes
from bench.report import Row, mib, ms, ratio
from bench.sse import StreamTiming, read_run_stream, read_upstream_stream

SECTION: Final = "3 concurrency"
MAX_ADDED_P99_TTFT: Final = 0.250
MAX_PEAK_RSS: Final = 1024**3
# When the configured number of streams has errors, halve it at most this often, not below.
MAX_FALLBACKS: Final = 3
MIN_STREAMS: Final = 50
# The floor's requests in `floor_at_once`: a create message, at our sizes.
FLOOR_BODY: Final = b'{"role":"user","content":"hello"}'
FLOOR_JSON_BYTES: Final = 370
FLOOR_PROTO_BYTES: Final = 84
# Each stream's own bound (connecting included).
STREAM_TIMEOUT: Final = 300.0


def _session(streams: int) -> aiohttp.ClientSession:
    limit = streams + 8
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, limit_per_host=limit),
        timeout=aiohttp.ClientTimeout(total=STREAM_TIMEOUT),
    )


async def _all_at_once(
    count: int, read: Callable[[int], Awaitable[StreamTiming]]
) -> tuple[list[StreamTiming], float]:
    started = time.perf_counter()
    timings = await asyncio.gather(*(read(index) for index in range(count)))
    raise_if_cancelled()
    return list(timings), time.perf_counter() - started


def _ttfts(timings: Sequence[StreamTiming]) -> list[float]:
    return sorted(t.ttft for t in timings if not math.isnan(t.first_token))


def _errors(timings: Sequence[StreamTiming]) -> tuple[int, str]:
    """How many failed, and the first error with when the failures came (after sending)."""
    failed = [t for t in timings if t.error]
    if not failed:
        return 0, ""
    after = sorted(t.ended - t.sent for t in failed)
    when = f"after {percentile(after, 0.0):.1f} to {percentile(after, 1.0):.1f} s"
    return len(failed), f"{when}; first: {failed[0].error}"


@dataclass(frozen=True)
class Attempt:
    """One measurement at one number of streams, with fresh processes."""

    count: int
    tokens: int
    pace_ms: int
    mine: Sequence[StreamTiming]
    direct: Sequence[StreamTiming]
    wall: float
    direct_wall: float
    server_cpu: float
    upstream_cpu: float
    client_cpu: float
    peak: int
    idle_rss: int

    @property
    def errors(self) -> int:
        return _errors(self.mine)[0]


async def measure(
    ctx: Context,
    count: int,
    tokens: int | None = None,
    pace_ms: int | None = None,
    split: bool = False,
) -> Attempt:
    """`count` streamed runs at once on a fresh server, after as many direct streams.

    `tokens` and `pace_ms` default to the configured stream shape. `split` runs the core and
    the edge as two processes (their CPU and memory are added up).
    """
    config = ctx.config
    tokens = config.concurrent_tokens if tokens is None else tokens
    pace_ms = config.pace_ms if pace_ms is None else pace_ms
    model = upstream.model_name(tokens, pace_ms)
    label = f"concurrency-{count}" + ("" if tokens == config.concurrent_tokens else f"x{tokens}")
    label += "-split" if split else ""
    async with ctx.children(label) as children:
        up = await children.spawn("upstream", ["-m", "bench.upstream"])
        base_url = str(up.ready["base_url"])
        common = [
            "-m",
            "bench.ours",
            "--database-url",
            ctx.database_for(label),
            "--provider",
            f"bench={base_url}",
        ]
        if split:
            core = await children.spawn("core", [*common, "--role", "core"], profile=True)
            target = str(core.ready["grpc"])
            edge = await children.spawn(
                "edge", [*common, "--role", "edge", "--core-target", target], profile=True
            )
            servers = [core, edge]
        else:
            servers = [await children.spawn("ours", common, profile=True)]
        root = f"{servers[-1].ready['http']}/v1"
        pids = [server.pid for server in servers]
        idle_rss = sum(rss_bytes(pid) for pid in pids)

        # The upstream alone, the same number of streams at once.
        upstream_cpu = cpu_seconds(up.pid)
        async with _session(count) as session:
            direct, direct_wall = await _all_at_once(
                count, lambda _: read_upstream_stream(session, base_url, model)
            )
        upstream_cpu = cpu_seconds(up.pid) - upstream_cpu

        async with _session(count) as session:
            assistant = await api.create_assistant(session, root, f"bench/{model}")
            threads = await api.bounded_gather(
                count, lambda _: api.create_thread(session, root, ["hello"]), concurrency=32
            )
        body = orjson.dumps({"assistant_id": assistant, "stream": True})

        server_cpu, client_cpu = sum(cpu_seconds(pid) for pid in pids), time.process_time()
        async with _session(count) as session:
            mine, wall = await _all_at_once(
                count,
                lambda index: read_run_stream(
                    session, f"{root}/threads/{threads[index]}/runs", body
                ),
            )
        server_cpu = sum(cpu_seconds(pid) for pid in pids) - server_cpu
        client_cpu = time.process_time() - client_cpu
        peak = sum(peak_rss_bytes(pid) for pid in pids)
    return Attempt(
        count,
        tokens,
        pace_ms,
        mine,
        direct,
        wall,
        direct_wall,
        server_cpu,
        upstream_cpu,
        client_cpu,
        peak,
        idle_rss,
    )


async def floor_at_once(ctx: Context, count: int) -> list[float]:
    """Seconds each of `count` create-message requests, sent at once on fresh connections,
    took to be answered by the floor, sorted."""
    sizes = {"create_message": {"json": FLOOR_JSON_BYTES, "proto": FLOOR_PROTO_BYTES}}
    async with ctx.children("concurrency-floor") as children:
        bare = await children.spawn(
            "floor", ["-m", "bench.floor", "--sizes", orjson.dumps(sizes).decode()]
        )
        method, path = floor.ROUTES["create_message"]
        url = str(bare.ready["http"]) + path.format(thread_id="thread_floor")
        headers = {"Content-Type": "application/json"}

        async def one(session: aiohttp.ClientSession) -> float:
            started = time.perf_counter()
            async with session.request(method, url, data=FLOOR_BODY, headers=headers) as reply:
                await reply.read()
                reply.raise_for_status()
            return time.perf_counter() - started

        async with _session(count) as session:
            waits = await asyncio.gather(*(one(session) for _ in range(count)))
    raise_if_cancelled()
    return sorted(waits)


async def run(ctx: Context) -> list[Row]:
    """The configured number of streams; if any fails, halve until none does (bounded).

    Then as many runs of one token each, at once: what starting a run costs, which bounds
    the time to first token of the last of them whatever the tokens cost. Last, the streams
    again with the core and the edge in two processes, the deployed shape that can use both
    cores (the embedded server is one process, so one core at most).
    """
    attempt = await measure(ctx, ctx.config.concurrent_streams)
    rows = _rows(attempt)
    raise_if_cancelled()
    one_token = await measure(ctx, ctx.config.concurrent_streams, tokens=1, pace_ms=0)
    raise_if_cancelled()
    rows += _start_rows(one_token, await floor_at_once(ctx, ctx.config.concurrent_streams))
    raise_if_cancelled()
    split = await measure(ctx, ctx.config.concurrent_streams, split=True)
    rows += _rows(split, shape_note=" · core and edge as 2 processes")
    fallback = attempt
    for _ in range(MAX_FALLBACKS):
        raise_if_cancelled()
        if fallback.errors == 0 or fallback.count // 2 < MIN_STREAMS:
            break
        fallback = await measure(ctx, fallback.count // 2)
        rows += _rows(fallback, brief=True)
    if attempt.errors and fallback is not attempt:
        verdict = f"{fallback.count:,} streams" if fallback.errors == 0 else "none tried was clean"
        rows.append(
            Row(SECTION, "largest number of streams without errors (halving)", verdict, "—")
        )
    return rows


def _start_rows(attempt: Attempt, floor_waits: Sequence[float]) -> list[Row]:
    count = attempt.count
    errors, _ = _errors(attempt.mine)
    ttft, ttft_direct = _ttfts(attempt.mine), _ttfts(attempt.direct)
    p99, d99 = percentile(ttft, 0.99), percentile(ttft_direct, 0.99)
    f99 = percentile(floor_waits, 0.99)
    per_run = attempt.server_cpu / count
    per_request = attempt.upstream_cpu / count
    shape = f"{count:,} one-token runs at once"
    return [
        Row(
            SECTION,
            f"time to first token p99 ({shape}, {errors} errors)",
            ms(p99),
            ms(d99) + " (upstream direct)",
            f"{ratio(p99, d99)} ({(p99 - d99) * 1000.0:+.0f} ms)",
        ),
        Row(
            SECTION,
            f"the floor: answered p99, {count:,} bare requests at once (aiohttp → grpc.aio, "
            "no work)",
            ms(f99),
            ms(d99) + " (upstream direct, first token)",
            f"{ratio(f99, d99)} ({(f99 - d99) * 1000.0:+.0f} ms)",
            target="note: the least a server of our shape adds; compare +≤ 250 ms",
        ),
        Row(
            SECTION,
            f"server CPU per streamed run ({shape})",
            f"{per_run * 1000.0:.2f} ms ({count:,} runs in {attempt.wall:.1f} s)",
            f"{per_request * 1000.0:.2f} ms (upstream's, per request served)",
            ratio(per_run, per_request),
        ),
    ]


def _rows(attempt: Attempt, brief: bool = False, shape_note: str = "") -> list[Row]:
    """The attempt's rows; `brief` keeps the first four, `shape_note` names a server shape."""
    count, mine, direct = attempt.count, attempt.mine, attempt.direct
    shape = f"{count:,} streams x {attempt.tokens} tokens, {attempt.pace_ms} ms apart"
    errors, first_error = _errors(mine)
    direct_errors, _ = _errors(direct)
    done = sum(1 for t in mine if t.completed and not t.error)
    ttft, ttft_direct = _ttfts(mine), _ttfts(direct)
    p50, p99 = percentile(ttft, 0.50), percentile(ttft, 0.99)
    d50, d99 = percentile(ttft_direct, 0.50), percentile(ttft_direct, 0.99)
    relayed = sum(t.tokens for t in mine)
    served = sum(t.tokens for t in direct)
    per_k = attempt.server_cpu / (relayed / 1000.0) if relayed else math.nan
    per_k_upstream = attempt.upstream_cpu / (served / 1000.0) if served else math.nan
    outcome = f"{done:,}/{count:,} completed, {errors} errors"
    if first_error:
        outcome += f" ({first_error[:160]})"
    at = (f" at {count:,}" if brief else "") + shape_note
    rows = [
        Row(
            SECTION,
            f"runs completed ({shape}){shape_note}",
            outcome,
            f"{count - direct_errors:,}/{count:,} direct, {direct_errors} errors",
            target="all, no errors",
            met=errors == 0 and done == count,
        ),
        Row(
            SECTION,
            f"time to first token p50{at}",
            ms(p50),
            ms(d50) + " (upstream direct)",
            ratio(p50, d50),
        ),
        Row(
            SECTION,
            f"time to first token p99{at}",
            ms(p99),
            ms(d99) + " (upstream direct)",
            f"{ratio(p99, d99)} ({(p99 - d99) * 1000.0:+.0f} ms)",
            f"+≤ {MAX_ADDED_P99_TTFT * 1000:.0f} ms",
            p99 - d99 <= MAX_ADDED_P99_TTFT,
        ),
        Row(
            SECTION,
            f"all streams done in (wall){at}",
            f"{attempt.wall:.1f} s",
            f"{attempt.direct_wall:.1f} s (upstream direct)",
            ratio(attempt.wall, attempt.direct_wall),
        ),
        Row(
            SECTION,
            f"server peak RSS (VmHWM){at}",
            mib(attempt.peak),
            mib(attempt.idle_rss) + " (idle, after start)",
            ratio(attempt.peak, attempt.idle_rss),
            "< 1 GiB",
            attempt.peak < MAX_PEAK_RSS,
        ),
        Row(
            SECTION,
            f"server CPU s per 1,000 tokens relayed{at}",
            f"{per_k:.3f} s ({relayed:,} tokens)",
            f"{per_k_upstream:.3f} s (upstream's, per 1,000 served)",
            ratio(per_k, per_k_upstream),
        ),
    ]
    if brief:
        return rows[:4]
    if shape_note:
        return rows
    share = attempt.client_cpu / attempt.wall if attempt.wall else math.nan
    rows.append(
        Row(
            SECTION,
            "load generator CPU during our run (share of one core)",
            f"{share:.2f}",
            "—",
            target="note: ≥ 0.9 would mean the client, not the server, is the limit",
        )
    )
    return rows
