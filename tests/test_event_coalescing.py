"""Merging of queued text deltas for a reader that fell behind (`engine.events.coalesce`)."""

from __future__ import annotations

from compat_core.engine.events import coalesce
from compat_core.v1 import messages_pb2, runs_pb2


def _delta(sequence: int, message_id: str, text: str, index: int = 0) -> runs_pb2.RunEvent:
    return runs_pb2.RunEvent(
        sequence=sequence,
        thread_message_delta=runs_pb2.MessageDelta(
            id=message_id,
            content=[
                runs_pb2.MessageContentDelta(
                    index=index,
                    part=messages_pb2.MessageContent(text=messages_pb2.TextContent(value=text)),
                )
            ],
        ),
    )


def _texts(events: list[runs_pb2.RunEvent]) -> list[tuple[int, str]]:
    return [
        (e.sequence, e.thread_message_delta.content[0].part.text.value)
        if e.HasField("thread_message_delta")
        else (e.sequence, e.WhichOneof("event") or "")
        for e in events
    ]


def test_consecutive_pieces_of_one_part_become_one_delta_with_the_last_sequence() -> None:
    step = runs_pb2.RunEvent(sequence=1, thread_run_step_created=runs_pb2.RunStep(id="step_1"))
    events = [step, *(_delta(n, "msg_1", f"p{n} ") for n in range(2, 6))]
    assert _texts(coalesce(events)) == [(1, "thread_run_step_created"), (5, "p2 p3 p4 p5 ")]


def test_pieces_of_other_parts_or_messages_or_after_another_event_stay_apart() -> None:
    events = [
        _delta(1, "msg_1", "a"),
        _delta(2, "msg_1", "b", index=1),
        _delta(3, "msg_2", "c"),
        _delta(4, "msg_2", "d"),
        runs_pb2.RunEvent(sequence=5, thread_message_completed=messages_pb2.Message(id="msg_2")),
        _delta(6, "msg_2", "e"),
    ]
    assert _texts(coalesce(events)) == [
        (1, "a"),
        (2, "b"),
        (4, "cd"),
        (5, "thread_message_completed"),
        (6, "e"),
    ]


def test_the_queued_events_themselves_are_not_changed() -> None:
    events = [_delta(1, "msg_1", "a"), _delta(2, "msg_1", "b")]
    coalesce(events)
    assert _texts(events) == [(1, "a"), (2, "b")]
