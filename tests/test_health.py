"""Health: the edge's `/health` says whether it reaches a core; the core's keyless gRPC health
`Watch` streams are bounded.

A stand-alone edge (a real `assistants-compat edge` process) pointed at a port where no core
listens answers `/health` 503 `{"status": "unavailable"}`, as every call it would take fails;
pointed at a live core, 200; and once that core is gone, 503 again.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import httpx2
import pytest
from grpc_health.v1 import health_pb2
from harness import MakeGrpc, MakeServer
from harness.processes import Process

BOUND = 10.0
POLL_SECONDS = 0.05

# Starts a stand-alone edge in front of a core target; returns the edge's root URL.
StartEdge = Callable[[str], str]


@pytest.fixture
def start_edge(tmp_path: Path) -> Iterator[StartEdge]:
    edges: list[Process] = []

    def start(core_target: str) -> str:
        """A stand-alone edge in front of `core_target`; its root URL."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPAT_", "OPENAI_"))}
        env |= {
            "COMPAT_HTTP_HOST": "127.0.0.1",
            "COMPAT_HTTP_PORT": "0",
            "COMPAT_CORE_TARGET": core_target,
        }
        edge = Process("edge", env, tmp_path)
        edges.append(edge)
        return edge.wait_for(r"Running on (http://[\d.:]+)")[1]

    yield start
    for edge in edges:
        assert edge.stop() == 0, edge.log


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_edge_that_reaches_no_core_is_unavailable(start_edge: StartEdge) -> None:
    url = start_edge(f"127.0.0.1:{closed_port()}")
    with httpx2.Client(base_url=url, timeout=BOUND) as http:
        response = http.get("/health")
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable"}
        assert http.get("/v1/models").status_code == 503


def test_an_edge_follows_its_core(start_edge: StartEdge, make_server: MakeServer) -> None:
    server = make_server()
    url = start_edge(server.grpc_target)
    with httpx2.Client(base_url=url, timeout=BOUND) as http:
        response = http.get("/health")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
        server.stop()
        # The edge asks the core again once its last answer is a second old.
        deadline = time.monotonic() + BOUND
        while (response := http.get("/health")).status_code == 200:
            assert time.monotonic() < deadline, "the edge kept saying ok with its core gone"
            time.sleep(POLL_SECONDS)
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable"}


def test_health_watches_are_bounded(make_server: MakeServer, make_grpc: MakeGrpc) -> None:
    server = make_server(max_health_watches=2)
    client = make_grpc(server)
    request = health_pb2.HealthCheckRequest(service="")
    watches = [client.health.Watch(request, timeout=BOUND) for _ in range(2)]
    try:
        for watch in watches:
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        refused = client.health.Watch(request, timeout=BOUND)
        with pytest.raises(grpc.RpcError) as info:
            next(refused)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # Check is not a stream: it still answers.
        assert client.health.Check(request, timeout=BOUND).status == (
            health_pb2.HealthCheckResponse.SERVING
        )
    finally:
        for watch in watches:
            watch.cancel()
