"""A stand-alone core serves its Prometheus metrics on `COMPAT_METRICS_PORT` (the all-in-one
server shows them on the edge's `/metrics`, see `runs/test_metrics.py`)."""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import httpx2
from harness.processes import Process
from harness.server import database_url, drop_database
from prometheus_client.parser import text_string_to_metric_families

from compat_core.v1 import access_pb2, access_pb2_grpc

TIMEOUT = 30.0
AUTHENTICATE = "/compat_core.v1.AccessService/Authenticate"


def test_a_core_serves_its_metrics_on_its_own_port(tmp_path: Path) -> None:
    url = database_url(tmp_path)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("COMPAT_", "OPENAI_"))}
    env = {
        **base,
        "COMPAT_DATABASE_URL": url,
        "COMPAT_GRPC_HOST": "127.0.0.1",
        "COMPAT_GRPC_PORT": "0",
        "COMPAT_METRICS_HOST": "127.0.0.1",
        "COMPAT_METRICS_PORT": "0",
        "COMPAT_FILES_DIR": str(tmp_path / "files"),
    }
    core = Process("core", env, tmp_path)
    try:
        grpc_port = core.wait_for(r"core serving gRPC on [\d.]+:(\d+)")[1]
        metrics_port = core.wait_for(r"metrics\s+http://127\.0\.0\.1:(\d+)/metrics")[1]
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = access_pb2_grpc.AccessServiceStub(channel)
            for _ in range(3):
                stub.Authenticate(access_pb2.AuthenticateRequest(), timeout=TIMEOUT)
        scraped = httpx2.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=TIMEOUT)
    finally:
        core.stop()
        drop_database(url)
    assert scraped.status_code == 200
    calls = {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(scraped.text)
        for sample in family.samples
        if sample.name == "compat_core_rpcs_total"
    }
    assert calls[(("code", "OK"), ("method", AUTHENTICATE))] == 3
    # The core's own registry: no edge metrics in a process that has no edge.
    assert "compat_http_requests_total" not in scraped.text
