"""Sync gRPC stubs for the core, and helpers for rich errors and streamed file bytes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from compat_core.v1 import (
    assistants_pb2_grpc,
    files_pb2,
    files_pb2_grpc,
    messages_pb2_grpc,
    models_pb2_grpc,
    runs_pb2_grpc,
    threads_pb2_grpc,
    vector_stores_pb2_grpc,
)

Metadata = Sequence[tuple[str, str]]

UPLOAD_CHUNK = 1024 * 1024


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying an API key as the edge forwards it."""
    return (("authorization", f"Bearer {key}"),)


class GrpcClient:
    """One channel to the core and a stub per service; a context manager that closes it."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.channel = grpc.insecure_channel(target)
        self.assistants = assistants_pb2_grpc.AssistantsServiceStub(self.channel)
        self.threads = threads_pb2_grpc.ThreadsServiceStub(self.channel)
        self.messages = messages_pb2_grpc.MessagesServiceStub(self.channel)
        self.files = files_pb2_grpc.FilesServiceStub(self.channel)
        self.models = models_pb2_grpc.ModelsServiceStub(self.channel)
        self.runs = runs_pb2_grpc.RunsServiceStub(self.channel)
        self.vector_stores = vector_stores_pb2_grpc.VectorStoresServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        self.reflection = reflection_pb2_grpc.ServerReflectionStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def upload_file(
        self,
        data: bytes,
        *,
        filename: str = "upload.bin",
        purpose: str = "assistants",
        chunk_size: int = UPLOAD_CHUNK,
        metadata: Metadata = (),
    ) -> files_pb2.File:
        """Upload through the client-streaming `UploadFile`: metadata first, then chunks."""

        def requests() -> Iterator[files_pb2.UploadFileRequest]:
            yield files_pb2.UploadFileRequest(
                metadata=files_pb2.UploadFileMetadata(filename=filename, purpose=purpose)
            )
            for start in range(0, len(data), chunk_size):
                yield files_pb2.UploadFileRequest(chunk=data[start : start + chunk_size])

        result: files_pb2.File = self.files.UploadFile(requests(), metadata=metadata)
        return result

    def download_file(
        self, file_id: str, *, metadata: Metadata = ()
    ) -> tuple[files_pb2.File, bytes, int]:
        """Download through `DownloadFileContent`: the file object, its bytes, the chunk count.

        Fails unless the stream is one `file` message followed only by `chunk`s.
        """
        stream = self.files.DownloadFileContent(
            files_pb2.DownloadFileContentRequest(file_id=file_id), metadata=metadata
        )
        header: files_pb2.File | None = None
        chunks: list[bytes] = []
        for index, message in enumerate(stream):
            kind = message.WhichOneof("payload")
            if index == 0:
                assert kind == "file", f"the first message must carry the file, got {kind}"
                header = message.file
            else:
                assert kind == "chunk", f"message {index} must be a chunk, got {kind}"
                chunks.append(message.chunk)
        assert header is not None, "the stream was empty"
        return header, b"".join(chunks), len(chunks)

    def list_services(self, metadata: Sequence[tuple[str, str]] = ()) -> list[str]:
        """The service names server reflection reports."""
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        names: list[str] = []
        for response in self.reflection.ServerReflectionInfo(iter([request]), metadata=metadata):
            names.extend(service.name for service in response.list_services_response.service)
        return names


@dataclass
class RichError:
    """What a failed call carried: its status and the `google.rpc.Status` details."""

    code: grpc.StatusCode
    message: str
    error_info: error_details_pb2.ErrorInfo | None = None
    violations: list[error_details_pb2.BadRequest.FieldViolation] = field(default_factory=list)

    @property
    def param(self) -> str | None:
        """OpenAI's `param`, as the core puts it in `ErrorInfo.metadata["param"]`."""
        if self.error_info is None:
            return None
        param = self.error_info.metadata.get("param")
        return None if param is None else str(param)

    @property
    def reason(self) -> str | None:
        return None if self.error_info is None else self.error_info.reason


def rich_error(error: grpc.RpcError) -> RichError:
    """Decode a failed call's rich status (grpc-status-details-bin) into a RichError."""
    result = RichError(code=error.code(), message=error.details() or "")
    status = rpc_status.from_call(error)
    if status is None:
        return result
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            result.error_info = info
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            result.violations.extend(bad.field_violations)
    return result
