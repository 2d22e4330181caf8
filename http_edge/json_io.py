"""Request bodies and query strings in, JSON responses out, with orjson.

These are the only places that touch raw HTTP input, so malformed JSON and malformed query
parameters become OpenAI-shaped 400s here, before any conversion or RPC runs.

Bodies are taken only as sent, without a content coding: a `Content-Encoding` other than
`identity` is a 415 (with `Accept-Encoding: identity`, as RFC 9110 asks). OpenAI's SDKs never
compress a request; aiohttp would decode gzip and deflate, but brotli and zstd only when their
optional decoders happen to be installed, so one answer for every coding is the one that does
not change with the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, NamedTuple

import orjson
from aiohttp import hdrs, web
from multidict import MultiMapping

from compat_core.v1 import common_pb2
from http_edge.errors import HttpError, invalid_value, out_of_range

JSON_CONTENT_TYPE: Final = "application/json"

_UNPARSABLE: Final = (
    "We could not parse the JSON body of your request. The API expects a JSON object as "
    "the request body; check that it is valid JSON and that you send it as such."
)
_TOO_LARGE: Final = "The request body is larger than the server accepts ({limit} bytes)."
_IDENTITY: Final = "identity"

_ORDERS: Final[Mapping[str, common_pb2.SortOrder.ValueType]] = {
    "asc": common_pb2.SORT_ORDER_ASC,
    "desc": common_pb2.SORT_ORDER_DESC,
}
_INT32_MAX: Final = 2**31 - 1
_INCLUDE_KEYS: Final = ("include[]", "include")


class PageParams(NamedTuple):
    """OpenAI's paging query parameters, ready for the list RPCs."""

    limit: int | None
    order: common_pb2.SortOrder.ValueType
    after: str
    before: str


def refuse_content_coding(request: web.Request) -> None:
    """A 415 for a body sent with a content coding (see the module's docstring)."""
    coding = request.headers.get(hdrs.CONTENT_ENCODING, "").strip()
    if coding and coding.lower() != _IDENTITY:
        raise HttpError(
            415,
            f"Unsupported Content-Encoding '{coding[:64]}': send the request body uncompressed.",
            code="unsupported_content_encoding",
            headers={hdrs.ACCEPT_ENCODING: _IDENTITY},
            close=True,
        )


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """Read the body as a JSON object; an empty body counts as `{}`, as OpenAI treats it."""
    refuse_content_coding(request)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise HttpError(
            413, _TOO_LARGE.format(limit=request.client_max_size), code="request_too_large"
        ) from None
    if not raw:
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise HttpError(400, _UNPARSABLE) from None
    if not isinstance(body, dict):
        raise HttpError(400, _UNPARSABLE)
    return body


def json_response(payload: object, status: int = 200) -> web.Response:
    """Serialize `payload` with orjson; the fast path of every unary route."""
    return web.Response(status=status, body=orjson.dumps(payload), content_type=JSON_CONTENT_TYPE)


def page_params(query: MultiMapping[str]) -> PageParams:
    """`limit`, `order`, `after` and `before`: shapes are checked here, ranges by the core."""
    raw_limit = query.get("limit")
    limit: int | None = None
    if raw_limit is not None and raw_limit != "":
        limit = _query_int(raw_limit, "limit")
    raw_order = query.get("order")
    order: common_pb2.SortOrder.ValueType = common_pb2.SORT_ORDER_UNSPECIFIED
    if raw_order is not None and raw_order != "":
        try:
            order = _ORDERS[raw_order]
        except KeyError:
            # The enum cannot carry an unknown order to the core, so the edge refuses it.
            raise invalid_value("order", raw_order, ("asc", "desc")) from None
    return PageParams(limit, order, query.get("after", ""), query.get("before", ""))


def include_param(query: MultiMapping[str]) -> list[str]:
    """`include[]` as the SDKs send it (brackets), or repeated `include` keys."""
    values: list[str] = []
    for key in _INCLUDE_KEYS:
        values.extend(query.getall(key, ()))
    return values


def _query_int(raw: str, param: str) -> int:
    digits = raw[1:] if raw[:1] == "-" else raw
    if not (digits.isascii() and digits.isdigit()):
        raise HttpError(
            400,
            f"Invalid '{param}': expected an integer, but got '{raw}' instead.",
            param=param,
            code="invalid_type",
        )
    value = int(raw)
    if not -_INT32_MAX - 1 <= value <= _INT32_MAX:
        raise out_of_range(param, value)
    return value
