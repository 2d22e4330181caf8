"""Section 2, streaming: one run relaying a fast upstream, against reading that upstream
directly with the `openai` SDK's async client.

The upstream streams `stream_tokens` tokens as fast as it can. Ours: a streamed run through
edge and core, read raw with aiohttp; the time to first token is from sending the request to
the first `thread.message.delta` carrying text, tokens/s is over the first to the last token.
Direct: `AsyncOpenAI(...).chat.completions.create(stream=True)` on the same upstream, timed
the same way (its first chunk with content): what a client would do without us, as the issue
defines the baseline. The core reads the upstream's body itself (cheaper than the SDK's
per-chunk models), so ours can beat it on tokens/s; the time to first token shows what the run
machinery, the gRPC stream and the SSE relay add. Repetitions alternate between the two;
medians are reported.

The time to first token is measured a second time against an upstream that paces its tokens
(`PACED_TOKENS`, `pace_ms` apart), as a model does: without the burst, whose reading competes
with the first token's relay for the CPU, this is what the relay itself adds. It carries no
target (the issue sets it for the burst).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from typing import Final

import aiohttp
import openai
import orjson

from bench import api, upstream
from bench.config import Context
from bench.procs import raise_if_cancelled
from bench.report import Row, ms, ratio
from bench.sse import StreamTiming, read_run_stream

SECTION: Final = "2 streaming"
MAX_ADDED_TTFT_MS: Final = 5.0
MIN_TOKEN_RATE_SHARE: Final = 0.90
STREAM_TIMEOUT: Final = 120.0
# The paced stream's length: its first token is what is measured.
PACED_TOKENS: Final = 5


async def direct_sdk_stream(client: openai.AsyncOpenAI, model: str) -> StreamTiming:
    """Read the upstream with the SDK, as `compat_core.providers.upstream` does."""
    timing = StreamTiming(sent=time.perf_counter())
    stream = await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    async with stream:
        async for chunk in stream:
            if chunk.choices:
                timing.text_arrived(len(chunk.choices[0].delta.content or ""))
    timing.completed = True
    return timing


def _median(values: Sequence[float]) -> float:
    finite = [value for value in values if not math.isnan(value)]
    return statistics.median(finite) if finite else math.nan


async def run(ctx: Context) -> list[Row]:
    config = ctx.config
    model = upstream.model_name(config.stream_tokens, 0)
    async with ctx.children("streaming") as children:
        up = await children.spawn("upstream", ["-m", "bench.upstream"])
        base_url = str(up.ready["base_url"])
        ours = await children.spawn(
            "ours",
            [
                "-m",
                "bench.ours",
                "--database-url",
                ctx.database_for("streaming"),
                "--provider",
                f"bench={base_url}",
            ],
            profile=True,
        )
        root = f"{ours.ready['http']}/v1"
        timeout = aiohttp.ClientTimeout(total=STREAM_TIMEOUT)
        client = openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0)
        paced_model = upstream.model_name(PACED_TOKENS, config.pace_ms)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                mine, direct = await _alternate(session, root, client, model, config.stream_reps)
                paced, paced_direct = await _alternate(
                    session, root, client, paced_model, config.stream_reps
                )
        finally:
            await client.close()
    note = f"median of {config.stream_reps}"
    return [
        _ttft_row(f"time to first token ({note})", mine, direct, MAX_ADDED_TTFT_MS),
        _ttft_row(
            f"time to first token, upstream pacing its tokens {config.pace_ms} ms apart ({note})",
            paced,
            paced_direct,
        ),
        *_rows(config.stream_tokens, note, mine, direct),
    ]


async def _alternate(
    session: aiohttp.ClientSession,
    root: str,
    client: openai.AsyncOpenAI,
    model: str,
    reps: int,
) -> tuple[list[StreamTiming], list[StreamTiming]]:
    """`reps` streamed runs of `model` and as many direct reads of it, in turns."""
    mine: list[StreamTiming] = []
    direct: list[StreamTiming] = []
    assistant = await api.create_assistant(session, root, f"bench/{model}")
    body = orjson.dumps({"assistant_id": assistant, "stream": True})
    # One warm-up each (connections, first-call costs), then alternate.
    for rep in range(reps + 1):
        raise_if_cancelled()
        thread = await api.create_thread(session, root, ["hello"])
        timing = await read_run_stream(session, f"{root}/threads/{thread}/runs", body)
        if timing.error:
            raise RuntimeError(f"streamed run failed: {timing.error}")
        reference = await direct_sdk_stream(client, model)
        if rep:
            mine.append(timing)
            direct.append(reference)
    return mine, direct


def _ttft_row(
    measure: str,
    mine: Sequence[StreamTiming],
    direct: Sequence[StreamTiming],
    max_added_ms: float | None = None,
) -> Row:
    """Median time to first token beside the SDK direct's; judged when given a limit."""
    ttft, ttft_direct = _median([t.ttft for t in mine]), _median([t.ttft for t in direct])
    added_ms = (ttft - ttft_direct) * 1000.0
    if max_added_ms is None:
        target, met = "—", None
    else:
        target, met = f"+≤ {max_added_ms:g} ms", added_ms <= max_added_ms
    return Row(
        SECTION,
        measure,
        ms(ttft),
        ms(ttft_direct) + " (SDK direct)",
        f"{ratio(ttft, ttft_direct)} ({added_ms:+.2f} ms)",
        target,
        met,
    )


def _rows(
    tokens: int, note: str, mine: Sequence[StreamTiming], direct: Sequence[StreamTiming]
) -> list[Row]:
    rate = _median([t.tokens_per_second for t in mine])
    rate_direct = _median([t.tokens_per_second for t in direct])
    pieces = _median([t.pieces for t in mine])
    pieces_direct = _median([t.pieces for t in direct])
    counted = min(t.tokens for t in mine) if mine else 0
    return [
        Row(
            SECTION,
            f"tokens/s, request to last token ({note}, {tokens:,} tokens)",
            f"{rate:,.0f}",
            f"{rate_direct:,.0f} (SDK direct)",
            ratio(rate, rate_direct),
            f"≥ {MIN_TOKEN_RATE_SHARE:.2f}x",
            rate >= MIN_TOKEN_RATE_SHARE * rate_direct and counted == tokens,
        ),
        Row(
            SECTION,
            "text-bearing events received (delta events / SDK chunks)",
            f"{pieces:,.0f}",
            f"{pieces_direct:,.0f}",
            ratio(pieces, pieces_direct),
        ),
    ]
