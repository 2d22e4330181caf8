"""Validation of every JSON body the server answers against OpenAI's Assistants v2 OpenAPI spec.

The spec lives beside the repository (`../shared/openai-assistants-v2.openapi.yaml`). It is
loaded once, its OpenAPI-only `nullable: true` is rewritten into JSON Schema (draft 2020-12),
and each response schema is validated in place inside the spec, so that every
`$ref: '#/components/...'` resolves against the whole document.

Use `validate_response(method, path, status, body)` for raw exchanges, and `SchemaHook` as an
httpx2 response event hook so that every call the `openai` SDK makes is checked.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx2
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).resolve().parents[3] / "shared" / "openai-assistants-v2.openapi.yaml"
SPEC_URI = "urn:assistants-compat:openai-assistants-v2"
API_PREFIX = "/v1"
ERROR_SCHEMA_POINTER = "/components/schemas/ErrorResponse"

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Keys that describe a schema without constraining it; kept outside a nullable wrapper.
_ANNOTATIONS = ("description", "example", "examples", "title", "default", "deprecated")


class SchemaViolation(AssertionError):
    """A response that does not match the spec. An AssertionError, so that it fails a test."""


# Loading and rewriting the spec


def _is_bare_nullable(node: object) -> bool:
    return isinstance(node, dict) and node.get("nullable") is True and len(node) == 1


def _allows_null(node: dict[str, Any]) -> bool:
    kind = node.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(
        isinstance(branch, dict) and branch.get("type") == "null"
        for branch in node.get("anyOf", []) + node.get("oneOf", [])
    )


def openapi_to_json_schema(node: Any) -> Any:
    """A copy of an OpenAPI 3.x schema tree in which `nullable: true` means "or null".

    - `{type: X, nullable: true}` becomes `{type: [X, "null"]}` (and `null` joins an `enum`);
    - `{anyOf: [...], nullable: true}` gains a `{type: "null"}` branch;
    - `{$ref: …, nullable: true}` and `{allOf: [{$ref: …}, {nullable: true}]}` become
      `{anyOf: [{…}, {type: "null"}]}`, keeping annotations outside.
    Everything else is copied unchanged; JSON Schema ignores OpenAPI's other extra keywords.
    """
    if isinstance(node, list):
        return [openapi_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted: dict[str, Any] = {}
    nullable = node.get("nullable") is True
    for key, value in node.items():
        if key == "nullable" and isinstance(value, bool):
            continue
        if key == "allOf" and isinstance(value, list):
            kept = [item for item in value if not _is_bare_nullable(item)]
            if len(kept) != len(value):
                nullable = True
            converted[key] = openapi_to_json_schema(kept)
            continue
        converted[key] = openapi_to_json_schema(value)
    if not nullable or _allows_null(converted):
        return converted
    kind = converted.get("type")
    if isinstance(kind, str) and not ({"$ref", "allOf", "oneOf", "anyOf"} & converted.keys()):
        converted["type"] = [kind, "null"]
        if isinstance(converted.get("enum"), list) and None not in converted["enum"]:
            converted["enum"] = [*converted["enum"], None]
        return converted
    if isinstance(kind, list):
        converted["type"] = [*kind, "null"]
        return converted
    if set(converted) == {"anyOf"} or (
        "anyOf" in converted and set(converted) - {"anyOf"} <= set(_ANNOTATIONS)
    ):
        converted["anyOf"] = [*converted["anyOf"], {"type": "null"}]
        return converted
    annotations = {key: converted.pop(key) for key in _ANNOTATIONS if key in converted}
    if not converted:
        return annotations  # a bare `nullable: true` constrains nothing
    return {**annotations, "anyOf": [converted, {"type": "null"}]}


@functools.cache
def load_spec() -> dict[str, Any]:
    """The spec, rewritten for JSON Schema; loaded once per process. Fails loudly if missing."""
    if not SPEC_PATH.is_file():
        raise FileNotFoundError(
            f"The OpenAPI spec the tests validate against is missing: expected it at "
            f"{SPEC_PATH} (the shared directory beside the repository)."
        )
    with SPEC_PATH.open(encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    if not isinstance(raw, dict) or "paths" not in raw or "components" not in raw:
        raise ValueError(f"{SPEC_PATH} does not look like an OpenAPI document")
    spec = openapi_to_json_schema(raw)
    assert isinstance(spec, dict)
    return spec


@functools.cache
def _registry() -> Registry[Any]:
    resource: Resource[Any] = Resource.from_contents(load_spec(), default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
    return registry


@functools.cache
def _validator(pointer: str) -> Draft202012Validator:
    """A validator for the schema at `pointer` inside the spec, with every `$ref` resolvable."""
    return Draft202012Validator({"$ref": f"{SPEC_URI}#{pointer}"}, registry=_registry())


# Matching a request path to the spec's templates


@dataclass(frozen=True)
class PathTemplate:
    """One of the spec's paths, compiled to a regular expression over a decoded URL path."""

    template: str
    pattern: re.Pattern[str]
    literal_segments: int


def _compile(template: str) -> PathTemplate:
    parts: list[str] = []
    literal = 0
    for segment in template.strip("/").split("/"):
        match = re.fullmatch(r"\{(\w+)\}", segment)
        if match is None:
            parts.append(re.escape(segment))
            literal += 1
        elif match.group(1) == "model":
            parts.append(r".+")  # model IDs such as `ollama/llama3.2:3b` contain slashes
        else:
            parts.append(r"[^/]+")
    return PathTemplate(template, re.compile("/" + "/".join(parts)), literal)


@functools.cache
def _templates() -> tuple[PathTemplate, ...]:
    compiled = [_compile(template) for template in load_spec()["paths"]]
    # A literal segment beats a parameter: `/threads/runs` before `/threads/{thread_id}`.
    compiled.sort(key=lambda item: (-item.literal_segments, -len(item.template)))
    return tuple(compiled)


def match_path(path: str) -> str | None:
    """The spec template a decoded path (without the `/v1` prefix) belongs to, if any."""
    for template in _templates():
        if template.pattern.fullmatch(path):
            return template.template
    return None


def _escape_pointer(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _pointer(*tokens: str) -> str:
    return "".join("/" + _escape_pointer(token) for token in tokens)


def _follow(pointer: str) -> Any:
    node: Any = load_spec()
    for token in pointer.lstrip("/").split("/"):
        node = node[token.replace("~1", "/").replace("~0", "~")]
    return node


def response_schema_pointer(method: str, path: str, status: int) -> str:
    """The JSON pointer of the schema a JSON response must match.

    `path` is the URL path as sent (with or without the `/v1` prefix). The schema is the
    operation's `responses[status]` (or `default`); an error status the operation does not
    document is checked against `ErrorResponse`, the envelope every error shares.
    Raises SchemaViolation when the spec has no such operation or success status.
    """
    spec_path = strip_prefix(path)
    template = match_path(spec_path)
    if template is None:
        if status >= 400:
            return ERROR_SCHEMA_POINTER
        raise SchemaViolation(f"{method} {path} -> {status}: the spec has no such path")
    operation = load_spec()["paths"][template].get(method.lower())
    if not isinstance(operation, dict):
        if status >= 400:
            return ERROR_SCHEMA_POINTER
        raise SchemaViolation(f"{method} {path} -> {status}: the spec has no {method} {template}")
    responses = operation.get("responses", {})
    key = str(status) if str(status) in responses else "default" if "default" in responses else ""
    if not key:
        if status >= 400:
            return ERROR_SCHEMA_POINTER
        raise SchemaViolation(
            f"{method} {path} -> {status}: {method.upper()} {template} documents only "
            f"{sorted(responses)}"
        )
    pointer = _pointer("paths", template, method.lower(), "responses", key)
    response = _follow(pointer)
    if isinstance(response, dict) and isinstance(response.get("$ref"), str):
        pointer = response["$ref"].removeprefix("#")
        response = _follow(pointer)
    content = response.get("content", {}) if isinstance(response, dict) else {}
    if "application/json" not in content:
        if status >= 400:
            return ERROR_SCHEMA_POINTER
        raise SchemaViolation(f"{method} {path} -> {status}: the spec documents no JSON body")
    return pointer + _pointer("content", "application/json", "schema")


def strip_prefix(path: str) -> str:
    """The spec's form of a URL path: decoded, without the `/v1` prefix."""
    path = unquote(path)
    if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
        path = path[len(API_PREFIX) :] or "/"
    return path


def _describe(error: ValidationError) -> str:
    where = "".join(f"[{part!r}]" for part in error.absolute_path) or "(the body)"
    return f"at {where}: {error.message}"


def validate_response(method: str, path: str, status: int, body: object) -> None:
    """Check a decoded JSON body against the spec; raise SchemaViolation if it does not match."""
    pointer = response_schema_pointer(method, path, status)
    errors: Iterable[ValidationError] = _validator(pointer).iter_errors(body)
    error = best_match(errors)
    if error is not None:
        text = json.dumps(body)
        shown = text if len(text) <= 2000 else text[:2000] + "…"
        raise SchemaViolation(
            f"{method.upper()} {path} -> {status} does not match {pointer}: "
            f"{_describe(error)}\nbody: {shown}"
        )


# Checking live httpx2 responses


def is_json(response: httpx2.Response) -> bool:
    """Whether the response declares a JSON body."""
    media = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def check_response(response: httpx2.Response) -> None:
    """Validate one response of the API (paths under `/v1`); others are not the API's.

    Non-JSON bodies (file content, event streams) are skipped on success; an error status must
    always carry a JSON error envelope.
    """
    request = response.request
    path = request.url.path
    if not (path == API_PREFIX or path.startswith(API_PREFIX + "/")):
        return
    if request.method.upper() == "OPTIONS":
        return  # CORS preflights answer no body
    if not is_json(response):
        if response.status_code >= 400:
            response.read()
            raise SchemaViolation(
                f"{request.method} {path} -> {response.status_code}: an error must be a JSON "
                f"envelope, got content-type {response.headers.get('content-type')!r}: "
                f"{response.content[:300]!r}"
            )
        return
    response.read()
    try:
        body = json.loads(response.content)
    except ValueError as exc:
        raise SchemaViolation(
            f"{request.method} {path} -> {response.status_code}: declared JSON but is not: "
            f"{response.content[:300]!r}"
        ) from exc
    validate_response(request.method, path, response.status_code, body)


class SchemaHook:
    """An httpx2 response event hook that validates every API response.

    A violation raises (the `openai` SDK lets the AssertionError through, failing the call) and
    is also recorded in `violations`, which the fixture checks at teardown in case a test
    catches too broadly.
    """

    def __init__(self) -> None:
        load_spec()  # a missing spec fails every test that would rely on it, with its path
        self.violations: list[str] = []
        self.checked = 0

    def __call__(self, response: httpx2.Response) -> None:
        try:
            check_response(response)
        except SchemaViolation as exc:
            self.violations.append(str(exc))
            raise
        self.checked += 1

    def assert_clean(self) -> None:
        """Fail if any response broke the spec, even one whose error a test swallowed."""
        if self.violations:
            joined = "\n\n".join(self.violations)
            raise SchemaViolation(f"{len(self.violations)} response(s) broke the spec:\n{joined}")
