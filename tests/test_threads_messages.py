"""Threads and their messages over HTTP with the official SDK, including exact paging."""

from __future__ import annotations

from typing import Literal

import openai
import pytest
from harness import Clock, assert_api_error
from openai.types.beta.threads import Message

Order = Literal["asc", "desc"]


def text_of(message: Message) -> str:
    """The text of a message with one text part."""
    assert len(message.content) == 1
    part = message.content[0]
    assert part.type == "text"
    return part.text.value


# Threads


def test_thread_create_retrieve_update_delete(client: openai.OpenAI, tag: str) -> None:
    clock = Clock()
    thread = client.beta.threads.create(metadata={"tag": tag})
    assert thread.id.startswith("thread_")
    assert len(thread.id) == len("thread_") + 24
    assert thread.object == "thread"
    clock.check(thread.created_at)
    assert thread.metadata == {"tag": tag}

    assert client.beta.threads.retrieve(thread.id).model_dump() == thread.model_dump()

    updated = client.beta.threads.update(thread.id, metadata={"tag": tag, "step": "2"})
    assert updated.id == thread.id
    assert updated.created_at == thread.created_at
    assert updated.metadata == {"tag": tag, "step": "2"}
    assert client.beta.threads.retrieve(thread.id).metadata == {"tag": tag, "step": "2"}

    deleted = client.beta.threads.delete(thread.id)
    assert deleted.id == thread.id
    assert deleted.deleted is True
    assert deleted.object == "thread.deleted"
    with pytest.raises(openai.NotFoundError) as info:
        client.beta.threads.retrieve(thread.id)
    assert_api_error(info.value, 404, "invalid_request_error")


def test_bare_thread_defaults(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create()
    assert thread.metadata == {}
    assert client.beta.threads.messages.list(thread.id).data == []


def test_deleting_a_thread_deletes_its_messages(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    message_id = client.beta.threads.messages.list(thread.id).data[0].id
    client.beta.threads.delete(thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.list(thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.retrieve(message_id, thread_id=thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.create(thread.id, role="user", content="again")


def test_thread_with_initial_messages_keeps_their_order(client: openai.OpenAI) -> None:
    texts = [f"initial {i}" for i in range(5)]
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user" if i % 2 == 0 else "assistant",
                "content": text,
                "metadata": {"i": str(i)},
            }
            for i, text in enumerate(texts)
        ]
    )
    listed = client.beta.threads.messages.list(thread.id, order="asc").data
    assert [text_of(m) for m in listed] == texts
    assert [m.role for m in listed] == ["user", "assistant", "user", "assistant", "user"]
    assert [m.metadata for m in listed] == [{"i": str(i)} for i in range(5)]
    assert all(m.thread_id == thread.id for m in listed)


# Messages


def test_message_create_retrieve_update_delete(client: openai.OpenAI, tag: str) -> None:
    thread = client.beta.threads.create()
    clock = Clock()
    message = client.beta.threads.messages.create(
        thread.id, role="user", content="How does AI work?", metadata={"tag": tag}
    )
    assert message.id.startswith("msg_")
    assert len(message.id) == len("msg_") + 24
    assert message.object == "thread.message"
    clock.check(message.created_at)
    assert message.thread_id == thread.id
    assert message.role == "user"
    assert text_of(message) == "How does AI work?"
    part = message.content[0]
    assert part.type == "text"
    assert part.text.annotations == []
    assert message.assistant_id is None
    assert message.run_id is None
    assert message.attachments == []
    assert message.metadata == {"tag": tag}

    fetched = client.beta.threads.messages.retrieve(message.id, thread_id=thread.id)
    assert fetched.model_dump() == message.model_dump()

    updated = client.beta.threads.messages.update(
        message.id, thread_id=thread.id, metadata={"tag": tag, "seen": "yes"}
    )
    assert updated.metadata == {"tag": tag, "seen": "yes"}
    assert text_of(updated) == "How does AI work?"
    assert (
        client.beta.threads.messages.retrieve(message.id, thread_id=thread.id).metadata
        == updated.metadata
    )

    deleted = client.beta.threads.messages.delete(message.id, thread_id=thread.id)
    assert deleted.id == message.id
    assert deleted.deleted is True
    assert deleted.object == "thread.message.deleted"
    with pytest.raises(openai.NotFoundError) as info:
        client.beta.threads.messages.retrieve(message.id, thread_id=thread.id)
    assert_api_error(info.value, 404, "invalid_request_error")
    assert client.beta.threads.messages.list(thread.id).data == []


def test_message_content_parts_round_trip(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create()
    message = client.beta.threads.messages.create(
        thread.id,
        role="user",
        content=[
            {"type": "text", "text": "Look at this:"},
            {
                "type": "image_url",
                "image_url": {"url": "https://example.com/cat.png", "detail": "low"},
            },
            {"type": "text", "text": "and this 🐈"},
        ],
    )
    parts = message.content
    assert [p.type for p in parts] == ["text", "image_url", "text"]
    first, image, last = parts
    assert first.type == "text"
    assert first.text.value == "Look at this:"
    assert image.type == "image_url"
    assert image.image_url.url == "https://example.com/cat.png"
    assert image.image_url.detail == "low"
    assert last.type == "text"
    assert last.text.value == "and this 🐈"
    fetched = client.beta.threads.messages.retrieve(message.id, thread_id=thread.id)
    assert fetched.model_dump() == message.model_dump()


def test_assistant_role_message(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create()
    message = client.beta.threads.messages.create(thread.id, role="assistant", content="Hello!")
    assert message.role == "assistant"
    assert text_of(message) == "Hello!"


def test_message_belongs_to_its_thread(client: openai.OpenAI) -> None:
    home = client.beta.threads.create()
    other = client.beta.threads.create()
    message = client.beta.threads.messages.create(home.id, role="user", content="mine")
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.retrieve(message.id, thread_id=other.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.update(message.id, thread_id=other.id, metadata={"a": "b"})
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.delete(message.id, thread_id=other.id)
    assert client.beta.threads.messages.list(other.id).data == []
    assert client.beta.threads.messages.retrieve(message.id, thread_id=home.id).id == message.id


# Paging on a fresh thread, where the total is known.

TOTAL = 25


@pytest.fixture
def thread_of_25(client: openai.OpenAI) -> tuple[str, list[str]]:
    """A thread with TOTAL messages created one after another; their IDs oldest first."""
    thread = client.beta.threads.create()
    ids = [
        client.beta.threads.messages.create(thread.id, role="user", content=f"m{i}").id
        for i in range(TOTAL)
    ]
    return thread.id, ids


def test_list_orders_by_creation(
    client: openai.OpenAI, thread_of_25: tuple[str, list[str]]
) -> None:
    thread_id, ids = thread_of_25
    ascending = client.beta.threads.messages.list(thread_id, order="asc", limit=100)
    assert [m.id for m in ascending.data] == ids
    assert [text_of(m) for m in ascending.data] == [f"m{i}" for i in range(TOTAL)]
    assert ascending.has_more is False
    descending = client.beta.threads.messages.list(thread_id, limit=100)
    assert [m.id for m in descending.data] == ids[::-1], "desc is the default order"
    stamps = [m.created_at for m in ascending.data]
    assert stamps == sorted(stamps)


def test_default_page_is_20_newest(
    client: openai.OpenAI, thread_of_25: tuple[str, list[str]]
) -> None:
    thread_id, ids = thread_of_25
    page = client.beta.threads.messages.list(thread_id)
    assert [m.id for m in page.data] == ids[::-1][:20]
    assert page.has_more is True


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_paging_forward_with_after(
    client: openai.OpenAI, thread_of_25: tuple[str, list[str]], order: Order
) -> None:
    thread_id, ids = thread_of_25
    expected = ids if order == "asc" else ids[::-1]
    after: str | None = None
    for start in range(0, TOTAL, 7):
        if after is None:
            page = client.beta.threads.messages.list(thread_id, order=order, limit=7)
        else:
            page = client.beta.threads.messages.list(thread_id, order=order, limit=7, after=after)
        chunk = expected[start : start + 7]
        assert [m.id for m in page.data] == chunk, f"page starting at {start}"
        assert page.has_more is (start + 7 < TOTAL), f"has_more of page starting at {start}"
        body = page.model_dump()
        assert (body["first_id"], body["last_id"]) == (chunk[0], chunk[-1])
        after = chunk[-1]


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_paging_backward_with_before(
    client: openai.OpenAI, thread_of_25: tuple[str, list[str]], order: Order
) -> None:
    thread_id, ids = thread_of_25
    expected = ids if order == "asc" else ids[::-1]
    # Walk back from the end: each page is the `limit` objects closest to the cursor, still
    # in the requested order, and has_more says whether more lie before its first one.
    cursor = expected[-1]
    collected: list[str] = []
    pages = 0
    for _ in range(TOTAL):
        page = client.beta.threads.messages.list(thread_id, order=order, limit=7, before=cursor)
        pages += 1
        got = [m.id for m in page.data]
        end = expected.index(cursor)
        assert got == expected[max(0, end - 7) : end], f"page before {end}"
        assert page.has_more is (end - 7 > 0), f"has_more of the page before {end}"
        collected = got + collected
        if not page.has_more:
            break
        cursor = got[0]
    assert collected == expected[:-1]
    assert pages == 4


def test_has_more_is_exact_at_the_edges(
    client: openai.OpenAI, thread_of_25: tuple[str, list[str]]
) -> None:
    thread_id, ids = thread_of_25
    assert client.beta.threads.messages.list(thread_id, limit=TOTAL).has_more is False
    assert client.beta.threads.messages.list(thread_id, limit=TOTAL - 1).has_more is True
    last = client.beta.threads.messages.list(thread_id, order="asc", after=ids[-2], limit=1)
    assert [m.id for m in last.data] == [ids[-1]]
    assert last.has_more is False
    beyond = client.beta.threads.messages.list(thread_id, order="asc", after=ids[-1])
    assert beyond.data == []
    assert beyond.has_more is False
    first = client.beta.threads.messages.list(thread_id, order="desc", before=ids[-1])
    assert first.data == []
    assert first.has_more is False


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_auto_pagination_yields_each_once_in_order(
    client: openai.OpenAI, thread_of_25: tuple[str, list[str]], order: Order
) -> None:
    thread_id, ids = thread_of_25
    expected = ids if order == "asc" else ids[::-1]
    listing = client.beta.threads.messages.list(thread_id, limit=7, order=order)
    assert [m.id for m in listing] == expected
    assert [len(page.data) for page in listing.iter_pages()] == [7, 7, 7, 4]


def test_auto_pagination_default_order(
    client: openai.OpenAI, thread_of_25: tuple[str, list[str]]
) -> None:
    thread_id, ids = thread_of_25
    assert [m.id for m in client.beta.threads.messages.list(thread_id, limit=7)] == ids[::-1]


def test_deleted_message_leaves_the_pages(
    client: openai.OpenAI, thread_of_25: tuple[str, list[str]]
) -> None:
    thread_id, ids = thread_of_25
    client.beta.threads.messages.delete(ids[7], thread_id=thread_id)
    remaining = ids[:7] + ids[8:]
    assert [m.id for m in client.beta.threads.messages.list(thread_id, limit=5, order="asc")] == (
        remaining
    )


# References to files


def test_attachments_and_image_files_round_trip(client: openai.OpenAI) -> None:
    document = client.files.create(file=("notes.txt", b"notes"), purpose="assistants")
    image = client.files.create(file=("cat.png", b"\x89PNG not really"), purpose="vision")
    thread = client.beta.threads.create()
    message = client.beta.threads.messages.create(
        thread.id,
        role="user",
        content=[
            {"type": "text", "text": "see attached"},
            {"type": "image_file", "image_file": {"file_id": image.id, "detail": "high"}},
        ],
        attachments=[
            {"file_id": document.id, "tools": [{"type": "file_search"}]},
            {"file_id": image.id, "tools": [{"type": "code_interpreter"}]},
        ],
    )
    image_part = message.content[1]
    assert image_part.type == "image_file"
    assert image_part.image_file.file_id == image.id
    assert image_part.image_file.detail == "high"
    assert message.attachments is not None
    assert [a.file_id for a in message.attachments] == [document.id, image.id]
    assert [[t.type for t in a.tools or []] for a in message.attachments] == [
        ["file_search"],
        ["code_interpreter"],
    ]
    fetched = client.beta.threads.messages.retrieve(message.id, thread_id=thread.id)
    assert fetched.model_dump() == message.model_dump()


def test_references_to_unknown_files_are_refused(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create()
    with pytest.raises(openai.NotFoundError) as info:
        client.beta.threads.messages.create(
            thread.id,
            role="user",
            content="x",
            attachments=[{"file_id": "file-doesnotexist", "tools": [{"type": "file_search"}]}],
        )
    assert_api_error(info.value, 404, "invalid_request_error", param_prefix="attachments")
    with pytest.raises(openai.NotFoundError) as info:
        client.beta.threads.messages.create(
            thread.id,
            role="user",
            content=[{"type": "image_file", "image_file": {"file_id": "file-doesnotexist"}}],
        )
    assert_api_error(info.value, 404, "invalid_request_error", param_prefix="content")
    with pytest.raises(openai.NotFoundError) as info:
        client.beta.threads.create(
            tool_resources={"code_interpreter": {"file_ids": ["file-doesnotexist"]}}
        )
    assert_api_error(info.value, 404, "invalid_request_error", param_prefix="tool_resources")
    assert client.beta.threads.messages.list(thread.id).data == [], "nothing was stored"


def test_thread_tool_resources_round_trip(client: openai.OpenAI) -> None:
    uploaded = client.files.create(file=("data.csv", b"a,b\n1,2\n"), purpose="assistants")
    thread = client.beta.threads.create(
        tool_resources={"code_interpreter": {"file_ids": [uploaded.id]}}
    )
    assert thread.tool_resources is not None
    assert thread.tool_resources.code_interpreter is not None
    assert thread.tool_resources.code_interpreter.file_ids == [uploaded.id]
    assert client.beta.threads.retrieve(thread.id).model_dump() == thread.model_dump()
