"""The gRPC core through the generated stubs, and scenarios shared with the HTTP edge.

The shared scenarios run once per transport: the same steps and the same expectations over
the `openai` SDK (HTTP) and over the stubs (gRPC), since the edge promises to add nothing and
lose nothing on the way.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import grpc
import openai
import pytest
from google.protobuf import descriptor_pool, field_mask_pb2
from grpc_health.v1 import health_pb2
from harness import API_KEY, MakeGrpc
from harness.grpc_client import GrpcClient, bearer, rich_error
from harness.server import ServerThread

from compat_core.methods import MethodTable
from compat_core.v1 import (
    assistants_pb2,
    common_pb2,
    files_pb2,
    messages_pb2,
    models_pb2,
    runs_pb2,
    threads_pb2,
)

MODEL = "builtin/echo"
MIB = 1024 * 1024

# Transport adapters for the shared scenarios


class Missing(Exception):
    """The object is not there: HTTP 404 or gRPC NOT_FOUND."""


@dataclass(frozen=True)
class AssistantView:
    id: str
    created_at: int
    name: str | None
    model: str
    metadata: dict[str, str]
    temperature: float | None


@dataclass(frozen=True)
class FileView:
    id: str
    bytes: int
    filename: str
    purpose: str


class Transport(Protocol):
    name: str

    def create_assistant(
        self, *, name: str, metadata: dict[str, str], temperature: float
    ) -> AssistantView: ...
    def get_assistant(self, assistant_id: str) -> AssistantView: ...
    def update_assistant_metadata(
        self, assistant_id: str, metadata: dict[str, str]
    ) -> AssistantView: ...
    def delete_assistant(self, assistant_id: str) -> bool: ...
    def list_assistant_ids(self, *, after: str, limit: int) -> list[str]: ...
    def create_thread(self, metadata: dict[str, str]) -> str: ...
    def add_message(self, thread_id: str, text: str) -> str: ...
    def message_texts(self, thread_id: str, *, ascending: bool) -> list[tuple[str, str]]: ...
    def delete_thread(self, thread_id: str) -> bool: ...
    def upload(self, data: bytes, filename: str) -> FileView: ...
    def get_file(self, file_id: str) -> FileView: ...
    def download(self, file_id: str) -> bytes: ...
    def delete_file(self, file_id: str) -> bool: ...


class HttpTransport:
    name = "http"

    def __init__(self, client: openai.OpenAI) -> None:
        self.client = client

    @staticmethod
    def _view(a: openai.types.beta.Assistant) -> AssistantView:
        return AssistantView(
            a.id, a.created_at, a.name, a.model, dict(a.metadata or {}), a.temperature
        )

    def create_assistant(
        self, *, name: str, metadata: dict[str, str], temperature: float
    ) -> AssistantView:
        return self._view(
            self.client.beta.assistants.create(
                model=MODEL, name=name, metadata=metadata, temperature=temperature
            )
        )

    def get_assistant(self, assistant_id: str) -> AssistantView:
        try:
            return self._view(self.client.beta.assistants.retrieve(assistant_id))
        except openai.NotFoundError as exc:
            raise Missing(assistant_id) from exc

    def update_assistant_metadata(
        self, assistant_id: str, metadata: dict[str, str]
    ) -> AssistantView:
        return self._view(self.client.beta.assistants.update(assistant_id, metadata=metadata))

    def delete_assistant(self, assistant_id: str) -> bool:
        return self.client.beta.assistants.delete(assistant_id).deleted

    def list_assistant_ids(self, *, after: str, limit: int) -> list[str]:
        page = self.client.beta.assistants.list(order="asc", after=after, limit=limit)
        return [a.id for a in page.data]

    def create_thread(self, metadata: dict[str, str]) -> str:
        return self.client.beta.threads.create(metadata=metadata).id

    def add_message(self, thread_id: str, text: str) -> str:
        return self.client.beta.threads.messages.create(thread_id, role="user", content=text).id

    def message_texts(self, thread_id: str, *, ascending: bool) -> list[tuple[str, str]]:
        try:
            page = self.client.beta.threads.messages.list(
                thread_id, order="asc" if ascending else "desc", limit=100
            )
        except openai.NotFoundError as exc:
            raise Missing(thread_id) from exc
        texts: list[tuple[str, str]] = []
        for message in page.data:
            part = message.content[0]
            assert part.type == "text"
            texts.append((message.id, part.text.value))
        return texts

    def delete_thread(self, thread_id: str) -> bool:
        return self.client.beta.threads.delete(thread_id).deleted

    def upload(self, data: bytes, filename: str) -> FileView:
        f = self.client.files.create(file=(filename, data), purpose="assistants")
        return FileView(f.id, f.bytes, f.filename, f.purpose)

    def get_file(self, file_id: str) -> FileView:
        try:
            f = self.client.files.retrieve(file_id)
        except openai.NotFoundError as exc:
            raise Missing(file_id) from exc
        return FileView(f.id, f.bytes, f.filename, f.purpose)

    def download(self, file_id: str) -> bytes:
        return self.client.files.content(file_id).read()

    def delete_file(self, file_id: str) -> bool:
        return self.client.files.delete(file_id).deleted


def _missing_if_not_found(error: grpc.RpcError, what: str) -> None:
    if error.code() == grpc.StatusCode.NOT_FOUND:
        raise Missing(what) from error


class GrpcTransport:
    name = "grpc"

    def __init__(self, client: GrpcClient) -> None:
        self.client = client

    @staticmethod
    def _view(a: assistants_pb2.Assistant) -> AssistantView:
        return AssistantView(
            a.id,
            a.created_at,
            a.name if a.HasField("name") else None,
            a.model,
            dict(a.metadata),
            a.temperature if a.HasField("temperature") else None,
        )

    def create_assistant(
        self, *, name: str, metadata: dict[str, str], temperature: float
    ) -> AssistantView:
        assistant = assistants_pb2.Assistant(
            model=MODEL, name=name, metadata=metadata, temperature=temperature
        )
        return self._view(
            self.client.assistants.CreateAssistant(
                assistants_pb2.CreateAssistantRequest(assistant=assistant)
            )
        )

    def get_assistant(self, assistant_id: str) -> AssistantView:
        try:
            return self._view(
                self.client.assistants.GetAssistant(
                    assistants_pb2.GetAssistantRequest(assistant_id=assistant_id)
                )
            )
        except grpc.RpcError as exc:
            _missing_if_not_found(exc, assistant_id)
            raise

    def update_assistant_metadata(
        self, assistant_id: str, metadata: dict[str, str]
    ) -> AssistantView:
        request = assistants_pb2.UpdateAssistantRequest(
            assistant=assistants_pb2.Assistant(id=assistant_id, metadata=metadata),
            update_mask=field_mask_pb2.FieldMask(paths=["metadata"]),
        )
        return self._view(self.client.assistants.UpdateAssistant(request))

    def delete_assistant(self, assistant_id: str) -> bool:
        status = self.client.assistants.DeleteAssistant(
            assistants_pb2.DeleteAssistantRequest(assistant_id=assistant_id)
        )
        assert status.id == assistant_id
        return bool(status.deleted)

    def list_assistant_ids(self, *, after: str, limit: int) -> list[str]:
        page = self.client.assistants.ListAssistants(
            assistants_pb2.ListAssistantsRequest(
                order=common_pb2.SORT_ORDER_ASC, after=after, limit=limit
            )
        )
        return [a.id for a in page.data]

    def create_thread(self, metadata: dict[str, str]) -> str:
        thread = self.client.threads.CreateThread(
            threads_pb2.CreateThreadRequest(metadata=metadata)
        )
        return str(thread.id)

    def add_message(self, thread_id: str, text: str) -> str:
        message = self.client.messages.CreateMessage(
            messages_pb2.CreateMessageRequest(thread_id=thread_id, message=user_text(text))
        )
        return str(message.id)

    def message_texts(self, thread_id: str, *, ascending: bool) -> list[tuple[str, str]]:
        order = common_pb2.SORT_ORDER_ASC if ascending else common_pb2.SORT_ORDER_DESC
        try:
            page = self.client.messages.ListMessages(
                messages_pb2.ListMessagesRequest(thread_id=thread_id, order=order, limit=100)
            )
        except grpc.RpcError as exc:
            _missing_if_not_found(exc, thread_id)
            raise
        return [(m.id, m.content[0].text.value) for m in page.data]

    def delete_thread(self, thread_id: str) -> bool:
        status = self.client.threads.DeleteThread(
            threads_pb2.DeleteThreadRequest(thread_id=thread_id)
        )
        return bool(status.deleted)

    def upload(self, data: bytes, filename: str) -> FileView:
        f = self.client.upload_file(data, filename=filename, purpose="assistants")
        return FileView(f.id, f.bytes, f.filename, f.purpose)

    def get_file(self, file_id: str) -> FileView:
        try:
            f = self.client.files.GetFile(files_pb2.GetFileRequest(file_id=file_id))
        except grpc.RpcError as exc:
            _missing_if_not_found(exc, file_id)
            raise
        return FileView(f.id, f.bytes, f.filename, f.purpose)

    def download(self, file_id: str) -> bytes:
        header, data, _ = self.client.download_file(file_id)
        assert header.id == file_id
        assert header.bytes == len(data)
        return data

    def delete_file(self, file_id: str) -> bool:
        status = self.client.files.DeleteFile(files_pb2.DeleteFileRequest(file_id=file_id))
        return bool(status.deleted)


def user_text(text: str) -> messages_pb2.MessageInput:
    return messages_pb2.MessageInput(
        role=messages_pb2.MESSAGE_ROLE_USER,
        content=[messages_pb2.MessageContent(text=messages_pb2.TextContent(value=text))],
    )


@pytest.fixture(params=["http", "grpc"])
def transport(
    request: pytest.FixtureRequest, client: openai.OpenAI, grpc_client: GrpcClient
) -> Transport:
    if request.param == "http":
        return HttpTransport(client)
    return GrpcTransport(grpc_client)


# Shared scenarios


def test_assistant_lifecycle(transport: Transport, tag: str) -> None:
    created = transport.create_assistant(
        name=f"via {transport.name}", metadata={"tag": tag}, temperature=0.3
    )
    assert created.id.startswith("asst_")
    assert created.model == MODEL
    assert created.temperature == 0.3
    assert transport.get_assistant(created.id) == created

    updated = transport.update_assistant_metadata(created.id, {"tag": tag, "v": "2"})
    assert updated.metadata == {"tag": tag, "v": "2"}
    assert updated.name == f"via {transport.name}", "only the metadata changed"
    assert updated.temperature == 0.3
    assert transport.get_assistant(created.id) == updated

    assert transport.delete_assistant(created.id) is True
    with pytest.raises(Missing):
        transport.get_assistant(created.id)


def test_assistants_list_in_creation_order(transport: Transport) -> None:
    ids = [
        transport.create_assistant(name=f"order {i}", metadata={}, temperature=1).id
        for i in range(3)
    ]
    assert transport.list_assistant_ids(after=ids[0], limit=2) == ids[1:]


def test_thread_with_messages(transport: Transport, tag: str) -> None:
    thread_id = transport.create_thread({"tag": tag})
    assert thread_id.startswith("thread_")
    sent = [(transport.add_message(thread_id, f"line {i}"), f"line {i}") for i in range(4)]
    assert transport.message_texts(thread_id, ascending=True) == sent
    assert transport.message_texts(thread_id, ascending=False) == sent[::-1]
    assert transport.delete_thread(thread_id) is True
    with pytest.raises(Missing):
        transport.message_texts(thread_id, ascending=True)


def test_file_round_trip(transport: Transport) -> None:
    data = os.urandom(3 * MIB + 17)
    uploaded = transport.upload(data, f"{transport.name}.bin")
    assert uploaded.id.startswith("file-")
    assert uploaded.bytes == len(data)
    assert uploaded.filename == f"{transport.name}.bin"
    assert uploaded.purpose == "assistants"
    assert transport.get_file(uploaded.id) == uploaded
    assert transport.download(uploaded.id) == data
    assert transport.delete_file(uploaded.id) is True
    with pytest.raises(Missing):
        transport.get_file(uploaded.id)


def test_written_over_one_transport_read_over_the_other(
    client: openai.OpenAI, grpc_client: GrpcClient, tag: str
) -> None:
    over_grpc = GrpcTransport(grpc_client)
    over_http = HttpTransport(client)
    made_by_grpc = over_grpc.create_assistant(name="g", metadata={"tag": tag}, temperature=0.7)
    assert over_http.get_assistant(made_by_grpc.id) == made_by_grpc
    made_by_http = over_http.create_assistant(name="h", metadata={"tag": tag}, temperature=1.3)
    assert over_grpc.get_assistant(made_by_http.id) == made_by_http
    data = os.urandom(4096)
    file_id = over_http.upload(data, "x.bin").id
    assert over_grpc.download(file_id) == data


# gRPC only: update masks


def _create(grpc_client: GrpcClient, **fields: object) -> assistants_pb2.Assistant:
    assistant = assistants_pb2.Assistant(model=MODEL, **fields)  # type: ignore[arg-type]
    created: assistants_pb2.Assistant = grpc_client.assistants.CreateAssistant(
        assistants_pb2.CreateAssistantRequest(assistant=assistant)
    )
    return created


def _update(
    grpc_client: GrpcClient, assistant: assistants_pb2.Assistant, *paths: str
) -> assistants_pb2.Assistant:
    updated: assistants_pb2.Assistant = grpc_client.assistants.UpdateAssistant(
        assistants_pb2.UpdateAssistantRequest(
            assistant=assistant, update_mask=field_mask_pb2.FieldMask(paths=list(paths))
        )
    )
    return updated


def test_update_mask_changes_only_named_fields(grpc_client: GrpcClient) -> None:
    created = _create(
        grpc_client, name="old", description="keep", instructions="keep too", temperature=0.4
    )
    change = assistants_pb2.Assistant(
        id=created.id, name="new", description="ignored", temperature=1.5
    )
    updated = _update(grpc_client, change, "name", "temperature")
    assert updated.name == "new"
    assert updated.temperature == 1.5
    assert updated.description == "keep"
    assert updated.instructions == "keep too"
    assert updated.model == MODEL
    assert updated.created_at == created.created_at


def test_update_mask_clears_a_named_unset_field(grpc_client: GrpcClient) -> None:
    created = _create(grpc_client, name="to clear", description="stays")
    updated = _update(grpc_client, assistants_pb2.Assistant(id=created.id), "name")
    assert not updated.HasField("name")
    assert updated.description == "stays"


def test_empty_update_mask_changes_nothing(grpc_client: GrpcClient) -> None:
    created = _create(grpc_client, name="same", metadata={"a": "1"})
    change = assistants_pb2.Assistant(id=created.id, name="other", metadata={"b": "2"})
    assert _update(grpc_client, change) == created


def test_update_mask_replaces_tools(grpc_client: GrpcClient) -> None:
    created = _create(
        grpc_client, tools=[common_pb2.Tool(code_interpreter=common_pb2.CodeInterpreterTool())]
    )
    function = common_pb2.FunctionTool(name="f", parameters_json='{"type": "object"}')
    change = assistants_pb2.Assistant(id=created.id, tools=[common_pb2.Tool(function=function)])
    updated = _update(grpc_client, change, "tools")
    assert [tool.WhichOneof("kind") for tool in updated.tools] == ["function"]
    assert updated.tools[0].function.name == "f"


# gRPC only: errors carry rich details


def test_invalid_temperature_has_error_details(grpc_client: GrpcClient) -> None:
    with pytest.raises(grpc.RpcError) as info:
        _create(grpc_client, temperature=2.5)
    error = rich_error(info.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.error_info is not None, "an ErrorInfo detail must be attached"
    assert error.param == "temperature"
    assert error.error_info.domain
    assert [v.field for v in error.violations] == ["temperature"]


def test_invalid_limit_has_error_details(grpc_client: GrpcClient) -> None:
    with pytest.raises(grpc.RpcError) as info:
        grpc_client.assistants.ListAssistants(assistants_pb2.ListAssistantsRequest(limit=0))
    error = rich_error(info.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.param == "limit"


def test_missing_model_is_invalid(grpc_client: GrpcClient) -> None:
    with pytest.raises(grpc.RpcError) as info:
        grpc_client.assistants.CreateAssistant(
            assistants_pb2.CreateAssistantRequest(assistant=assistants_pb2.Assistant(name="x"))
        )
    error = rich_error(info.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.param == "model"


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.assistants.GetAssistant(
            assistants_pb2.GetAssistantRequest(assistant_id="asst_nope")
        ),
        lambda c: c.assistants.DeleteAssistant(
            assistants_pb2.DeleteAssistantRequest(assistant_id="asst_nope")
        ),
        lambda c: c.threads.GetThread(threads_pb2.GetThreadRequest(thread_id="thread_nope")),
        lambda c: c.messages.CreateMessage(
            messages_pb2.CreateMessageRequest(thread_id="thread_nope", message=user_text("x"))
        ),
        lambda c: c.files.GetFile(files_pb2.GetFileRequest(file_id="file-nope")),
        lambda c: list(
            c.files.DownloadFileContent(files_pb2.DownloadFileContentRequest(file_id="file-nope"))
        ),
    ],
    ids=["get-assistant", "delete-assistant", "get-thread", "message-on-thread", "file", "bytes"],
)
def test_unknown_ids_are_not_found(grpc_client: GrpcClient, call: object) -> None:
    assert callable(call)
    with pytest.raises(grpc.RpcError) as info:
        call(grpc_client)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_unknown_message_of_a_real_thread(grpc_client: GrpcClient) -> None:
    thread = grpc_client.threads.CreateThread(threads_pb2.CreateThreadRequest())
    with pytest.raises(grpc.RpcError) as info:
        grpc_client.messages.GetMessage(
            messages_pb2.GetMessageRequest(thread_id=thread.id, message_id="msg_nope")
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


# gRPC only: authentication


@pytest.fixture
def auth_grpc(auth_server: ServerThread, make_grpc: MakeGrpc) -> GrpcClient:
    return make_grpc(auth_server)


LIST = assistants_pb2.ListAssistantsRequest(limit=1)


def test_call_without_key_is_unauthenticated(auth_grpc: GrpcClient) -> None:
    with pytest.raises(grpc.RpcError) as info:
        auth_grpc.assistants.ListAssistants(LIST)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_call_with_wrong_key_is_unauthenticated(auth_grpc: GrpcClient) -> None:
    with pytest.raises(grpc.RpcError) as info:
        auth_grpc.assistants.ListAssistants(LIST, metadata=bearer("wrong"))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_call_with_key_works(auth_grpc: GrpcClient) -> None:
    created = auth_grpc.assistants.CreateAssistant(
        assistants_pb2.CreateAssistantRequest(assistant=assistants_pb2.Assistant(model=MODEL)),
        metadata=bearer(API_KEY),
    )
    fetched = auth_grpc.assistants.GetAssistant(
        assistants_pb2.GetAssistantRequest(assistant_id=created.id), metadata=bearer(API_KEY)
    )
    assert fetched == created


def test_streaming_calls_need_a_key_too(auth_grpc: GrpcClient) -> None:
    with pytest.raises(grpc.RpcError) as info:
        auth_grpc.upload_file(b"secret")
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    uploaded = auth_grpc.upload_file(b"secret", metadata=bearer(API_KEY))
    with pytest.raises(grpc.RpcError) as info:
        auth_grpc.download_file(uploaded.id)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert auth_grpc.download_file(uploaded.id, metadata=bearer(API_KEY))[1] == b"secret"


def test_every_method_the_server_reports_needs_a_key(auth_grpc: GrpcClient) -> None:
    # The guard wraps servicers one by one as they are registered; a service left out would
    # answer anyone. Every method of every service reflection reports, health's apart, is
    # called without a key and with an empty request.
    names = auth_grpc.list_services(metadata=bearer(API_KEY))
    assert {"compat_core.v1.RunsService", "grpc.reflection.v1alpha.ServerReflection"} <= set(names)
    called = []
    for name in names:
        if name == "grpc.health.v1.Health":
            continue
        for method in descriptor_pool.Default().FindServiceByName(name).methods:
            path = f"/{name}/{method.name}"
            with pytest.raises(grpc.RpcError) as info:
                _call_raw(auth_grpc.channel, path, method.client_streaming, method.server_streaming)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, path
            called.append(path)
    assert len(called) > 30


def _call_raw(channel: grpc.Channel, path: str, streams_in: bool, streams_out: bool) -> None:
    """One call of `path` with an empty request (bytes in, bytes out), read to its end."""
    if streams_in and streams_out:
        list(channel.stream_stream(path)(iter([b""]), timeout=10))
    elif streams_in:
        channel.stream_unary(path)(iter([b""]), timeout=10)
    elif streams_out:
        list(channel.unary_stream(path)(b"", timeout=10))
    else:
        channel.unary_unary(path)(b"", timeout=10)


@pytest.mark.parametrize(
    "path", ["/compat_core.v1.RunsService/NoSuchMethod", "/compat_core.v1.NoSuchService/GetRun"]
)
def test_a_method_the_core_does_not_serve_is_unimplemented(
    grpc_client: GrpcClient, path: str
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        grpc_client.channel.unary_unary(path)(b"", timeout=10)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_a_service_added_twice_to_the_method_table_is_refused() -> None:
    service = runs_pb2.DESCRIPTOR.services_by_name["RunsService"]
    servicer = _EveryMethod()
    table = MethodTable()
    table.add(servicer, service)
    with pytest.raises(ValueError, match="RunsService/CreateRun is served twice"):
        table.add(servicer, service)


class _EveryMethod:
    """A servicer with a (do-nothing) method of every name."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args: None


def test_health_needs_no_key(auth_grpc: GrpcClient) -> None:
    # Orchestrators' gRPC probes send no credentials.
    response = auth_grpc.health.Check(health_pb2.HealthCheckRequest(service=""))
    assert response.status == health_pb2.HealthCheckResponse.SERVING


# gRPC only: health, reflection, models, files streaming, runs


def test_health_is_serving(grpc_client: GrpcClient) -> None:
    response = grpc_client.health.Check(health_pb2.HealthCheckRequest(service=""))
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_health_can_be_watched(grpc_client: GrpcClient) -> None:
    watch = grpc_client.health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
    try:
        first = next(iter(watch))
    finally:
        watch.cancel()
    assert first.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_services(grpc_client: GrpcClient) -> None:
    services = set(grpc_client.list_services())
    expected = {
        f"compat_core.v1.{name}"
        for name in (
            "AssistantsService",
            "ThreadsService",
            "MessagesService",
            "RunsService",
            "FilesService",
            "ModelsService",
            "VectorStoresService",
        )
    }
    assert expected <= services
    assert "grpc.health.v1.Health" in services


def test_models_over_grpc(grpc_client: GrpcClient) -> None:
    listed = grpc_client.models.ListModels(models_pb2.ListModelsRequest())
    assert MODEL in [model.id for model in listed.data]
    echo = grpc_client.models.GetModel(models_pb2.GetModelRequest(model=MODEL))
    assert echo.id == MODEL
    assert echo.owned_by == "builtin"
    with pytest.raises(grpc.RpcError) as info:
        grpc_client.models.DeleteModel(models_pb2.DeleteModelRequest(model=MODEL))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_upload_and_download_stream_in_chunks(grpc_client: GrpcClient) -> None:
    data = os.urandom(5 * MIB + 1)
    uploaded = grpc_client.upload_file(data, filename="five.bin", chunk_size=MIB)
    assert uploaded.bytes == len(data)
    assert uploaded.filename == "five.bin"
    assert uploaded.status == files_pb2.FILE_STATUS_PROCESSED
    header, downloaded, chunks = grpc_client.download_file(uploaded.id)
    assert header.id == uploaded.id
    assert header.bytes == len(data)
    assert downloaded == data
    assert chunks > 1, "bytes are streamed in several messages, not one"


def test_upload_of_many_small_chunks(grpc_client: GrpcClient) -> None:
    data = os.urandom(100_000)
    uploaded = grpc_client.upload_file(data, chunk_size=997)
    assert grpc_client.download_file(uploaded.id)[1] == data


def test_upload_must_start_with_metadata(grpc_client: GrpcClient) -> None:
    requests = iter([files_pb2.UploadFileRequest(chunk=b"no metadata first")])
    with pytest.raises(grpc.RpcError) as info:
        grpc_client.files.UploadFile(requests)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_list_files_by_purpose(grpc_client: GrpcClient) -> None:
    uploaded = grpc_client.upload_file(b"v", filename="v.png", purpose="vision")
    vision = grpc_client.files.ListFiles(files_pb2.ListFilesRequest(purpose="vision"))
    assistants = grpc_client.files.ListFiles(files_pb2.ListFilesRequest(purpose="assistants"))
    assert uploaded.id in [f.id for f in vision.data]
    assert uploaded.id not in [f.id for f in assistants.data]
