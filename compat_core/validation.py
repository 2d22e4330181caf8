"""Checks of meaning, with OpenAI's limits, shared by every service.

They live in the core so that a gRPC caller gets exactly the guarantees an HTTP caller does.
Each check raises an `ApiError` naming OpenAI's `param` for the offending field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

import orjson

from compat_core import errors, ids
from compat_core.retrieval import ranking
from compat_core.store.base import Order, PageQuery
from compat_core.v1 import common_pb2, messages_pb2

MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
MAX_NAME = 256
MAX_DESCRIPTION = 512
MAX_INSTRUCTIONS = 256_000
MAX_TOOLS = 128
MAX_CODE_INTERPRETER_FILES = 20
MAX_VECTOR_STORES = 1
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_MESSAGE_TEXT = 256_000
# OpenAI documents no limit on a model string; none of theirs, nor any provider's, nears it.
MAX_MODEL = 256
MAX_FILENAME = 512
# How deeply a JSON schema (function parameters, a response format) may nest. OpenAI's strict
# mode allows 10 levels; plain schemas get room to spare, but not enough to make every later
# reader of the schema (the edge's encoder, an upstream's) recurse without end.
MAX_JSON_DEPTH = 64
REASONING_EFFORTS = ("minimal", "low", "medium", "high")

_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# C0 and C1 controls, DEL among them: no file name or model string has a reason to hold one.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def metadata(values: Mapping[str, str], param: str = "metadata") -> None:
    """At most 16 pairs, keys up to 64 characters, values up to 512."""
    if len(values) > MAX_METADATA_PAIRS:
        raise errors.invalid(
            f"Invalid '{param}': too many properties. Expected an object with at most "
            f"{MAX_METADATA_PAIRS} properties, but got an object with {len(values)} properties.",
            param,
            "object_above_max_properties",
        )
    for key, value in values.items():
        if len(key) > MAX_METADATA_KEY:
            raise errors.invalid(
                f"Invalid '{param}': metadata keys can be at most {MAX_METADATA_KEY} "
                f"characters long, but the key {key[:20]!r}… has {len(key)}.",
                f"{param}.{errors.shown(key)}",
                "string_above_max_length",
            )
        if len(value) > MAX_METADATA_VALUE:
            raise errors.invalid(
                f"Invalid '{param}.{key}': string too long. Expected a string with maximum "
                f"length {MAX_METADATA_VALUE}, but got a string with length {len(value)}.",
                f"{param}.{key}",
                "string_above_max_length",
            )


def max_length(value: str, limit: int, param: str) -> None:
    """A string field no longer than OpenAI allows."""
    if len(value) > limit:
        raise errors.invalid(
            f"Invalid '{param}': string too long. Expected a string with maximum length "
            f"{limit}, but got a string with length {len(value)} instead.",
            param,
            "string_above_max_length",
        )


def free_of_controls(value: str, param: str, what: str) -> None:
    """No control characters (NUL, newlines, escapes) in a name that is shown and stored."""
    if _CONTROL.search(value):
        raise errors.invalid(
            f"Invalid '{param}': {what} must not contain control characters.",
            param,
            "invalid_value",
        )


def file_name(value: str, param: str = "file") -> None:
    """A file's name: present, at most 512 characters, no control characters."""
    if not value:
        raise errors.invalid(
            f"Missing required parameter: '{param}' (with a file name).",
            param,
            "missing_required_parameter",
        )
    max_length(value, MAX_FILENAME, param)
    free_of_controls(value, param, "a file name")


def model_name(value: str, param: str = "model") -> None:
    """A model string short enough to store and echo; which models exist is the registry's."""
    max_length(value, MAX_MODEL, param)
    free_of_controls(value, param, "a model name")


def number_range(value: float, low: float, high: float, param: str) -> None:
    """A number within [low, high]; NaN is out of every range."""
    if not (low <= value <= high):
        raise errors.invalid(
            f"Invalid '{param}': expected a number between {low:g} and {high:g}, "
            f"but got {value!r} instead.",
            param,
            "decimal_above_max_value" if value > high else "decimal_below_min_value",
        )


def sampling(temperature: float | None, top_p: float | None, param_prefix: str = "") -> None:
    """Temperature from 0 to 2 and top_p from 0 to 1, when given."""
    if temperature is not None:
        number_range(temperature, 0.0, 2.0, f"{param_prefix}temperature")
    if top_p is not None:
        number_range(top_p, 0.0, 1.0, f"{param_prefix}top_p")


def reasoning_effort(value: str | None, param: str = "reasoning_effort") -> None:
    """One of OpenAI's effort levels, when given."""
    if value is not None and value not in REASONING_EFFORTS:
        raise errors.invalid(
            f"Invalid '{param}': expected one of {', '.join(REASONING_EFFORTS)}, "
            f"but got {errors.shown(value)!r}.",
            param,
            "invalid_value",
        )


def json_object_text(text: str, param: str, code: str) -> None:
    """Text that must hold a JSON object (function parameters, JSON schemas), nested at most
    `MAX_JSON_DEPTH` levels; `code` is OpenAI's for a bad schema in that place."""
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise errors.invalid(f"Invalid '{param}': not valid JSON ({exc}).", param, code) from exc
    if not isinstance(parsed, dict):
        raise errors.invalid(f"Invalid '{param}': expected a JSON object.", param, code)
    if _nested_deeper(parsed, MAX_JSON_DEPTH):
        raise errors.invalid(
            f"Invalid '{param}': the schema nests more than {MAX_JSON_DEPTH} levels deep.",
            param,
            code,
        )


def _nested_deeper(value: object, limit: int) -> bool:
    """Whether objects and arrays nest more than `limit` levels (`{}` is one level).

    A walk with its own stack, since a value nested past Python's recursion limit is exactly
    what this looks for.
    """
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Iterable[object] = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def tools(values: Sequence[common_pb2.Tool], param: str = "tools") -> None:
    """At most 128 tools, each of a known kind, functions well named and with object schemas."""
    if len(values) > MAX_TOOLS:
        raise errors.invalid(
            f"Invalid '{param}': array too long. Expected an array with maximum length "
            f"{MAX_TOOLS}, but got an array with length {len(values)} instead.",
            param,
            "array_above_max_length",
        )
    # The other kinds these tools enable: the model is offered each as a function of its name.
    hosted = {tool.WhichOneof("kind") for tool in values} - {"function", None}
    for index, tool in enumerate(values):
        where = f"{param}[{index}]"
        kind = tool.WhichOneof("kind")
        if kind is None:
            raise errors.invalid(f"Invalid '{where}': the tool has no type.", f"{where}.type")
        if kind == "function":
            function = tool.function
            if not _FUNCTION_NAME.match(function.name):
                raise errors.invalid(
                    f"Invalid '{where}.function.name': {errors.shown(function.name)!r} does not "
                    "match '^[a-zA-Z0-9_-]{1,64}$'.",
                    f"{where}.function.name",
                    "invalid_value",
                )
            if function.HasField("parameters_json"):
                json_object_text(
                    function.parameters_json,
                    f"{where}.function.parameters",
                    "invalid_function_parameters",
                )
            if function.name in hosted:
                raise errors.invalid(
                    f"Invalid '{where}.function.name': '{function.name}' is the name of the "
                    f"{function.name} tool, which these tools enable.",
                    f"{where}.function.name",
                    "invalid_value",
                )
        elif kind == "file_search":
            _file_search_tool(tool.file_search, f"{where}.file_search")


def _file_search_tool(settings: common_pb2.FileSearchTool, where: str) -> None:
    if settings.HasField("max_num_results"):
        count = settings.max_num_results
        if not 1 <= count <= 50:
            raise errors.invalid(
                f"Invalid '{where}.max_num_results': expected 1 to 50, got {count}.",
                f"{where}.max_num_results",
            )
    if settings.HasField("ranking_options"):
        options = settings.ranking_options
        try:
            ranking.ranker(options.ranker or None)
            ranking.select((), ranking.MAX_RESULTS, options.score_threshold)
        except ranking.RankingOptionsError as exc:
            raise errors.invalid(
                exc.message.replace(f"'{exc.param}'", f"'{where}.{exc.param}'"),
                f"{where}.{exc.param}",
                "invalid_value",
            ) from exc


def tool_resources(
    resources: common_pb2.ToolResources, param: str = "tool_resources", *, inline: bool = False
) -> None:
    """At most 20 code-interpreter files and one vector store: named (`vector_store_ids`) or,
    on the creates that allow it (`inline`), made from files (`vector_stores`), not both.

    The vector stores to make are checked further by the service that makes them
    (`services.inline_stores`), which looks their files up.
    """
    files = resources.code_interpreter.file_ids
    if len(files) > MAX_CODE_INTERPRETER_FILES:
        raise errors.invalid(
            f"Invalid '{param}.code_interpreter.file_ids': at most "
            f"{MAX_CODE_INTERPRETER_FILES} files, got {len(files)}.",
            f"{param}.code_interpreter.file_ids",
            "array_above_max_length",
        )
    search = resources.file_search
    if search.vector_stores and not inline:
        where = f"{param}.file_search.vector_stores"
        raise errors.invalid(
            f"Unrecognized request argument supplied: {where}", where, "unknown_parameter"
        )
    if search.vector_store_ids and search.vector_stores:
        raise errors.invalid(
            f"Invalid '{param}.file_search': only one of 'vector_store_ids' or "
            "'vector_stores' can be given, not both.",
            f"{param}.file_search",
            "invalid_value",
        )
    for name, count in (
        ("vector_store_ids", len(search.vector_store_ids)),
        ("vector_stores", len(search.vector_stores)),
    ):
        if count > MAX_VECTOR_STORES:
            raise errors.invalid(
                f"Invalid '{param}.file_search.{name}': array too long. Expected an array "
                f"with maximum length {MAX_VECTOR_STORES}, but got an array with length "
                f"{count} instead.",
                f"{param}.file_search.{name}",
                "array_above_max_length",
            )


def response_format(value: common_pb2.ResponseFormat, param: str = "response_format") -> None:
    """A known format; a JSON schema format carries a well-formed name and schema."""
    if value.type == common_pb2.RESPONSE_FORMAT_TYPE_UNSPECIFIED:
        raise errors.invalid(f"Invalid '{param}': missing type.", f"{param}.type")
    if value.type == common_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA:
        schema = value.json_schema
        if not _FUNCTION_NAME.match(schema.name):
            raise errors.invalid(
                f"Invalid '{param}.json_schema.name': {errors.shown(schema.name)!r} does not "
                "match '^[a-zA-Z0-9_-]{1,64}$'.",
                f"{param}.json_schema.name",
                "invalid_value",
            )
        if schema.HasField("schema_json"):
            json_object_text(
                schema.schema_json, f"{param}.json_schema.schema", "invalid_json_schema"
            )


def page_query(
    limit: int | None,
    order: common_pb2.SortOrder.ValueType,
    after: str,
    before: str,
    *,
    default_limit: int = DEFAULT_LIMIT,
    max_limit: int = MAX_LIMIT,
) -> PageQuery:
    """OpenAI's paging parameters: limit 1 to 100 (default 20), order asc|desc (default desc)."""
    if limit is None:
        limit = default_limit
    if not 1 <= limit <= max_limit:
        raise errors.invalid(
            f"Invalid 'limit': integer {'below minimum' if limit < 1 else 'above maximum'} "
            f"value. Expected a value between 1 and {max_limit}, but got {limit} instead.",
            "limit",
            "integer_below_min_value" if limit < 1 else "integer_above_max_value",
        )
    if order not in (
        common_pb2.SORT_ORDER_UNSPECIFIED,
        common_pb2.SORT_ORDER_ASC,
        common_pb2.SORT_ORDER_DESC,
    ):
        raise errors.invalid("Invalid 'order': expected 'asc' or 'desc'.", "order")
    for param, cursor in (("after", after), ("before", before)):
        if cursor and not ids.well_formed(cursor):
            raise unknown_cursor(param, cursor)
    resolved: Order = "asc" if order == common_pb2.SORT_ORDER_ASC else "desc"
    return PageQuery(limit=limit, order=resolved, after=after, before=before)


def unknown_cursor(param: str, object_id: str) -> errors.ApiError:
    """A cursor naming no object of the list: a 400 on that parameter.

    Also what a cursor that could not be an ID at all gets, checked before the store sees it.
    """
    return errors.invalid(
        f"Invalid '{param}': no object with ID '{errors.shown(object_id)}' in this list.",
        param,
        "invalid_cursor",
    )


def message_input(message: messages_pb2.MessageInput, param: str) -> None:
    """A role, at least one content part of a kind a user may send, and sane attachments."""
    if message.role not in (messages_pb2.MESSAGE_ROLE_USER, messages_pb2.MESSAGE_ROLE_ASSISTANT):
        raise errors.invalid(
            f"Invalid '{param}role': expected 'user' or 'assistant'.", f"{param}role"
        )
    if not message.content:
        raise errors.invalid(
            f"Invalid '{param}content': expected a non-empty string or array of content parts.",
            f"{param}content",
            "empty_array",
        )
    for index, part in enumerate(message.content):
        where = f"{param}content[{index}]"
        kind = part.WhichOneof("part")
        if kind == "text":
            max_length(part.text.value, MAX_MESSAGE_TEXT, f"{where}.text")
        elif kind == "image_file":
            if not part.image_file.file_id:
                raise errors.invalid(
                    f"Missing required parameter: '{where}.image_file.file_id'.",
                    f"{where}.image_file.file_id",
                    "missing_required_parameter",
                )
        elif kind == "image_url":
            if not part.image_url.url.startswith(("http://", "https://", "data:image/")):
                raise errors.invalid(
                    f"Invalid '{where}.image_url.url': expected an http(s) or data URL.",
                    f"{where}.image_url.url",
                    "invalid_url",
                )
        else:
            raise errors.invalid(
                f"Invalid '{where}.type': expected 'text', 'image_file' or 'image_url'.",
                f"{where}.type",
                "invalid_value",
            )
    for index, attachment in enumerate(message.attachments):
        if not attachment.file_id:
            raise errors.invalid(
                f"Missing required parameter: '{param}attachments[{index}].file_id'.",
                f"{param}attachments[{index}].file_id",
                "missing_required_parameter",
            )
        if messages_pb2.ATTACHMENT_TOOL_UNSPECIFIED in attachment.tools:
            raise errors.invalid(
                f"Invalid '{param}attachments[{index}].tools': unknown tool type.",
                f"{param}attachments[{index}].tools",
            )
    metadata(message.metadata, f"{param}metadata")


def required_id(value: str, param: str) -> None:
    """A path or body ID that must be present, checked before any store looks it up.

    One that could not be an ID (too long, or holding characters no ID has: a NUL, a space)
    names nothing, so it gets the 404 of a missing object, as OpenAI answers an ID it never
    issued; every store answers it the same, without being asked.
    """
    if not value:
        raise errors.invalid(
            f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
        )
    if not ids.well_formed(value):
        raise errors.no_such(param, value)
