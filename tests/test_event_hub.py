"""A run's event log and its watchers (`engine.events.RunEventHub`), in one event loop."""

from __future__ import annotations

import asyncio

from compat_core.engine.events import RunEventHub
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
