"""Files over HTTP with the official SDK: multipart upload, metadata, content, list, delete."""

from __future__ import annotations

import os

import openai
import pytest
from harness import Clock, MakeClient, MakeServer, assert_api_error

MIB = 1024 * 1024


def test_upload_retrieve_download_delete(client: openai.OpenAI) -> None:
    data = b"hello, files\n" * 10
    clock = Clock()
    uploaded = client.files.create(file=("a.txt", data), purpose="assistants")
    assert uploaded.id.startswith("file-")
    assert len(uploaded.id) == len("file-") + 24
    assert uploaded.object == "file"
    assert uploaded.bytes == len(data)
    assert uploaded.filename == "a.txt"
    assert uploaded.purpose == "assistants"
    assert uploaded.status == "processed"
    clock.check(uploaded.created_at)

    assert client.files.retrieve(uploaded.id).model_dump() == uploaded.model_dump()
    assert client.files.content(uploaded.id).read() == data

    deleted = client.files.delete(uploaded.id)
    assert deleted.id == uploaded.id
    assert deleted.deleted is True
    assert deleted.object == "file"
    with pytest.raises(openai.NotFoundError) as info:
        client.files.retrieve(uploaded.id)
    assert_api_error(info.value, 404, "invalid_request_error")
    with pytest.raises(openai.NotFoundError):
        client.files.content(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        client.files.delete(uploaded.id)


def test_content_is_served_as_bytes(client: openai.OpenAI) -> None:
    data = bytes(range(256)) * 4
    uploaded = client.files.create(file=("table.bin", data), purpose="assistants")
    response = client.files.with_raw_response.content(uploaded.id)
    assert response.http_response.status_code == 200
    assert not response.headers.get("content-type", "").startswith("application/json")
    assert response.http_response.read() == data


def test_multi_mib_upload_round_trips_exactly(client: openai.OpenAI) -> None:
    data = os.urandom(5 * MIB + 123)
    uploaded = client.files.create(file=("big.bin", data), purpose="assistants")
    assert uploaded.bytes == len(data)
    assert client.files.content(uploaded.id).read() == data


def test_empty_file(client: openai.OpenAI) -> None:
    uploaded = client.files.create(file=("empty.txt", b""), purpose="assistants")
    assert uploaded.bytes == 0
    assert client.files.content(uploaded.id).read() == b""


def test_unicode_filename_is_kept(client: openai.OpenAI) -> None:
    uploaded = client.files.create(file=("résumé 2024.txt", b"cv"), purpose="assistants")
    assert uploaded.filename == "résumé 2024.txt"
    assert client.files.retrieve(uploaded.id).filename == "résumé 2024.txt"


def test_list_filters_by_purpose(client: openai.OpenAI) -> None:
    for_assistants = client.files.create(file=("a.txt", b"a"), purpose="assistants")
    for_vision = client.files.create(file=("v.png", b"\x89PNG fake"), purpose="vision")
    assistant_ids = [f.id for f in client.files.list(purpose="assistants")]
    vision_ids = [f.id for f in client.files.list(purpose="vision")]
    all_ids = [f.id for f in client.files.list()]
    assert for_assistants.id in assistant_ids
    assert for_assistants.id not in vision_ids
    assert for_vision.id in vision_ids
    assert for_vision.id not in assistant_ids
    assert {for_assistants.id, for_vision.id} <= set(all_ids)
    assert all(f.purpose == "vision" for f in client.files.list(purpose="vision"))


def test_unknown_purpose_is_rejected(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.files.create(file=("a.txt", b"a"), purpose="not-a-purpose")  # type: ignore[arg-type]
    assert_api_error(info.value, 400, "invalid_request_error", param="purpose")


def test_files_list_pages_on_a_fresh_server(
    make_server: MakeServer, make_client: MakeClient
) -> None:
    client = make_client(make_server())
    ids = [client.files.create(file=(f"f{i}.txt", b"x"), purpose="assistants").id for i in range(5)]
    newest_first = client.files.list()
    assert [f.id for f in newest_first.data] == ids[::-1], "desc is the default order"
    assert newest_first.has_more is False
    page = client.files.list(order="asc", limit=2)
    assert [f.id for f in page.data] == ids[:2]
    assert page.has_more is True
    page = client.files.list(order="asc", limit=2, after=ids[1])
    assert [f.id for f in page.data] == ids[2:4]
    assert page.has_more is True
    page = client.files.list(order="asc", limit=2, after=ids[3])
    assert [f.id for f in page.data] == ids[4:]
    assert page.has_more is False
    assert [f.id for f in client.files.list(order="asc", limit=2)] == ids
    many = client.files.list(limit=101)  # the files list allows more than 100 a page
    assert len(many.data) == 5
