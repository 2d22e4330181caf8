"""Graceful shutdown: a call already in flight when the server stops still completes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from harness import MakeGrpc, MakeServer

from compat_core.v1 import files_pb2

STOP_DEADLINE_SECONDS = 20.0


def test_in_flight_upload_completes_while_the_server_stops(
    make_server: MakeServer, make_grpc: MakeGrpc
) -> None:
    server = make_server()
    client = make_grpc(server)
    release = threading.Event()

    def requests() -> Iterator[files_pb2.UploadFileRequest]:
        yield files_pb2.UploadFileRequest(
            metadata=files_pb2.UploadFileMetadata(filename="late.bin", purpose="assistants")
        )
        yield files_pb2.UploadFileRequest(chunk=b"a" * 1000)
        release.wait(STOP_DEADLINE_SECONDS)
        yield files_pb2.UploadFileRequest(chunk=b"b" * 1000)

    upload = client.files.UploadFile.future(requests())
    # A unary call on the same connection returns only after the server has read every frame
    # sent before it, so the upload is now a call the server has accepted.
    with pytest.raises(grpc.RpcError) as missing:
        client.files.GetFile(files_pb2.GetFileRequest(file_id="file-none"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND

    stopper = threading.Thread(target=server.stop)
    stopper.start()
    # Shutdown has begun once the server turns new calls away.
    deadline = time.monotonic() + STOP_DEADLINE_SECONDS
    refused = False
    while not refused and time.monotonic() < deadline:
        try:
            client.files.GetFile(files_pb2.GetFileRequest(file_id="file-none"), timeout=2)
        except grpc.RpcError as err:
            refused = err.code() != grpc.StatusCode.NOT_FOUND
    assert refused, "the server kept accepting new calls while stopping"

    release.set()
    stored = upload.result(timeout=STOP_DEADLINE_SECONDS)
    stopper.join(STOP_DEADLINE_SECONDS)
    assert stored.bytes == 2000
    assert stored.filename == "late.bin"
    assert not stopper.is_alive()
