"""Bad input is a clean 4xx in OpenAI's shape: never a 500, never a status the SDKs retry.

Each case goes through real HTTP: the SDK where it can send the malformed thing, a raw
client where it cannot (a broken multipart header, a body nested past any encoder, a NUL in a
URL). Each also checks that nothing was stored. The suite's PostgreSQL pass runs them all
again there, where a NUL reaching a query would fail the driver, not the lookup.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import zlib
from typing import Any
from urllib.parse import quote

import grpc
import httpx2
import openai
import pytest
from harness import API_KEY, MakeClient, MakeHttp
from harness.server import ServerThread
from runs.tools import GET_WEATHER

from http_edge.errors import from_rpc_error

MODEL = "builtin/echo"
# Statuses the SDKs retry by default: a request that cannot succeed must never get one.
RETRYABLE = frozenset({408, 409, 429}) | frozenset(range(500, 600))
# An ID, a name or a model of about 8 KB: echoed whole into an error, it overflowed gRPC's
# metadata and came back as a 429. It still fits aiohttp's 8,190-byte request line.
LONG = "a" * 8000
BAD_IDS = {"nul": "x_\x00y", "long": LONG}
BOUNDARY = "bad-input-boundary"
# However long what the client sent, a message quoting it stays within this.
MAX_MESSAGE_BYTES = 1024


def check_error(
    response: httpx2.Response,
    status: int,
    *,
    param: str | None,
    code: str | None,
    error_type: str = "invalid_request_error",
) -> dict[str, Any]:
    """The response is OpenAI's error envelope with these fields (the `http` fixture's hook
    has already checked it against the spec)."""
    assert response.status_code == status, response.text[:500]
    error = response.json()["error"]
    assert error["type"] == error_type, error
    assert error["param"] == param, error
    assert error["code"] == code, error
    assert error["message"], error
    assert len(error["message"].encode()) <= MAX_MESSAGE_BYTES, error["message"][:200]
    return dict(error)


def newest_ids(http: httpx2.Client, path: str) -> list[str]:
    """The IDs a list answers first (newest first): anything created since shows up here."""
    response = http.get(path, params={"limit": 100})
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["data"]]


def nested(depth: int) -> str:
    """JSON text of objects nested `depth` levels deep (`{}` is one level)."""
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


def post_json_text(http: httpx2.Client, path: str, text: str) -> httpx2.Response:
    return http.post(path, content=text.encode(), headers={"content-type": "application/json"})


def form(*parts: tuple[list[str], bytes]) -> tuple[bytes, dict[str, str]]:
    """A multipart body written byte for byte, part headers exactly as given."""
    body = b""
    for headers, content in parts:
        body += f"--{BOUNDARY}\r\n".encode()
        body += b"".join(header.encode("latin-1") + b"\r\n" for header in headers)
        body += b"\r\n" + content + b"\r\n"
    body += f"--{BOUNDARY}--\r\n".encode()
    return body, {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


PURPOSE_PART = (['Content-Disposition: form-data; name="purpose"'], b"assistants")


def file_part(disposition: str, *extra: str) -> tuple[list[str], bytes]:
    return ([f"Content-Disposition: form-data; {disposition}", *extra], b"hello")


@pytest.fixture
def thread_id(client: openai.OpenAI) -> str:
    """A real thread, so that IDs under it (messages, runs) are the ones judged."""
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    return thread.id


# Multipart uploads


@pytest.mark.parametrize(
    "part",
    [
        pytest.param(
            file_part('name="file"; filename="a.txt"', "not a header line"), id="no-colon"
        ),
        pytest.param(file_part('name="file"; filename="a\x00b.txt"'), id="nul-in-header"),
        pytest.param(
            file_part('name="file"; filename="a.txt"', "X-Long: " + "a" * 9000), id="too-long"
        ),
    ],
)
def test_malformed_part_header_is_400(http: httpx2.Client, part: tuple[list[str], bytes]) -> None:
    before = newest_ids(http, "/v1/files")
    body, headers = form(PURPOSE_PART, part)
    response = http.post("/v1/files", content=body, headers=headers)
    error = check_error(response, 400, param=None, code=None)
    assert "multipart" in error["message"]
    assert newest_ids(http, "/v1/files") == before


@pytest.mark.parametrize(
    "encoded", ["a%00b.txt", "a%0Ab.txt", "%1B%5B31mred.txt", "del%7F.txt", "c1%C2%85.txt"]
)
def test_control_characters_in_a_file_name_are_400(http: httpx2.Client, encoded: str) -> None:
    # RFC 5987's `filename*` carries any character, NUL included, past the header parser.
    before = newest_ids(http, "/v1/files")
    body, headers = form(PURPOSE_PART, file_part(f"name=\"file\"; filename*=UTF-8''{encoded}"))
    response = http.post("/v1/files", content=body, headers=headers)
    check_error(response, 400, param="file", code="invalid_value")
    assert newest_ids(http, "/v1/files") == before


def test_an_ordinary_file_name_still_uploads(client: openai.OpenAI) -> None:
    uploaded = client.files.create(file=("plain name (1).txt", b"x"), purpose="assistants")
    assert uploaded.filename == "plain name (1).txt"


# Content codings


@pytest.mark.parametrize(
    ("coding", "body"),
    [
        pytest.param("gzip", b'{"model":"builtin/echo"}', id="gzip-on-a-plain-body"),
        pytest.param("gzip", gzip.compress(b'{"model":"builtin/echo"}'), id="gzip"),
        pytest.param("deflate", zlib.compress(b'{"model":"builtin/echo"}'), id="deflate"),
        pytest.param("x-unheard-of", b'{"model":"builtin/echo"}', id="unknown"),
        # Codings whose decoders aiohttp only has when optional packages are installed.
        pytest.param("br", b'{"model":"builtin/echo"}', id="brotli"),
        pytest.param("zstd", b'{"model":"builtin/echo"}', id="zstd"),
    ],
)
def test_a_content_coding_is_415(http: httpx2.Client, coding: str, body: bytes) -> None:
    before = newest_ids(http, "/v1/assistants")
    response = http.post(
        "/v1/assistants",
        content=body,
        headers={"content-type": "application/json", "content-encoding": coding},
    )
    check_error(response, 415, param=None, code="unsupported_content_encoding")
    assert response.headers["accept-encoding"] == "identity"
    assert newest_ids(http, "/v1/assistants") == before


def test_a_content_coding_on_an_upload_is_415(http: httpx2.Client) -> None:
    before = newest_ids(http, "/v1/files")
    body, headers = form(PURPOSE_PART, file_part('name="file"; filename="a.txt"'))
    response = http.post(
        "/v1/files", content=gzip.compress(body), headers={**headers, "content-encoding": "gzip"}
    )
    check_error(response, 415, param=None, code="unsupported_content_encoding")
    assert newest_ids(http, "/v1/files") == before


def test_a_body_that_is_not_the_gzip_it_claims_logs_no_error(
    http: httpx2.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """The refusal leaves the body unread: nothing decodes it, so nothing fails to."""
    with caplog.at_level(logging.INFO):
        response = http.post(
            "/v1/assistants",
            content=b"not gzip at all",
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )
    check_error(response, 415, param=None, code="unsupported_content_encoding")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_identity_is_no_coding(http: httpx2.Client) -> None:
    response = http.post(
        "/v1/assistants",
        content=b'{"model":"builtin/echo"}',
        headers={"content-type": "application/json", "content-encoding": "identity"},
    )
    assert response.status_code == 200, response.text


# JSON nested deeply

SCHEMA_PLACES = [
    pytest.param(
        '{"model":"builtin/echo","tools":[{"type":"function","function":'
        '{"name":"f","parameters":%s}}]}',
        "tools[0].function.parameters",
        "invalid_function_parameters",
        id="function-parameters",
    ),
    pytest.param(
        '{"model":"builtin/echo","response_format":{"type":"json_schema","json_schema":'
        '{"name":"f","schema":%s}}}',
        "response_format.json_schema.schema",
        "invalid_json_schema",
        id="json-schema",
    ),
]


# 1,000 levels: past the edge's encoder (255); 100: past the core's bound (64) alone.
@pytest.mark.parametrize("depth", [1000, 300, 100, 65])
@pytest.mark.parametrize(("template", "param", "code"), SCHEMA_PLACES)
def test_a_schema_nested_too_deeply_is_400(
    http: httpx2.Client, template: str, param: str, code: str, depth: int
) -> None:
    before = newest_ids(http, "/v1/assistants")
    response = post_json_text(http, "/v1/assistants", template % nested(depth))
    check_error(response, 400, param=param, code=code)
    assert newest_ids(http, "/v1/assistants") == before


@pytest.mark.parametrize(("template", "param", "code"), SCHEMA_PLACES)
def test_a_schema_at_the_depth_limit_is_kept(
    http: httpx2.Client, template: str, param: str, code: str
) -> None:
    response = post_json_text(http, "/v1/assistants", template % nested(64))
    assert response.status_code == 200, response.text


def test_a_deep_schema_is_refused_on_update_and_on_a_run(
    client: openai.OpenAI, thread_id: str
) -> None:
    assistant = client.beta.assistants.create(model=MODEL)
    deep: dict[str, Any] = {}
    for _ in range(99):
        deep = {"a": deep}
    tool: Any = {"type": "function", "function": {"name": "f", "parameters": deep}}
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.assistants.update(assistant.id, tools=[tool])
    assert (info.value.param, info.value.code) == (
        "tools[0].function.parameters",
        "invalid_function_parameters",
    )
    assert client.beta.assistants.retrieve(assistant.id).tools == []
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.threads.runs.create(thread_id, assistant_id=assistant.id, tools=[tool])
    assert info.value.param == "tools[0].function.parameters"
    assert client.beta.threads.runs.list(thread_id).data == []


# IDs and cursors that could not be IDs


@pytest.fixture(params=list(BAD_IDS.values()), ids=list(BAD_IDS))
def bad_id(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


def url_part(value: str) -> str:
    return quote(value, safe="")


@pytest.mark.parametrize(
    ("method", "path", "param"),
    [
        ("GET", "/v1/assistants/{bad}", "assistant_id"),
        ("POST", "/v1/assistants/{bad}", "assistant_id"),
        ("DELETE", "/v1/assistants/{bad}", "assistant_id"),
        ("GET", "/v1/threads/{bad}", "thread_id"),
        ("POST", "/v1/threads/{bad}", "thread_id"),
        ("DELETE", "/v1/threads/{bad}", "thread_id"),
        ("GET", "/v1/threads/{bad}/messages", "thread_id"),
        ("GET", "/v1/threads/{bad}/runs", "thread_id"),
        ("GET", "/v1/threads/{thread}/messages/{bad}", "message_id"),
        ("POST", "/v1/threads/{thread}/messages/{bad}", "message_id"),
        ("DELETE", "/v1/threads/{thread}/messages/{bad}", "message_id"),
        ("GET", "/v1/threads/{thread}/runs/{bad}", "run_id"),
        ("POST", "/v1/threads/{thread}/runs/{bad}/cancel", "run_id"),
        ("GET", "/v1/threads/{thread}/runs/{bad}/steps", "run_id"),
        ("GET", "/v1/files/{bad}", "file_id"),
        ("GET", "/v1/files/{bad}/content", "file_id"),
        ("DELETE", "/v1/files/{bad}", "file_id"),
    ],
)
def test_a_path_id_that_cannot_be_one_is_404(
    http: httpx2.Client, thread_id: str, bad_id: str, method: str, path: str, param: str
) -> None:
    url = path.format(bad=url_part(bad_id), thread=thread_id)
    response = http.request(method, url, json={} if method == "POST" else None)
    check_error(response, 404, param=param, code=None)


def test_a_body_id_that_cannot_be_one_is_404(
    http: httpx2.Client, thread_id: str, bad_id: str
) -> None:
    response = http.post(f"/v1/threads/{thread_id}/runs", json={"assistant_id": bad_id})
    check_error(response, 404, param="assistant_id", code=None)
    assert http.get(f"/v1/threads/{thread_id}/runs").json()["data"] == []

    before = newest_ids(http, "/v1/assistants")
    response = http.post(
        "/v1/assistants",
        json={"model": MODEL, "tool_resources": {"code_interpreter": {"file_ids": [bad_id]}}},
    )
    check_error(response, 404, param="tool_resources.code_interpreter.file_ids[0]", code=None)
    assert newest_ids(http, "/v1/assistants") == before

    messages = newest_ids(http, f"/v1/threads/{thread_id}/messages")
    response = http.post(
        f"/v1/threads/{thread_id}/messages",
        json={
            "role": "user",
            "content": "hi",
            "attachments": [{"file_id": bad_id, "tools": [{"type": "code_interpreter"}]}],
        },
    )
    check_error(response, 404, param="attachments[0].file_id", code=None)
    assert newest_ids(http, f"/v1/threads/{thread_id}/messages") == messages


@pytest.mark.parametrize("cursor", ["after", "before"])
@pytest.mark.parametrize(
    "path",
    [
        "/v1/assistants",
        "/v1/files",
        "/v1/threads/{thread}/messages",
        "/v1/threads/{thread}/runs",
    ],
)
def test_a_cursor_that_cannot_be_an_id_is_400(
    http: httpx2.Client, thread_id: str, bad_id: str, path: str, cursor: str
) -> None:
    url = f"{path.format(thread=thread_id)}?{cursor}={url_part(bad_id)}"
    check_error(http.get(url), 400, param=cursor, code="invalid_cursor")


def test_filters_that_cannot_match_list_nothing(
    http: httpx2.Client, thread_id: str, bad_id: str
) -> None:
    response = http.get(f"/v1/files?purpose={url_part(bad_id)}")
    assert response.status_code == 200, response.text
    assert response.json()["data"] == []
    response = http.get(f"/v1/threads/{thread_id}/messages?run_id={url_part(bad_id)}")
    assert response.status_code == 200, response.text
    assert response.json()["data"] == []


def test_the_sdk_does_not_retry_an_id_that_cannot_succeed(
    session_server: ServerThread, make_client: MakeClient
) -> None:
    answered: list[int] = []

    def count(response: httpx2.Response) -> None:
        answered.append(response.status_code)

    client = make_client(session_server, max_retries=2, extra_hooks=[count])
    with pytest.raises(openai.NotFoundError) as info:
        client.beta.assistants.retrieve(LONG)
    assert info.value.param == "assistant_id"
    assert answered == [404]


# Long values the core quotes in its errors


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"model": LONG}, "model", "string_above_max_length"),
        ({"model": "builtin/" + LONG}, "model", "string_above_max_length"),
        ({"model": "builtin/echo\x00"}, "model", "invalid_value"),
        (
            {"model": MODEL, "tools": [{"type": "function", "function": {"name": LONG}}]},
            "tools[0].function.name",
            "invalid_value",
        ),
        (
            {
                "model": MODEL,
                "response_format": {"type": "json_schema", "json_schema": {"name": LONG}},
            },
            "response_format.json_schema.name",
            "invalid_value",
        ),
        ({"model": MODEL, "reasoning_effort": LONG}, "reasoning_effort", "invalid_value"),
    ],
    ids=["bare-model", "model", "model-with-nul", "function-name", "schema-name", "effort"],
)
def test_a_long_value_is_a_400_not_a_429(
    http: httpx2.Client, body: dict[str, Any], param: str, code: str
) -> None:
    before = newest_ids(http, "/v1/assistants")
    check_error(http.post("/v1/assistants", json=body), 400, param=param, code=code)
    assert newest_ids(http, "/v1/assistants") == before


def test_a_long_metadata_key_is_a_400_not_a_429(http: httpx2.Client) -> None:
    before = newest_ids(http, "/v1/assistants")
    response = http.post("/v1/assistants", json={"model": MODEL, "metadata": {LONG: "v"}})
    assert response.status_code == 400, response.text[:500]
    error = response.json()["error"]
    assert error["code"] == "string_above_max_length"
    assert error["param"].startswith("metadata.aaa")
    assert len(error["param"]) < 100
    assert newest_ids(http, "/v1/assistants") == before


def test_a_long_purpose_is_a_400_not_a_429(http: httpx2.Client) -> None:
    before = newest_ids(http, "/v1/files")
    body, headers = form(
        (['Content-Disposition: form-data; name="purpose"'], LONG.encode()),
        file_part('name="file"; filename="a.txt"'),
    )
    response = http.post("/v1/files", content=body, headers=headers)
    check_error(response, 400, param="purpose", code="invalid_value")
    assert newest_ids(http, "/v1/files") == before


def test_a_long_model_name_is_404_on_retrieve(http: httpx2.Client) -> None:
    check_error(http.get(f"/v1/models/{LONG}"), 404, param="model", code=None)


def test_a_long_tool_choice_is_a_400_not_a_429(http: httpx2.Client, thread_id: str) -> None:
    assistant = http.post("/v1/assistants", json={"model": MODEL, "tools": [GET_WEATHER]}).json()
    response = http.post(
        f"/v1/threads/{thread_id}/runs",
        json={
            "assistant_id": assistant["id"],
            "tool_choice": {"type": "function", "function": {"name": LONG}},
        },
    )
    check_error(response, 400, param="tool_choice.function.name", code=None)
    assert http.get(f"/v1/threads/{thread_id}/runs").json()["data"] == []


def test_long_tool_call_ids_are_a_400_not_a_429(client: openai.OpenAI) -> None:
    # The engine quotes the call ID it refuses: the status stays small whoever writes it.
    assistant = client.beta.assistants.create(model=MODEL, tools=[GET_WEATHER])
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": '/call get_weather {"city": "Paris"}'}]
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert run.status == "requires_action"
    outputs: Any = [{"tool_call_id": LONG, "output": "1"}, {"tool_call_id": LONG, "output": "2"}]
    with pytest.raises(openai.BadRequestError) as info:
        client.beta.threads.runs.submit_tool_outputs(
            run_id=run.id, thread_id=thread.id, tool_outputs=outputs
        )
    assert info.value.param == "tool_outputs[1].tool_call_id"
    assert client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == (
        "requires_action"
    )


# A RESOURCE_EXHAUSTED the transport raised, not the core


@pytest.fixture
def oversized_status() -> grpc.aio.AioRpcError:
    """The error a real channel reports when a status's metadata overflows its limit."""

    async def call() -> grpc.aio.AioRpcError:
        async def handler(request: bytes, context: Any) -> bytes:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, LONG * 3)
            raise AssertionError("abort returned")

        methods = {"Call": grpc.unary_unary_rpc_method_handler(handler)}
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.T", methods),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                try:
                    await channel.unary_unary("/t.T/Call")(b"")
                except grpc.aio.AioRpcError as err:
                    return err
        finally:
            await server.stop(None)
        raise AssertionError("the call succeeded")

    return asyncio.run(call())


def test_transport_exhaustion_is_not_a_rate_limit(oversized_status: grpc.aio.AioRpcError) -> None:
    assert oversized_status.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    error = from_rpc_error(oversized_status)
    response = error.response()
    assert response.status not in (408, 409, 429)
    assert response.headers["x-should-retry"] == "false"
    assert error.error_type == "server_error"
    assert "metadata" not in error.message


# Found by the fuzz test (test_fuzz.py)


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/v1/models/a%0Ab", "model"),
        ("/v1/assistants/a%0Ab", "assistant_id"),
        ("/v1/vector_stores/a%0Ab/files", "vector_store_id"),
        ("/v1/no-such-thing/%0A", None),
    ],
)
def test_a_newline_in_a_path_is_a_404_in_openais_shape(
    http: httpx2.Client, path: str, param: str | None
) -> None:
    check_error(http.get(path), 404, param=param, code=None)


def test_an_api_key_with_a_tab_is_401(auth_server: ServerThread, make_http: MakeHttp) -> None:
    # HTTP allows a tab in a header value; gRPC metadata does not, so it cannot be forwarded.
    response = make_http(auth_server).get(
        "/v1/assistants", headers={"Authorization": f"Bearer {API_KEY}\tx"}
    )
    check_error(
        response, 401, param=None, code="invalid_api_key", error_type="authentication_error"
    )


def test_an_api_key_with_a_tab_is_ignored_without_auth(http: httpx2.Client) -> None:
    response = http.get("/v1/assistants", headers={"Authorization": "Bearer a\tb"})
    assert response.status_code == 200, response.text
