"""A request without a valid key is refused before its body is read (`http_edge.auth`).

The edge asks the core's `AccessService.Authenticate` before it reads a body, so a stranger's
body is never parsed, validated or spooled: a keyless invalid body gets 401 (not the 400 its
validation would give), and a keyless upload gets its 401 while its body is still coming,
with nothing written.
"""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import openai
import pytest
from harness import API_KEY, MakeClient, MakeHttp, MakeServer, assert_api_error
from harness.grpc_client import bearer
from harness.server import ServerThread

from compat_core.v1 import access_pb2, access_pb2_grpc

BOUND = 10.0
BOUNDARY = "compat-boundary"
# What the test's upload claims to carry: far more than it ever sends.
CLAIMED_BYTES = 300 * 1024 * 1024


def test_a_keyless_invalid_body_is_401_not_400(
    auth_server: ServerThread, make_http: MakeHttp, make_client: MakeClient
) -> None:
    http = make_http(auth_server)
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = http.post("/v1/assistants", json={"model": 5}, headers=headers)
        assert response.status_code == 401, response.text
        assert response.json()["error"]["type"] == "authentication_error"
        assert response.headers.get("x-request-id")
    with pytest.raises(openai.AuthenticationError) as info:
        make_client(auth_server, api_key="wrong").beta.assistants.create(model=5)  # type: ignore[arg-type]
    assert_api_error(info.value, 401, "authentication_error")
    # With the key, the body is read and judged as before.
    with pytest.raises(openai.BadRequestError) as bad:
        make_client(auth_server, api_key=API_KEY).beta.assistants.create(model=5)  # type: ignore[arg-type]
    assert_api_error(bad.value, 400, "invalid_request_error", param="model")


def test_a_keyless_upload_is_refused_before_its_body_is_read(
    make_server: MakeServer, make_client: MakeClient, tmp_path: Path
) -> None:
    files_dir = tmp_path / "files"
    server = make_server(api_keys=[API_KEY], files_dir=str(files_dir))
    url = urlsplit(server.url)
    assert url.hostname is not None
    assert url.port is not None
    # The file part comes before `purpose`, so an edge that read the body would spool it.
    first_part = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + b"x" * 65536
    head = (
        "POST /v1/files HTTP/1.1\r\nHost: edge\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {CLAIMED_BYTES}\r\n\r\n"
    ).encode()
    with socket.create_connection((url.hostname, url.port), timeout=BOUND) as sock:
        sock.sendall(head + first_part)
        # The rest of the body never comes: only an edge that did not wait for it answers.
        answer = b""
        while b"}}" not in answer and (chunk := sock.recv(65536)):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 401"), answer
    assert b'"type":"authentication_error"' in answer
    assert not files_dir.exists() or not any(files_dir.iterdir())
    # A keyed upload still works, and is where the files go.
    stored = make_client(server, api_key=API_KEY).files.create(
        file=("small.txt", b"hello"), purpose="assistants"
    )
    assert stored.bytes == 5
    assert any(files_dir.iterdir())


def test_a_client_expecting_100_continue_gets_its_401_instead(
    auth_server: ServerThread,
) -> None:
    url = urlsplit(auth_server.url)
    assert url.hostname is not None
    assert url.port is not None
    head = (
        "POST /v1/files HTTP/1.1\r\nHost: edge\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {CLAIMED_BYTES}\r\nExpect: 100-continue\r\n"
    )
    for authorization, first_line in (
        ("", b"HTTP/1.1 401 "),
        ("Authorization: Bearer wrong\r\n", b"HTTP/1.1 401 "),
        (f"Authorization: Bearer {API_KEY}\r\n", b"HTTP/1.1 100 Continue"),
    ):
        with socket.create_connection((url.hostname, url.port), timeout=BOUND) as sock:
            sock.sendall((head + authorization + "\r\n").encode())
            answer = sock.recv(65536)
        assert answer.startswith(first_line), answer


def test_authenticate_answers_over_grpc(make_server: MakeServer) -> None:
    server = make_server(api_keys=[API_KEY])
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = access_pb2_grpc.AccessServiceStub(channel)
        assert (
            stub.Authenticate(
                access_pb2.AuthenticateRequest(), metadata=bearer(API_KEY), timeout=BOUND
            )
            == access_pb2.AuthenticateResponse()
        )
        for metadata in ((), bearer("wrong")):
            with pytest.raises(grpc.RpcError) as info:
                stub.Authenticate(
                    access_pb2.AuthenticateRequest(), metadata=metadata, timeout=BOUND
                )
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
