"""Pieces shared by every resource: JSON type checks, tools, tool resources, response
formats, metadata, enums and list envelopes.

Requests are checked for JSON *types* only (a string where a string belongs, an object where
an object belongs): that is translation, so it is the edge's job, and it names the offending
`param` the way OpenAI does. What values mean (lengths, ranges, IDs, models) is the core's to
judge, so values pass through untouched. Responses are built by hand from proto fields, with
every field OpenAI's schema requires present and `null` where unset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeVar

import orjson

from compat_core.v1 import common_pb2
from http_edge.errors import (
    HttpError,
    invalid_type,
    invalid_value,
    missing,
    out_of_range,
    unknown_argument,
)

Json = dict[str, Any]
_E = TypeVar("_E", bound=int)

_INT32_MIN: Final = -(2**31)
_INT32_MAX: Final = 2**31 - 1

# --------------------------------------------------------------------------- type checks


def join(prefix: str, key: str) -> str:
    """The `param` of `key` inside the object at `prefix`, in OpenAI's dotted notation."""
    return f"{prefix}.{key}" if prefix else key


def check_keys(obj: Mapping[str, Any], allowed: frozenset[str], prefix: str = "") -> None:
    """Refuse fields the API does not define, as OpenAI does, instead of dropping them."""
    for key in obj:
        if key not in allowed:
            raise unknown_argument(join(prefix, key))


def require(obj: Mapping[str, Any], key: str, prefix: str = "") -> Any:
    """The value of a required field; absent and `null` are both missing."""
    value = obj.get(key)
    if value is None:
        raise missing(join(prefix, key))
    return value


def expect_object(value: object, param: str) -> Json:
    if not isinstance(value, dict):
        raise invalid_type(param, "an object", value)
    return value


def expect_list(value: object, param: str) -> list[Any]:
    if not isinstance(value, list):
        raise invalid_type(param, "an array", value)
    return value


def expect_str(value: object, param: str) -> str:
    if not isinstance(value, str):
        raise invalid_type(param, "a string", value)
    return value


def expect_bool(value: object, param: str) -> bool:
    if not isinstance(value, bool):
        raise invalid_type(param, "a boolean", value)
    return value


def expect_number(value: object, param: str) -> float:
    # bool is an int in Python but not a number in JSON.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid_type(param, "a number", value)
    return float(value)


def expect_int32(value: object, param: str) -> int:
    """An integer the proto's int32 can carry; its meaning is the core's to judge."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_type(param, "an integer", value)
    if not _INT32_MIN <= value <= _INT32_MAX:
        raise out_of_range(param, value)
    return value


def expect_str_list(value: object, param: str) -> list[str]:
    items = expect_list(value, param)
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise invalid_type(f"{param}[{index}]", "a string", item)
    return items


def opt_str(obj: Mapping[str, Any], key: str, prefix: str = "") -> str | None:
    """An optional string field: absent and `null` are both unset."""
    value = obj.get(key)
    return None if value is None else expect_str(value, join(prefix, key))


def choice(value: object, param: str, table: Mapping[str, _E]) -> _E:
    """A string from a closed set, as its proto enum value.

    An unknown string cannot be carried by the enum to the core, so the edge refuses it.
    """
    if not isinstance(value, str):
        raise invalid_type(param, "a string", value)
    try:
        return table[value]
    except KeyError:
        raise invalid_value(param, value, tuple(table)) from None


def enum_name(names: tuple[str | None, ...], value: int) -> str | None:
    """A proto enum value as OpenAI's string; unspecified or unknown values become `null`."""
    return names[value] if 0 <= value < len(names) else None


# ------------------------------------------------------------------------------ metadata


def metadata_in(value: object, param: str = "metadata") -> dict[str, str]:
    """`metadata`: `null` is the empty map (create: none; update: cleared)."""
    if value is None:
        return {}
    obj = expect_object(value, param)
    for key, item in obj.items():
        if not isinstance(item, str):
            raise invalid_type(f"{param}.{key}", "a string", item)
    return obj


def metadata_out(metadata: Mapping[str, str]) -> dict[str, str]:
    # Most objects have none, and testing a proto map is far quicker than copying it.
    return dict(metadata.items()) if metadata else {}


# --------------------------------------------------------------------------------- tools

_TOOL_TYPES: Final = ("code_interpreter", "file_search", "function")
_FUNCTION_TOOL_KEYS: Final = frozenset({"type", "function"})
_TYPE_ONLY_KEYS: Final = frozenset({"type"})
_FILE_SEARCH_TOOL_KEYS: Final = frozenset({"type", "file_search"})
_FUNCTION_KEYS: Final = frozenset({"name", "description", "parameters", "strict"})
_FILE_SEARCH_KEYS: Final = frozenset({"max_num_results", "ranking_options"})
_RANKING_KEYS: Final = frozenset({"ranker", "score_threshold"})


def tools_in(value: object, param: str = "tools") -> list[common_pb2.Tool]:
    items = expect_list(value, param)
    return [tool_in(item, f"{param}[{index}]") for index, item in enumerate(items)]


def tool_in(value: object, param: str) -> common_pb2.Tool:
    obj = expect_object(value, param)
    kind = require(obj, "type", param)
    if kind == "function":
        check_keys(obj, _FUNCTION_TOOL_KEYS, param)
        function = require(obj, "function", param)
        return common_pb2.Tool(function=function_in(function, join(param, "function")))
    if kind == "code_interpreter":
        check_keys(obj, _TYPE_ONLY_KEYS, param)
        return common_pb2.Tool(code_interpreter=common_pb2.CodeInterpreterTool())
    if kind == "file_search":
        check_keys(obj, _FILE_SEARCH_TOOL_KEYS, param)
        return common_pb2.Tool(file_search=_file_search_in(obj.get("file_search"), param))
    if not isinstance(kind, str):
        raise invalid_type(join(param, "type"), "a string", kind)
    raise invalid_value(join(param, "type"), kind, _TOOL_TYPES)


def function_in(value: object, param: str) -> common_pb2.FunctionTool:
    obj = expect_object(value, param)
    check_keys(obj, _FUNCTION_KEYS, param)
    function = common_pb2.FunctionTool(
        name=expect_str(require(obj, "name", param), f"{param}.name")
    )
    description = opt_str(obj, "description", param)
    if description is not None:
        function.description = description
    parameters = obj.get("parameters")
    if parameters is not None:
        function.parameters_json = _schema_text(
            parameters, f"{param}.parameters", "invalid_function_parameters"
        )
    strict = obj.get("strict")
    if strict is not None:
        function.strict = expect_bool(strict, f"{param}.strict")
    return function


def _file_search_in(value: object, param: str) -> common_pb2.FileSearchTool:
    tool = common_pb2.FileSearchTool()
    if value is None:
        return tool
    prefix = join(param, "file_search")
    obj = expect_object(value, prefix)
    check_keys(obj, _FILE_SEARCH_KEYS, prefix)
    max_results = obj.get("max_num_results")
    if max_results is not None:
        tool.max_num_results = expect_int32(max_results, f"{prefix}.max_num_results")
    ranking = obj.get("ranking_options")
    if ranking is not None:
        tool.ranking_options.CopyFrom(ranking_options_in(ranking, f"{prefix}.ranking_options"))
    return tool


def ranking_options_in(value: object, param: str) -> common_pb2.FileSearchRankingOptions:
    obj = expect_object(value, param)
    check_keys(obj, _RANKING_KEYS, param)
    threshold = require(obj, "score_threshold", param)
    options = common_pb2.FileSearchRankingOptions(
        score_threshold=expect_number(threshold, f"{param}.score_threshold")
    )
    ranker = opt_str(obj, "ranker", param)
    if ranker is not None:
        options.ranker = ranker
    return options


def _schema_text(value: object, param: str, code: str) -> str:
    """A JSON Schema object as the text the proto carries, keys in the client's order.

    orjson encodes at most 255 levels of nesting (it parses up to 1,024): a schema deeper
    than that cannot be carried to the core at all, so the edge refuses it as the core
    refuses one past its own, lower, depth limit (`code` is OpenAI's for that place).
    """
    try:
        return orjson.dumps(expect_object(value, param)).decode()
    except orjson.JSONEncodeError:
        raise HttpError(
            400, f"Invalid '{param}': the schema nests too deeply.", param=param, code=code
        ) from None


def tools_out(tools: Iterable[common_pb2.Tool]) -> list[Json]:
    out: list[Json] = []
    for tool in tools:
        kind = tool.WhichOneof("kind")
        if kind == "function":
            out.append({"type": "function", "function": function_out(tool.function)})
        elif kind == "code_interpreter":
            out.append({"type": "code_interpreter"})
        elif kind == "file_search":
            out.append(_file_search_tool_out(tool.file_search))
    return out


def function_out(function: common_pb2.FunctionTool) -> Json:
    out: Json = {"name": function.name}
    if function.HasField("description"):
        out["description"] = function.description
    if function.HasField("parameters_json"):
        out["parameters"] = orjson.loads(function.parameters_json)
    if function.HasField("strict"):
        out["strict"] = function.strict
    return out


def _file_search_tool_out(tool: common_pb2.FileSearchTool) -> Json:
    settings: Json = {}
    if tool.HasField("max_num_results"):
        settings["max_num_results"] = tool.max_num_results
    if tool.HasField("ranking_options"):
        ranking: Json = {"score_threshold": tool.ranking_options.score_threshold}
        if tool.ranking_options.ranker:
            ranking["ranker"] = tool.ranking_options.ranker
        settings["ranking_options"] = ranking
    if not settings:
        return {"type": "file_search"}
    return {"type": "file_search", "file_search": settings}


# ------------------------------------------------------------------------ tool resources

_RESOURCE_KEYS: Final = frozenset({"code_interpreter", "file_search"})
_CODE_INTERPRETER_KEYS: Final = frozenset({"file_ids"})
_FILE_SEARCH_RESOURCE_KEYS: Final = frozenset({"vector_store_ids"})
_FILE_SEARCH_CREATE_KEYS: Final = frozenset({"vector_store_ids", "vector_stores"})
_VECTOR_STORE_KEYS: Final = frozenset({"file_ids", "chunking_strategy", "metadata"})
_CHUNKING_KEYS: Final = frozenset({"type", "static"})
_STATIC_KEYS: Final = frozenset({"max_chunk_size_tokens", "chunk_overlap_tokens"})


def tool_resources_in(
    value: object, param: str = "tool_resources", *, vector_stores: bool = False
) -> common_pb2.ToolResources:
    """`tool_resources`; `vector_stores` (inline creation) exists on create requests only."""
    resources = common_pb2.ToolResources()
    obj = expect_object(value, param)
    check_keys(obj, _RESOURCE_KEYS, param)
    code = obj.get("code_interpreter")
    if code is not None:
        prefix = f"{param}.code_interpreter"
        code_obj = expect_object(code, prefix)
        check_keys(code_obj, _CODE_INTERPRETER_KEYS, prefix)
        # Set even when empty: the client named the tool's resources, with no files.
        resources.code_interpreter.SetInParent()
        file_ids = code_obj.get("file_ids")
        if file_ids is not None:
            resources.code_interpreter.file_ids.extend(
                expect_str_list(file_ids, f"{prefix}.file_ids")
            )
    search = obj.get("file_search")
    if search is not None:
        prefix = f"{param}.file_search"
        search_obj = expect_object(search, prefix)
        allowed = _FILE_SEARCH_CREATE_KEYS if vector_stores else _FILE_SEARCH_RESOURCE_KEYS
        check_keys(search_obj, allowed, prefix)
        resources.file_search.SetInParent()
        store_ids = search_obj.get("vector_store_ids")
        if store_ids is not None:
            resources.file_search.vector_store_ids.extend(
                expect_str_list(store_ids, f"{prefix}.vector_store_ids")
            )
        stores = search_obj.get("vector_stores")
        if stores is not None:
            for index, store in enumerate(expect_list(stores, f"{prefix}.vector_stores")):
                resources.file_search.vector_stores.append(
                    _vector_store_in(store, f"{prefix}.vector_stores[{index}]")
                )
    return resources


def _vector_store_in(value: object, param: str) -> common_pb2.VectorStoreSpec:
    obj = expect_object(value, param)
    check_keys(obj, _VECTOR_STORE_KEYS, param)
    spec = common_pb2.VectorStoreSpec()
    file_ids = obj.get("file_ids")
    if file_ids is not None:
        spec.file_ids.extend(expect_str_list(file_ids, f"{param}.file_ids"))
    spec.metadata.update(metadata_in(obj.get("metadata"), f"{param}.metadata"))
    chunking = obj.get("chunking_strategy")
    if chunking is not None:
        spec.chunking_strategy.CopyFrom(
            chunking_strategy_in(chunking, f"{param}.chunking_strategy")
        )
    return spec


def chunking_strategy_in(value: object, param: str) -> common_pb2.ChunkingStrategy:
    """`{"type": "auto"}` or `{"type": "static", "static": {…}}`; the core checks the sizes."""
    obj = expect_object(value, param)
    check_keys(obj, _CHUNKING_KEYS, param)
    kind = require(obj, "type", param)
    strategy = common_pb2.ChunkingStrategy()
    if kind == "auto":
        strategy.auto.SetInParent()
    elif kind == "static":
        static = expect_object(require(obj, "static", param), join(param, "static"))
        check_keys(static, _STATIC_KEYS, join(param, "static"))
        for key in sorted(_STATIC_KEYS):
            number = expect_int32(
                require(static, key, join(param, "static")), f"{param}.static.{key}"
            )
            setattr(strategy.static, key, number)
    elif isinstance(kind, str):
        raise invalid_value(join(param, "type"), kind, ("auto", "static"))
    else:
        raise invalid_type(join(param, "type"), "a string", kind)
    return strategy


def tool_resources_out(resources: common_pb2.ToolResources) -> Json:
    """Only the parts that are set; `{}` when none are, as OpenAI answers."""
    out: Json = {}
    if resources.HasField("code_interpreter"):
        out["code_interpreter"] = {"file_ids": list(resources.code_interpreter.file_ids)}
    if resources.HasField("file_search"):
        out["file_search"] = {"vector_store_ids": list(resources.file_search.vector_store_ids)}
    return out


# ----------------------------------------------------------------------- response format

_RESPONSE_FORMAT_TYPES: Final[Mapping[str, common_pb2.ResponseFormatType.ValueType]] = {
    "text": common_pb2.RESPONSE_FORMAT_TYPE_TEXT,
    "json_object": common_pb2.RESPONSE_FORMAT_TYPE_JSON_OBJECT,
    "json_schema": common_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA,
}
_RESPONSE_FORMAT_KEYS: Final = frozenset({"type", "json_schema"})
_JSON_SCHEMA_KEYS: Final = frozenset({"name", "description", "schema", "strict"})


def response_format_in(value: object, param: str = "response_format") -> common_pb2.ResponseFormat:
    """`"auto"`, or `{"type": "text" | "json_object" | "json_schema", …}`."""
    if isinstance(value, str):
        if value != "auto":
            raise invalid_value(param, value, ("auto",))
        return common_pb2.ResponseFormat(type=common_pb2.RESPONSE_FORMAT_TYPE_AUTO)
    if not isinstance(value, dict):
        raise invalid_type(param, "'auto' or an object", value)
    check_keys(value, _RESPONSE_FORMAT_KEYS, param)
    kind = choice(require(value, "type", param), f"{param}.type", _RESPONSE_FORMAT_TYPES)
    out = common_pb2.ResponseFormat(type=kind)
    if kind == common_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA:
        prefix = f"{param}.json_schema"
        schema = expect_object(require(value, "json_schema", param), prefix)
        check_keys(schema, _JSON_SCHEMA_KEYS, prefix)
        out.json_schema.name = expect_str(require(schema, "name", prefix), f"{prefix}.name")
        description = opt_str(schema, "description", prefix)
        if description is not None:
            out.json_schema.description = description
        body = schema.get("schema")
        if body is not None:
            out.json_schema.schema_json = _schema_text(
                body, f"{prefix}.schema", "invalid_json_schema"
            )
        strict = schema.get("strict")
        if strict is not None:
            out.json_schema.strict = expect_bool(strict, f"{prefix}.strict")
    elif "json_schema" in value:
        raise unknown_argument(f"{param}.json_schema")
    return out


_AUTO: Final = "auto"
_TEXT: Final = {"type": "text"}
_JSON_OBJECT: Final = {"type": "json_object"}


def response_format_out(fmt: common_pb2.ResponseFormat) -> str | Json:
    kind = fmt.type
    if kind == common_pb2.RESPONSE_FORMAT_TYPE_TEXT:
        return dict(_TEXT)
    if kind == common_pb2.RESPONSE_FORMAT_TYPE_JSON_OBJECT:
        return dict(_JSON_OBJECT)
    if kind == common_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA:
        schema = fmt.json_schema
        inner: Json = {"name": schema.name}
        if schema.HasField("description"):
            inner["description"] = schema.description
        if schema.HasField("schema_json"):
            inner["schema"] = orjson.loads(schema.schema_json)
        if schema.HasField("strict"):
            inner["strict"] = schema.strict
        return {"type": "json_schema", "json_schema": inner}
    # AUTO, and UNSPECIFIED which the server never answers but which means the same.
    return _AUTO


# --------------------------------------------------------------------- paging and deletes


def list_out(data: list[Json], first_id: str, last_id: str, has_more: bool) -> Json:
    """OpenAI's list envelope; `first_id`/`last_id` are strings in its schema, so the proto's
    empty string is kept for an empty page."""
    return {
        "object": "list",
        "data": data,
        "first_id": first_id,
        "last_id": last_id,
        "has_more": has_more,
    }


def deleted_out(status: common_pb2.DeletionStatus, object_name: str) -> Json:
    return {"id": status.id, "object": object_name, "deleted": status.deleted}


def usage_out(usage: common_pb2.Usage) -> Json:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


Setter = Callable[[Any, object, str], None]


def apply_fields(
    target: Any, body: Mapping[str, Any], setters: Mapping[str, Setter], prefix: str = ""
) -> list[str]:
    """Run each present field's setter and return the names present, for an update mask.

    A `null` value leaves the field unset: on create that is "not given", on update the mask
    still names it, which clears it.
    """
    present: list[str] = []
    for key, value in body.items():
        setter = setters.get(key)
        if setter is None:
            raise unknown_argument(join(prefix, key))
        if value is not None:
            setter(target, value, join(prefix, key))
        present.append(key)
    return present
