"""The HTTP edge itself: auth, CORS, body limits, bad JSON, unknown routes, health, request
IDs, the not-yet-implemented runs, and a self-test of the spec validator the suite relies on."""

from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
from typing import Any

import httpx2
import openai
import pytest
from harness import ALLOWED_ORIGIN, API_KEY, MakeClient, MakeHttp, MakeServer, assert_api_error
from harness.schema import SchemaHook, SchemaViolation, match_path, validate_response
from harness.server import ServerThread, postgres_admin_url

MIB = 1024 * 1024


def error_of(response: httpx2.Response) -> dict[str, Any]:
    """The `error` object of an error response, after checking the envelope's shape."""
    assert response.headers.get("content-type", "").startswith("application/json")
    body = response.json()
    validate_response(
        response.request.method, response.request.url.path, response.status_code, body
    )
    error = body["error"]
    assert isinstance(error, dict)
    return error


# Authentication


def test_wrong_key_is_401(auth_server: ServerThread, make_client: MakeClient) -> None:
    client = make_client(auth_server, api_key="wrong")
    with pytest.raises(openai.AuthenticationError) as info:
        client.beta.assistants.list()
    assert_api_error(info.value, 401, "authentication_error")


def test_missing_key_is_401(auth_server: ServerThread, make_http: MakeHttp) -> None:
    http = make_http(auth_server)
    response = http.get("/v1/assistants")
    assert response.status_code == 401
    assert error_of(response)["type"] == "authentication_error"
    response = http.get("/v1/assistants", headers={"Authorization": "Basic azE6"})
    assert response.status_code == 401


def test_right_key_works(auth_server: ServerThread, make_client: MakeClient) -> None:
    client = make_client(auth_server, api_key=API_KEY)
    created = client.beta.assistants.create(model="builtin/echo")
    assert client.beta.assistants.retrieve(created.id).id == created.id


def test_health_needs_no_key(auth_server: ServerThread, make_http: MakeHttp) -> None:
    response = make_http(auth_server).get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_health_on_default_server(http: httpx2.Client) -> None:
    response = http.get("/health")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"status": "ok"}


# CORS

PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type, openai-beta",
}


def test_preflight_for_an_allowed_origin(cors_server: ServerThread, make_http: MakeHttp) -> None:
    # Browsers send no credentials on a preflight: it must pass without a key.
    response = make_http(cors_server).options(
        "/v1/assistants", headers={"Origin": ALLOWED_ORIGIN, **PREFLIGHT}
    )
    assert 200 <= response.status_code < 300, response.text
    assert response.headers.get("access-control-allow-origin") == ALLOWED_ORIGIN
    methods = response.headers.get("access-control-allow-methods", "").upper()
    assert "POST" in methods
    allowed_headers = response.headers.get("access-control-allow-headers", "").lower()
    assert "authorization" in allowed_headers
    assert "content-type" in allowed_headers


def test_preflight_for_another_origin_gets_no_allowance(
    cors_server: ServerThread, make_http: MakeHttp
) -> None:
    response = make_http(cors_server).options(
        "/v1/assistants", headers={"Origin": "https://evil.example", **PREFLIGHT}
    )
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-methods" not in response.headers


def test_actual_request_from_an_allowed_origin(
    cors_server: ServerThread, make_http: MakeHttp
) -> None:
    http = make_http(cors_server)
    response = http.get(
        "/v1/assistants",
        headers={"Origin": ALLOWED_ORIGIN, "Authorization": f"Bearer {API_KEY}"},
    )
    assert response.status_code == 200
    assert response.headers.get("access-control-allow-origin") == ALLOWED_ORIGIN
    denied = http.get(
        "/v1/assistants",
        headers={"Origin": "https://evil.example", "Authorization": f"Bearer {API_KEY}"},
    )
    assert "access-control-allow-origin" not in denied.headers
    allowed = {"Origin": ALLOWED_ORIGIN, "Authorization": f"Bearer {API_KEY}"}
    for streamed in streamed_responses(make_http(cors_server, headers=allowed)):
        assert streamed.headers.get("access-control-allow-origin") == ALLOWED_ORIGIN
        assert streamed.headers.get("access-control-expose-headers") == "x-request-id"


def test_wildcard_cors_by_default(http: httpx2.Client) -> None:
    response = http.options(
        "/v1/assistants", headers={"Origin": "https://anywhere.example", **PREFLIGHT}
    )
    assert 200 <= response.status_code < 300
    assert response.headers.get("access-control-allow-origin") in ("*", "https://anywhere.example")


# Bodies the edge refuses


def test_json_body_over_the_limit_is_413(http: httpx2.Client) -> None:
    body = b'{"model": "builtin/echo", "instructions": "' + b"x" * (40 * MIB) + b'"}'
    response = http.post(
        "/v1/assistants", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    error_of(response)


def test_upload_over_the_limit_is_413(make_server: MakeServer, make_client: MakeClient) -> None:
    client = make_client(make_server(max_upload_bytes=MIB))
    with pytest.raises(openai.APIStatusError) as info:
        client.files.create(file=("big.bin", b"\0" * (2 * MIB)), purpose="assistants")
    assert info.value.status_code == 413
    assert client.files.create(file=("ok.bin", b"\0" * 1000), purpose="assistants").bytes == 1000


@pytest.mark.parametrize(
    "content",
    [b'{"model": ', b"not json at all", b"\xff\xfe\x00", b"[1, 2, 3]", b'"a string"'],
    ids=["truncated", "text", "binary", "array", "string"],
)
def test_malformed_json_is_400(http: httpx2.Client, content: bytes) -> None:
    response = http.post(
        "/v1/assistants", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert error_of(response)["type"] == "invalid_request_error"


def test_wrong_field_type_is_400(http: httpx2.Client) -> None:
    response = http.post("/v1/assistants", json={"model": "builtin/echo", "temperature": "hot"})
    assert response.status_code == 400
    error = error_of(response)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "temperature"


def test_missing_model_is_400(http: httpx2.Client) -> None:
    response = http.post("/v1/assistants", json={"name": "no model"})
    assert response.status_code == 400
    assert error_of(response)["param"] == "model"


# Routes


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/no-such-thing"), ("POST", "/v1/assistants/x/y/z"), ("GET", "/nowhere")],
)
def test_unknown_route_is_404_json(http: httpx2.Client, method: str, path: str) -> None:
    response = http.request(method, path)
    assert response.status_code == 404
    assert error_of(response)["type"] == "invalid_request_error"


def test_a_method_a_path_lacks_is_405_json_naming_the_ones_it_has(http: httpx2.Client) -> None:
    response = http.put("/v1/assistants", json={})
    assert response.status_code == 405
    error = error_of(response)
    assert error["type"] == "invalid_request_error"
    assert error["message"] == "Invalid method for URL (PUT /v1/assistants)"
    assert response.headers["allow"] == "GET, HEAD, POST"
    assert response.headers.get("x-request-id")
    # A path with an ID in it, and an OPTIONS that is no CORS preflight.
    response = http.request("OPTIONS", "/v1/threads/thread_x/runs/run_y")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST"


def test_every_response_has_a_request_id(
    http: httpx2.Client, auth_server: ServerThread, make_http: MakeHttp
) -> None:
    responses = [
        http.get("/health"),
        http.get("/v1/assistants"),
        http.post("/v1/assistants", json={"model": "builtin/echo"}),
        http.get("/v1/assistants/asst_nope"),
        http.get("/v1/no-such-thing"),
        http.delete("/v1/assistants"),
        http.options("/v1/assistants", headers=PREFLIGHT),
        http.post("/v1/assistants", content=b"{", headers={"Content-Type": "application/json"}),
        make_http(auth_server).get("/v1/assistants"),  # 401 from the auth layer
        *streamed_responses(http),
    ]
    ids = [response.headers.get("x-request-id") for response in responses]
    assert all(ids), f"missing x-request-id: {[r.status_code for r in responses]} -> {ids}"
    assert len(set(ids)) == len(ids), "request IDs must be unique"


@pytest.mark.skipif(
    postgres_admin_url() is not None, reason="breaks its store through SQLite's own file"
)
def test_a_fault_in_the_core_is_logged_under_ids_the_caller_can_quote(
    make_server: MakeServer, make_http: MakeHttp, caplog: pytest.LogCaptureFixture
) -> None:
    # A store the core cannot read (its table gone under it) is a fault of the server: the
    # caller gets a 500 that reveals nothing but an error ID; the core logs the traceback
    # under it, and the edge logs it beside the request ID, so either ID leads to it.
    server = make_server()
    http = make_http(server)
    created = http.post("/v1/assistants", json={"model": "builtin/echo"}).json()
    database = server.database_url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(database)) as conn:
        conn.execute("DROP TABLE assistants")
        conn.commit()
    with caplog.at_level(logging.WARNING):
        response = http.get(
            f"/v1/assistants/{created['id']}", headers={"x-request-id": "req_fault_1"}
        )
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "req_fault_1"
    error = response.json()["error"]
    assert error["type"] == "server_error"
    assert "assistants" not in error["message"]
    error_id = re.search(r"error ID (err_\w+)", error["message"])
    assert error_id is not None
    core = [record for record in caplog.records if record.name == "compat_core.guard"]
    assert len(core) == 1
    assert "GetAssistant" in core[0].getMessage()
    assert error_id[1] in core[0].getMessage()
    assert core[0].exc_info is not None
    edge = [record for record in caplog.records if record.name == "http_edge.errors"]
    assert len(edge) == 1
    assert "req_fault_1" in edge[0].getMessage()
    assert error_id[1] in edge[0].getMessage()


def streamed_responses(http: httpx2.Client, headers: dict[str, str] | None = None) -> list[Any]:
    """A run's event stream and a file's download: responses whose handlers send their
    headers themselves, read to their end."""
    assistant = http.post("/v1/assistants", json={"model": "builtin/echo"}).json()
    uploaded = http.post(
        "/v1/files", files={"file": ("a.txt", b"abc")}, data={"purpose": "assistants"}
    ).json()
    responses = []
    with http.stream(
        "POST",
        "/v1/threads/runs",
        json={"assistant_id": assistant["id"], "stream": True},
        headers=headers,
    ) as events:
        events.read()
        responses.append(events)
    responses.append(http.get(f"/v1/files/{uploaded['id']}/content", headers=headers))
    for response in responses:
        assert response.status_code == 200
    assert responses[0].headers["content-type"].startswith("text/event-stream")
    assert responses[1].content == b"abc"
    return responses


def test_sdk_exposes_the_request_id(client: openai.OpenAI) -> None:
    raw = client.beta.assistants.with_raw_response.list(limit=1)
    assert raw.headers.get("x-request-id")
    with pytest.raises(openai.NotFoundError) as info:
        client.beta.assistants.retrieve("asst_nope")
    assert info.value.request_id


# The validator the whole suite leans on


GOOD_ASSISTANT: dict[str, Any] = {
    "id": "asst_abc",
    "object": "assistant",
    "created_at": 1_700_000_000,
    "name": None,
    "description": None,
    "model": "builtin/echo",
    "instructions": None,
    "tools": [{"type": "code_interpreter"}],
    "tool_resources": None,
    "metadata": {},
    "temperature": 1.0,
    "top_p": 1.0,
    "response_format": "auto",
}


def test_validator_accepts_a_good_body() -> None:
    validate_response("POST", "/v1/assistants", 200, GOOD_ASSISTANT)
    validate_response("GET", "/v1/assistants/asst_abc", 200, GOOD_ASSISTANT)
    listing = {
        "object": "list",
        "data": [GOOD_ASSISTANT],
        "first_id": "asst_abc",
        "last_id": "asst_abc",
        "has_more": False,
    }
    validate_response("GET", "/v1/assistants", 200, listing)
    error = {
        "error": {"message": "m", "type": "invalid_request_error", "param": None, "code": None}
    }
    validate_response("GET", "/v1/assistants/asst_x", 404, error)
    validate_response("GET", "/v1/nowhere", 404, error)


@pytest.mark.parametrize("missing", ["model", "id", "tools", "metadata"])
def test_validator_rejects_a_missing_required_field(missing: str) -> None:
    body = {key: value for key, value in GOOD_ASSISTANT.items() if key != missing}
    with pytest.raises(SchemaViolation, match=missing):
        validate_response("POST", "/v1/assistants", 200, body)


def test_validator_rejects_wrong_types_and_bad_errors() -> None:
    with pytest.raises(SchemaViolation):
        validate_response("GET", "/v1/assistants/a", 200, {**GOOD_ASSISTANT, "created_at": "now"})
    with pytest.raises(SchemaViolation):
        validate_response("GET", "/v1/assistants/a", 200, {**GOOD_ASSISTANT, "object": "thread"})
    with pytest.raises(SchemaViolation, match="param"):
        validate_response(
            "GET", "/v1/a", 404, {"error": {"message": "m", "type": "t", "code": None}}
        )
    with pytest.raises(SchemaViolation):
        validate_response("GET", "/v1/a", 500, {"detail": "oops"})
    with pytest.raises(SchemaViolation, match="no such path"):
        validate_response("GET", "/v1/not-in-the-spec", 200, {})


def test_validator_understands_nullable() -> None:
    # RunObject uses OpenAPI's `nullable: true` (on a $ref and in an allOf).
    from harness.schema import load_spec

    run = load_spec()["components"]["schemas"]["RunObject"]["properties"]
    for field in ("response_format", "truncation_strategy", "tool_choice"):
        assert {"type": "null"} in run[field]["anyOf"], field


def test_nullable_rewrites() -> None:
    from harness.schema import openapi_to_json_schema as rewrite

    assert rewrite({"type": "string", "nullable": True}) == {"type": ["string", "null"]}
    assert rewrite({"type": "string", "enum": ["a"], "nullable": True}) == {
        "type": ["string", "null"],
        "enum": ["a", None],
    }
    assert rewrite({"$ref": "#/x", "nullable": True, "description": "d"}) == {
        "description": "d",
        "anyOf": [{"$ref": "#/x"}, {"type": "null"}],
    }
    assert rewrite({"allOf": [{"$ref": "#/x"}, {"nullable": True}]}) == {
        "anyOf": [{"allOf": [{"$ref": "#/x"}]}, {"type": "null"}]
    }
    assert rewrite({"anyOf": [{"type": "integer"}], "nullable": True}) == {
        "anyOf": [{"type": "integer"}, {"type": "null"}]
    }
    untouched = {"type": "object", "properties": {"nullable": {"type": "boolean"}}}
    assert rewrite(untouched) == untouched
    assert rewrite({"type": "integer", "nullable": False}) == {"type": "integer"}


def test_validator_matches_templates() -> None:
    assert match_path("/threads/runs") == "/threads/runs"
    assert match_path("/threads/thread_1") == "/threads/{thread_id}"
    assert match_path("/threads/t/messages/m") == "/threads/{thread_id}/messages/{message_id}"
    assert match_path("/models/ollama/llama3.2:3b") == "/models/{model}"
    assert match_path("/nowhere") is None


def test_hook_fails_the_sdk_call_on_a_violation() -> None:
    # The hook raises an AssertionError through the SDK and also records it for teardown.
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json={"id": "asst_x", "object": "assistant"})

    hook = SchemaHook()
    http_client = httpx2.Client(
        transport=httpx2.MockTransport(handler), event_hooks={"response": [hook]}
    )
    client = openai.OpenAI(
        base_url="http://test.invalid/v1", api_key="k", max_retries=0, http_client=http_client
    )
    with pytest.raises(SchemaViolation):
        client.beta.assistants.retrieve("asst_x")
    assert len(hook.violations) == 1
    with pytest.raises(SchemaViolation):
        hook.assert_clean()
    client.close()


def test_hook_skips_non_json_success_but_not_non_json_errors() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/content"):
            return httpx2.Response(200, content=b"\x00raw", headers={"content-type": "text/plain"})
        return httpx2.Response(502, content=b"Bad Gateway", headers={"content-type": "text/html"})

    hook = SchemaHook()
    with httpx2.Client(
        transport=httpx2.MockTransport(handler), event_hooks={"response": [hook]}
    ) as h:
        assert h.get("http://x/v1/files/file-1/content").content == b"\x00raw"
        with pytest.raises(SchemaViolation, match="JSON"):
            h.get("http://x/v1/assistants")
    assert len(hook.violations) == 1
