"""End-to-end test harness: a server on a background loop, spec validation, gRPC helpers.

This module holds the few assertions the test modules share.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx2
import openai

if TYPE_CHECKING:
    from harness.grpc_client import GrpcClient
    from harness.server import ServerThread

# The factories conftest's fixtures hand out.
MakeServer = Callable[..., "ServerThread"]
MakeClient = Callable[..., openai.OpenAI]
MakeHttp = Callable[..., httpx2.Client]
MakeGrpc = Callable[["ServerThread"], "GrpcClient"]

# The API key of `auth_server` and `cors_server`, and the one origin `cors_server` allows.
API_KEY = "k1"
ALLOWED_ORIGIN = "https://app.example"

_UNSET = object()


def assert_api_error(
    error: openai.APIStatusError,
    status: int,
    error_type: str,
    *,
    param: str | object | None = _UNSET,
    param_prefix: str | None = None,
) -> None:
    """The SDK's error carries OpenAI's envelope: this status, `type`, and (if given) `param`."""
    assert error.status_code == status, f"expected HTTP {status}, got {error.status_code}"
    body = error.body
    assert isinstance(body, dict), f"the error body is not OpenAI's envelope: {body!r}"
    assert isinstance(body.get("message"), str), f"the error has no message: {body!r}"
    assert body["message"], "the error message is empty"
    assert error.type == error_type, f"expected type {error_type!r}, got {body!r}"
    if param is not _UNSET:
        assert error.param == param, f"expected param {param!r}, got {body!r}"
    if param_prefix is not None:
        assert error.param is not None, f"expected a param under {param_prefix!r}, got {body!r}"
        assert error.param == param_prefix or error.param.startswith(
            (param_prefix + ".", param_prefix + "[")
        ), f"expected a param under {param_prefix!r}, got {body!r}"


class Clock:
    """Brackets the server's `created_at` stamps by the test's own clock (unix seconds)."""

    def __init__(self) -> None:
        self.start = int(time.time())

    def check(self, created_at: int) -> None:
        now = int(time.time())
        assert self.start - 1 <= created_at <= now + 1, (
            f"created_at {created_at} is not between {self.start} and {now}"
        )
