"""Section 6, event log: the memory a finished streamed run's event log holds in the core.

Each figure comes from a process of its own (`python -m bench.event_log MODE RUNS TOKENS`)
that publishes `RUNS` streamed runs of `TOKENS` tokens each, built as the engine builds them
(one `RunEvent` per token of `upstream.TOKEN`), ends them, and reports how much its resident
set grew while their logs are kept for late watchers. Ours: the core's `RunEventHub`
(pieces merged into text, and once with a small `COMPAT_EVENT_LOG_MAX_BYTES` to show the
bound). Baseline, in the same run: every published event kept as it was published, which is
what the hub held before (about 1 KB per token for two minutes: 1.9 GB after 50 long runs).
The hub's own estimate of its bytes, on which the budget acts, is shown beside the
measurement.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
from typing import Final

from bench import upstream
from bench.config import Context
from bench.procs import child_env, raise_if_cancelled, stop_process, track, untrack
from bench.report import Row, ratio

SECTION: Final = "6 event log"
CHILD_TIMEOUT: Final = 300.0
# The budget of the bounded figure: well below what the runs hold, so that it must act.
SMALL_BUDGET: Final = 1024 * 1024
MODES: Final = ("events", "hub", "budget")
WARM_UP_RUNS: Final = 3


async def _measure(mode: str, runs: int, tokens: int) -> dict[str, float]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.event_log",
        mode,
        str(runs),
        str(tokens),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        env=child_env(),
    )
    track(process)
    try:
        out, _ = await asyncio.wait_for(process.communicate(), CHILD_TIMEOUT)
    finally:
        await stop_process(process)
        untrack(process)
    if process.returncode != 0:
        raise RuntimeError(f"event log child ({mode}) exited with {process.returncode}")
    result: dict[str, float] = json.loads(out)
    return result


def _kib(size: float) -> str:
    return f"{size / 1024:,.0f} KiB"


async def run(ctx: Context) -> list[Row]:
    runs, tokens = ctx.config.event_log_runs, ctx.config.event_log_tokens
    measured: dict[str, dict[str, float]] = {}
    for mode in MODES:
        raise_if_cancelled()
        measured[mode] = await _measure(mode, runs, tokens)
    ours, baseline, bounded = measured["hub"], measured["events"], measured["budget"]
    count = runs * tokens
    workload = f"{runs} runs of {tokens:,} tokens, finished"
    return [
        Row(
            SECTION,
            f"bytes held per streamed token ({workload})",
            f"{ours['grown'] / count:,.1f}",
            f"{baseline['grown'] / count:,.1f} (every event kept)",
            ratio(ours["grown"], baseline["grown"], 3),
        ),
        Row(
            SECTION,
            f"held after {workload}",
            _kib(ours["grown"]),
            _kib(baseline["grown"]) + " (every event kept)",
            ratio(ours["grown"], baseline["grown"], 3),
        ),
        Row(
            SECTION,
            "the hub's estimate of what these runs hold, against the measurement",
            _kib(ours["estimated_grown"]),
            _kib(ours["grown"]) + " (measured)",
            ratio(ours["estimated_grown"], ours["grown"]),
        ),
        Row(
            SECTION,
            f"held after {workload}, COMPAT_EVENT_LOG_MAX_BYTES={SMALL_BUDGET}",
            _kib(bounded["grown"]),
            _kib(SMALL_BUDGET) + " (the budget)",
            ratio(bounded["grown"], SMALL_BUDGET),
            "hub's estimate ≤ budget",
            bounded["estimated"] <= SMALL_BUDGET,
        ),
    ]


# The child's side.


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


async def _publish(mode: str, runs: int, tokens: int) -> dict[str, float]:
    from compat_core.engine.events import RunEventHub
    from compat_core.engine.step_events import publish
    from compat_core.v1 import messages_pb2, runs_pb2

    kept: list[runs_pb2.RunEvent] = []
    budgets = {"events": 0, "hub": sys.maxsize, "budget": SMALL_BUDGET}
    hub = RunEventHub(budgets[mode])
    if mode == "events":
        # Each event as published, kept; the hub itself keeps no finished log.
        hub.sink = lambda _run_id, event: kept.append(event)

    def one_run(index: int) -> None:
        run_id = f"run_{index:024d}"
        message_id = f"msg_{index:024d}"
        run = runs_pb2.Run(id=run_id, thread_id=f"thread_{index:024d}", model="bench/t")
        hub.open(run_id, 0)
        publish(hub, run_id, "thread_run_created", run)
        publish(hub, run_id, "thread_run_in_progress", run)
        message = messages_pb2.Message(id=message_id, thread_id=run.thread_id, run_id=run_id)
        publish(hub, run_id, "thread_message_created", message)
        for _ in range(tokens):
            # As the engine builds a piece's event (`RunExecution._append_text`).
            event = runs_pb2.RunEvent()
            delta = event.thread_message_delta
            delta.id = message_id
            delta.content.add().part.text.value = upstream.TOKEN
            hub.publish(run_id, event)
        message.content.add().text.value = upstream.TOKEN * tokens
        publish(hub, run_id, "thread_message_completed", message)
        publish(hub, run_id, "thread_run_completed", run)

    # A few runs first, so that what the first runs need once (and what start-up frees as it
    # settles, about 2 MB) is not counted.
    for index in range(WARM_UP_RUNS):
        one_run(runs + index)
    kept.clear()
    gc.collect()
    before, estimated_before = _resident_bytes(), hub.bytes
    for index in range(runs):
        one_run(index)
    gc.collect()
    grown = _resident_bytes() - before
    # What the budget acts on: all the hub holds, and the part these runs added.
    return {
        "grown": grown,
        "estimated": hub.bytes,
        "estimated_grown": hub.bytes - estimated_before,
        "kept": len(kept),
    }


def main() -> None:
    mode, runs, tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if mode not in MODES:
        raise SystemExit(f"mode must be one of {', '.join(MODES)}")
    print(json.dumps(asyncio.run(_publish(mode, runs, tokens))))


if __name__ == "__main__":
    main()
