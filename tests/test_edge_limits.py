"""What the edge allows a connection (`http_edge.connections`), through real sockets.

- A connection that sends part of a request head and goes quiet, or nothing at all, is closed
  after the header timeout; a body that pauses, after the body timeout; an idle connection,
  after the keep-alive timeout. Meanwhile other clients are served, and an idle keep-alive
  connection is not held to the header timeout.
- Beyond the connection cap a new connection is answered a 503 in OpenAI's shape and closed,
  while the open ones go on being served; once one closes, a new one is served.
- A request that is not HTTP gets a 400 in OpenAI's shape and one INFO line in the log; a
  client that leaves mid-request one DEBUG line: never an ERROR or a traceback.

Tests wait for the server to close a socket (`recv` returns nothing) or for a log line, each
with a bound; none sleeps.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx2
import pytest
from harness import MakeClient, MakeServer
from harness.server import ServerThread

# Short limits set by each test, and the bound on waiting for them to act.
SHORT = 0.5
BOUND = 10.0
HALF_HEAD = b"POST /v1/assistants HTTP/1.1\r\nHost: edge\r\nContent-Ty"
HEALTH = b"GET /health HTTP/1.1\r\nHost: edge\r\n\r\n"


def connect(server: ServerThread) -> socket.socket:
    url = urlsplit(server.url)
    assert url.hostname is not None
    assert url.port is not None
    return socket.create_connection((url.hostname, url.port), timeout=BOUND)


def until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection; fails after `BOUND`."""
    received = b""
    deadline = time.monotonic() + BOUND
    while True:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            raise AssertionError(f"the server kept the connection open for {BOUND}s") from None
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def exchange(sock: socket.socket, request: bytes) -> bytes:
    """Send a request whose answer has a short body with Content-Length; read the answer."""
    sock.sendall(request)
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection after {received!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection mid-answer"
        body += chunk
    return received


class LogWatch(logging.Handler):
    """Every record of the process while installed; `wait` for one that matches."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self._changed:
            self.records.append(record)
            self._changed.notify_all()

    def wait(self, matches: Callable[[logging.LogRecord], bool]) -> logging.LogRecord:
        with self._changed:
            found: list[logging.LogRecord] = []

            def seen() -> bool:
                found[:] = [r for r in self.records if matches(r)]
                return bool(found)

            assert self._changed.wait_for(seen, BOUND), "the awaited log line never came"
            return found[0]

    def errors(self) -> list[str]:
        with self._changed:
            return [
                f"{r.name}: {r.getMessage()}"
                for r in self.records
                if r.levelno >= logging.ERROR or r.exc_info
            ]


@pytest.fixture
def log_watch() -> Iterator[LogWatch]:
    root = logging.getLogger()
    watch = LogWatch()
    level = root.level
    root.addHandler(watch)
    root.setLevel(logging.DEBUG)
    try:
        yield watch
    finally:
        root.removeHandler(watch)
        root.setLevel(level)


# Timeouts


def test_half_requests_are_closed_after_the_header_timeout(
    make_server: MakeServer, make_client: MakeClient
) -> None:
    server = make_server(http_header_timeout_seconds=SHORT)
    client = make_client(server)
    idle = connect(server)
    assert exchange(idle, HEALTH).startswith(b"HTTP/1.1 200")
    silent = [connect(server) for _ in range(10)]
    halves = [connect(server) for _ in range(40)]
    for sock in halves:
        sock.sendall(HALF_HEAD)

    # Served while the half requests hang.
    assert client.models.list().data
    started = time.monotonic()
    for sock in [*halves, *silent]:
        assert until_closed(sock) == b""
        sock.close()
    assert time.monotonic() - started < BOUND
    # Served after; and an idle keep-alive connection is no request head owed.
    assert client.beta.assistants.create(model="builtin/echo").id.startswith("asst_")
    assert exchange(idle, HEALTH).startswith(b"HTTP/1.1 200")
    idle.close()


def test_an_idle_connection_is_closed_after_the_keepalive_timeout(
    make_server: MakeServer,
) -> None:
    server = make_server(http_keepalive_seconds=SHORT)
    with connect(server) as sock:
        assert exchange(sock, HEALTH).startswith(b"HTTP/1.1 200")
        assert until_closed(sock) == b""


def test_a_paused_body_is_closed_after_the_body_timeout(
    make_server: MakeServer, make_client: MakeClient, log_watch: LogWatch
) -> None:
    server = make_server(http_body_timeout_seconds=SHORT)
    with connect(server) as sock:
        sock.sendall(
            b"POST /v1/assistants HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"model": "builtin/'
        )
        assert until_closed(sock) == b""
    # The handler waiting for the body learns that its client is gone: one quiet line.
    log_watch.wait(lambda r: "left before its answer" in r.getMessage())
    assert make_client(server).models.list().data
    assert log_watch.errors() == []


# The connection cap


def test_beyond_the_connection_cap_a_new_connection_gets_a_503(
    make_server: MakeServer, make_http: Callable[..., httpx2.Client]
) -> None:
    server = make_server(max_connections=3)
    held = [connect(server) for _ in range(3)]
    for sock in held:
        assert exchange(sock, HEALTH).startswith(b"HTTP/1.1 200")

    response = make_http(server).get("/health")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    error = response.json()["error"]
    assert error["type"] == "server_error"
    assert "connections" in error["message"]

    # The open connections are still served.
    for sock in held:
        assert exchange(sock, HEALTH).startswith(b"HTTP/1.1 200")
    # One closes (the server closes it after answering): its place is free.
    closing = held.pop()
    answer = exchange(closing, HEALTH.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
    assert answer.startswith(b"HTTP/1.1 200")
    assert until_closed(closing) == b""
    closing.close()
    assert make_http(server).get("/health").status_code == 200
    for sock in held:
        sock.close()


# Protocol errors


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: edge\r\nNo colon here\r\n\r\n",
        b"GET /health HTTP/9.Z\r\n\r\n",
    ],
    ids=["tls-handshake", "bad-header", "bad-version"],
)
def test_a_request_that_is_not_http_is_one_line_in_the_log(
    make_server: MakeServer, log_watch: LogWatch, garbage: bytes
) -> None:
    server = make_server()
    with connect(server) as sock:
        sock.sendall(garbage)
        answer = until_closed(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    # HTTP/1.0 when not even the version could be read.
    assert head.split(b" ", 2)[1] == b"400", answer
    assert b"application/json" in head
    assert b'"type":"invalid_request_error"' in body
    line = log_watch.wait(lambda r: "bad HTTP request" in r.getMessage())
    assert line.levelno == logging.INFO
    assert "\n" not in line.getMessage()
    assert log_watch.errors() == []


def test_a_client_that_leaves_mid_body_is_one_debug_line(
    make_server: MakeServer, log_watch: LogWatch
) -> None:
    server = make_server()
    with connect(server) as sock:
        sock.sendall(
            b"POST /v1/assistants HTTP/1.1\r\nHost: edge\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\nExpect: 100-continue\r\n\r\n"
        )
        # The request is being handled once the server says to go on.
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(b'{"model": ')
    line = log_watch.wait(lambda r: "left before its answer" in r.getMessage())
    assert line.levelno == logging.DEBUG
    assert log_watch.errors() == []
