"""The assistant message one model call is writing: its text as it grows, annotated by the
run's hosted tools, announced piece by piece, and ended once.

Pieces are announced as they arrive but joined into the stored message only when it is read
(`so_far`): a reply of a thousand pieces is copied once, not a thousand times.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from compat_core.engine.events import RunEventHub
from compat_core.engine.hosted import ReplyAnnotator
from compat_core.engine.step_events import publish
from compat_core.v1 import common_pb2, messages_pb2, runs_pb2


class Reply(NamedTuple):
    """An assistant message the model writes, and the run step that creates it."""

    message: messages_pb2.Message
    step: runs_pb2.RunStep


class OpenReply:
    """A reply from the moment it is announced until the run stores its end."""

    def __init__(
        self,
        hub: RunEventHub,
        run_id: str,
        reply: Reply,
        annotator: ReplyAnnotator | None,
    ) -> None:
        self._hub = hub
        self._run_id = run_id
        self.message, self.step = reply
        self._annotator = annotator
        # Text not yet in `message` (joined once, not copied per piece).
        self._written: list[str] = []

    def announce(self) -> None:
        """Announce the reply's step and message, and the parts it begins with (the images of
        the round before), as OpenAI streams a new message: without its text part."""
        message = self.message
        self._publish("thread_run_step_created", self.step)
        self._publish("thread_run_step_in_progress", self.step)
        announced = _without_content(message)
        self._publish("thread_message_created", announced)
        self._publish("thread_message_in_progress", announced)
        if len(message.content) > 1:
            parts = runs_pb2.RunEvent()
            parts.thread_message_delta.id = message.id
            for index, part in enumerate(message.content[:-1]):
                parts.thread_message_delta.content.add(index=index, part=part)
            self._hub.publish(self._run_id, parts)

    @property
    def is_open(self) -> bool:
        return self.message.status == messages_pb2.MESSAGE_STATUS_IN_PROGRESS

    def feed(self, text: str) -> bool:
        """Add the model's next piece, as annotated; False when nothing could be sent yet (the
        annotator holds it back)."""
        annotations: Sequence[messages_pb2.Annotation] = ()
        if self._annotator is not None:
            text, annotations = self._annotator.feed(text)
        if not text and not annotations:
            return False
        self._write(text, annotations)
        return True

    def _write(self, text: str, annotations: Sequence[messages_pb2.Annotation] = ()) -> None:
        """Add a piece to the reply and announce it, with the annotations that lie in it
        (kept in the reply without their delta `index`)."""
        self._written.append(text)
        # Built in place rather than copied into an event, as `publish` does: once per piece.
        event = runs_pb2.RunEvent()
        delta = event.thread_message_delta
        delta.id = self.message.id
        # The text is the reply's last part: the images of the round before come first.
        last = len(self.message.content) - 1
        part = delta.content.add(index=last).part.text
        part.value = text
        if annotations:
            part.annotations.extend(annotations)
            kept = self.message.content[last].text.annotations
            for annotation in annotations:
                kept.append(annotation)
                kept[-1].ClearField("index")
        self._hub.publish(self._run_id, event)

    def release_held(self) -> None:
        """The reply ends: write what the annotator still holds back (an unfinished marker)."""
        if self._annotator is None or not self.is_open:
            return
        text, annotations = self._annotator.flush()
        if text or annotations:
            self._write(text, annotations)

    def so_far(self) -> messages_pb2.Message:
        """The reply with all its text."""
        if self._written:
            self.message.content[-1].text.value += "".join(self._written)
            self._written.clear()
        return self.message

    def ended(self, now: int, truncated: bool, usage: common_pb2.Usage | None) -> Reply:
        """The reply as it ends: copies, so that it stays open here until that is stored (a
        store that refuses leaves it to be ended otherwise, as incomplete)."""
        self.release_held()
        message, step = messages_pb2.Message(), runs_pb2.RunStep()
        message.CopyFrom(self.so_far())
        step.CopyFrom(self.step)
        if truncated:
            message.status = messages_pb2.MESSAGE_STATUS_INCOMPLETE
            message.incomplete_at = now
            message.incomplete_details.reason = messages_pb2.MESSAGE_INCOMPLETE_REASON_MAX_TOKENS
        else:
            message.status = messages_pb2.MESSAGE_STATUS_COMPLETED
            message.completed_at = now
        step.status = runs_pb2.RUN_STEP_STATUS_COMPLETED
        step.completed_at = now
        if usage is not None:
            step.usage.CopyFrom(usage)
        return Reply(message, step)

    def take_ended(self, ended: Reply, truncated: bool) -> None:
        """Take the stored end of the reply as the reply's state, and announce it."""
        self.message.CopyFrom(ended.message)
        self.step.CopyFrom(ended.step)
        self._publish(
            "thread_message_incomplete" if truncated else "thread_message_completed",
            self.message,
        )
        self._publish("thread_run_step_completed", self.step)

    def interrupt(
        self, now: int, reason: messages_pb2.MessageIncompleteReason.ValueType
    ) -> messages_pb2.Message:
        """Keep what was written of the reply as `incomplete` (the run ends otherwise); the
        message, to store and then announce."""
        self.release_held()
        message = self.so_far()
        message.status = messages_pb2.MESSAGE_STATUS_INCOMPLETE
        message.incomplete_at = now
        message.incomplete_details.reason = reason
        return message

    def _publish(self, name: str, payload: object) -> None:
        publish(self._hub, self._run_id, name, payload)


def _without_content(message: messages_pb2.Message) -> messages_pb2.Message:
    """A reply as OpenAI announces it: no content yet, whatever is stored.

    The stored reply holds its (empty) text part from the start: the pieces are appended to
    it, and a read mid-stream finds it. The stream announces none, and its first delta adds
    the part: both SDKs' helpers report a text part as created when a delta adds one, never
    for a part the message came with.
    """
    announced = messages_pb2.Message()
    announced.CopyFrom(message)
    announced.ClearField("content")
    return announced
