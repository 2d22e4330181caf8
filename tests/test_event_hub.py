"""A run's event log and its watchers (`engine.events.RunEventHub`), in one event loop."""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import weakref
from collections.abc import Iterator

from compat_core.engine.events import COMPACT_EVERY, EVENT_BYTES, RunEventHub
from compat_core.v1 import messages_pb2, runs_pb2


def _piece(text: str) -> runs_pb2.RunEvent:
    event = runs_pb2.RunEvent()
    delta = event.thread_message_delta
    delta.id = "msg_1"
    delta.content.add().part.text.value = text
    return event


async def _watch(hub: RunEventHub, run_id: str, seen: list[str]) -> None:
    async for batch in hub.follow_batches(run_id):
        for event in batch:
            kind = event.WhichOneof("event") or ""
            if kind == "thread_message_delta":
                seen.append(event.thread_message_delta.content[0].part.text.value)
            else:
                seen.append(kind)


async def _waiters_after_a_turn(hub: RunEventHub, run_id: str) -> int:
    """How many watchers wait for the run's next event once the loop has turned: watchers
    started before it run up to their wait in that turn, in order (no time involved)."""
    await asyncio.sleep(0)
    return len(hub._logs[run_id].waiters)


async def test_every_waiting_watcher_gets_each_event_and_the_end() -> None:
    hub = RunEventHub()
    hub.open("run_1", 0)
    seen: list[list[str]] = [[], [], []]
    watchers = [asyncio.ensure_future(_watch(hub, "run_1", s)) for s in seen]
    assert await _waiters_after_a_turn(hub, "run_1") == 3
    hub.publish("run_1", _piece("Hello"))
    hub.publish("run_1", _piece(" world"))
    hub.publish("run_1", runs_pb2.RunEvent(thread_run_completed=runs_pb2.Run(id="run_1")))
    await asyncio.wait_for(asyncio.gather(*watchers), 5)
    for each in seen:
        assert "".join(each[:-2]) == "Hello world"
        assert each[-2:] == ["thread_run_completed", "done"]
    assert hub._logs["run_1"].waiters == []


async def test_a_watcher_that_leaves_while_waiting_is_not_kept() -> None:
    hub = RunEventHub()
    hub.open("run_2", 0)
    staying: list[str] = []
    leaving = asyncio.ensure_future(_watch(hub, "run_2", []))
    stays = asyncio.ensure_future(_watch(hub, "run_2", staying))
    assert await _waiters_after_a_turn(hub, "run_2") == 2
    leaving.cancel()
    await asyncio.gather(leaving, return_exceptions=True)
    assert len(hub._logs["run_2"].waiters) == 1
    hub.publish("run_2", _piece("still here"))
    hub.publish(
        "run_2",
        runs_pb2.RunEvent(
            thread_message_completed=messages_pb2.Message(id="msg_1"),
        ),
    )
    hub.publish("run_2", runs_pb2.RunEvent(thread_run_completed=runs_pb2.Run(id="run_2")))
    await asyncio.wait_for(stays, 5)
    assert staying == ["still here", "thread_message_completed", "thread_run_completed", "done"]


# Memory: text pieces merged, finished logs within a byte budget.


def _message_events(message_id: str, pieces: list[str]) -> Iterator[runs_pb2.RunEvent]:
    """A message's events as the engine publishes them (one at a time): created, pieces,
    completed."""
    yield runs_pb2.RunEvent(thread_message_created=messages_pb2.Message(id=message_id))
    for text in pieces:
        event = _piece(text)
        event.thread_message_delta.id = message_id
        yield event
    yield runs_pb2.RunEvent(thread_message_completed=messages_pb2.Message(id=message_id))


def _publish_run(
    hub: RunEventHub, run_id: str, pieces: int, keep: bool = True
) -> list[runs_pb2.RunEvent]:
    """A run of two replies, `pieces` pieces in all, then its end; what was published (a
    copy of each event, unless not `keep`)."""
    hub.open(run_id, 0)
    first = [f"a{n} " for n in range(pieces // 3)]
    second = [f"b{n}é " for n in range(pieces - len(first))]
    events = itertools.chain(
        [runs_pb2.RunEvent(thread_run_step_created=runs_pb2.RunStep(id="step_1"))],
        _message_events("msg_a", first),
        _message_events("msg_b", second),
        [runs_pb2.RunEvent(thread_run_completed=runs_pb2.Run(id=run_id))],
    )
    published = []
    for event in events:
        hub.publish(run_id, event)
        if keep:
            published.append(runs_pb2.RunEvent())
            published[-1].CopyFrom(event)
    return published


def _told(events: list[runs_pb2.RunEvent]) -> list[tuple[str, str]]:
    """What a reader learns from events: each kind in order, with the text of a run of
    pieces of one message joined (however the pieces were split into events)."""
    told: list[tuple[str, str]] = []
    for event in events:
        kind = event.WhichOneof("event") or ""
        if kind == "thread_message_delta":
            delta = event.thread_message_delta
            text = delta.content[0].part.text.value
            if told and told[-1][0] == f"delta {delta.id}":
                told[-1] = (told[-1][0], told[-1][1] + text)
            else:
                told.append((f"delta {delta.id}", text))
        else:
            told.append((kind, ""))
    return told


async def _read(hub: RunEventHub, run_id: str, after: int) -> list[runs_pb2.RunEvent]:
    read: list[runs_pb2.RunEvent] = []
    async for batch in hub.follow_batches(run_id, after):
        read.extend(batch)
    return read


async def test_a_late_watcher_from_any_sequence_reads_exactly_what_followed_it() -> None:
    hub = RunEventHub()
    published = _publish_run(hub, "run_3", 300)
    last = published[-1].sequence
    for after in range(last):
        read = await _read(hub, "run_3", after)
        expected = [e for e in published if e.sequence > after]
        assert _told(read) == [*_told(expected), ("done", "")], after
        assert [e.sequence for e in read][-2:] == [last, last]


async def test_a_watcher_reading_while_pieces_are_merged_misses_nothing() -> None:
    hub = RunEventHub()
    hub.open("run_4", 0)
    pieces = [f"p{n} " for n in range(1000)]
    seen: list[runs_pb2.RunEvent] = []
    reading = asyncio.ensure_future(_collect(hub, "run_4", seen))
    await asyncio.sleep(0)
    for n, event in enumerate(_message_events("msg_1", pieces)):
        hub.publish("run_4", event)
        if n % 7 == 0:
            # The watcher reads every few events; merges happen every 64, in between.
            await asyncio.sleep(0)
    hub.publish("run_4", runs_pb2.RunEvent(thread_run_completed=runs_pb2.Run(id="run_4")))
    await asyncio.wait_for(reading, 5)
    assert _told(seen) == [
        ("thread_message_created", ""),
        ("delta msg_1", "".join(pieces)),
        ("thread_message_completed", ""),
        ("thread_run_completed", ""),
        ("done", ""),
    ]


async def _collect(hub: RunEventHub, run_id: str, seen: list[runs_pb2.RunEvent]) -> None:
    seen.extend(await _read(hub, run_id, 0))


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def test_a_long_reply_holds_about_its_text_not_an_event_per_piece() -> None:
    hub = RunEventHub()
    pieces = 40_000
    gc.collect()
    before = _resident_bytes()
    _publish_run(hub, "run_5", pieces, keep=False)
    gc.collect()
    grown = _resident_bytes() - before
    assert hub.has_log("run_5")
    # Each piece kept as its event held about 1 KB: 40 MB here. Its text is 6 bytes.
    assert grown < pieces * 100, f"{grown / pieces:.0f} bytes per piece"
    # The hub's estimate covers the text and its offsets, and is not far off.
    assert 6 * pieces < hub.bytes < 40 * pieces


async def test_finished_logs_past_the_byte_budget_go_oldest_first() -> None:
    one_run = RunEventHub()
    _publish_run(one_run, "run_x", 2000, keep=False)
    # Room for two finished logs beside a running one's events before they are merged.
    budget = 2 * one_run.bytes + COMPACT_EVERY * EVENT_BYTES

    hub = RunEventHub(max_bytes=budget)
    for n in range(6):
        _publish_run(hub, f"run_{n}", 2000, keep=False)
        assert hub.bytes <= budget
    assert [hub.has_log(f"run_{n}") for n in range(6)] == [False] * 4 + [True] * 2
    assert hub.bytes == 2 * one_run.bytes
    # The newest still serve a late watcher in full.
    read = await _read(hub, "run_4", 0)
    assert _told(read)[-2:] == [("thread_run_completed", ""), ("done", "")]
    assert ("delta msg_b", "".join(f"b{n}é " for n in range(2000 - 2000 // 3))) in _told(read)


async def test_a_log_past_the_budget_is_freed_at_once() -> None:
    hub = RunEventHub(max_bytes=0)
    hub.open("run_7", 0)
    log = weakref.ref(hub._logs["run_7"])
    _publish_run(hub, "run_7", 100, keep=False)
    assert not hub.has_log("run_7")
    gc.collect()
    # Not kept until its retention time ends by anything (its timer, say).
    assert log() is None


async def test_a_running_run_keeps_its_log_whatever_the_budget() -> None:
    hub = RunEventHub(max_bytes=0)
    _publish_run(hub, "run_done", 100)
    assert not hub.has_log("run_done")
    hub.open("run_live", 0)
    for event in _message_events("msg_1", ["x"] * 500):
        hub.publish("run_live", event)
    assert hub.has_log("run_live")
    hub.publish("run_live", runs_pb2.RunEvent(thread_run_completed=runs_pb2.Run(id="run_live")))
    assert not hub.has_log("run_live")
    assert hub.bytes == 0


async def test_a_stream_that_subscribed_as_the_run_started_reads_all_of_a_dropped_log() -> None:
    hub = RunEventHub(max_bytes=0)
    hub.open("run_6", 0)
    # As a streaming create does: subscribe, and read only once the run may have ended.
    stream = hub.follow_batches("run_6")
    published = _publish_run(hub, "run_6", 200)
    assert not hub.has_log("run_6")
    read = [event async for batch in stream for event in batch]
    assert _told(read) == [*_told(published), ("done", "")]
