"""Attribute `filters` of `POST /v1/vector_stores/{id}/search` through the official SDKs
(Python, and Node's `vectorStores.search`), on whichever store the run uses: every operator,
nesting, filtering that never leaves the answer short of `max_num_results`, attributes
changed after ingestion, and the 400s naming the offending part of a bad filter, from the
edge (JSON types) and from the core (meaning, also for gRPC callers)."""

from __future__ import annotations

import json
from typing import Any

import grpc
import openai
import pytest
from harness import assert_api_error
from harness.grpc_client import GrpcClient, rich_error
from harness.server import ServerThread
from openai.types.shared_params import ComparisonFilter
from runs.nodejs import node_with_locked_packages, run_script

from compat_core.v1 import vector_stores_pb2 as pb

# Each file once, with its attributes; every file holds the word searched for. apac's `year`
# is a string that reads like us's number.
FILES: dict[str, dict[str, str | float | bool]] = {
    "eu.md": {"region": "eu", "year": 2023, "draft": False},
    "us.md": {"region": "us", "year": 2024, "draft": True},
    "apac.md": {"region": "apac", "year": "2024"},
}
QUERY = "lantern"


def text_of(name: str) -> bytes:
    return f"# {name}\n\nA lantern hangs in the {name.removesuffix('.md')} office.\n".encode()


@pytest.fixture
def store_id(client: openai.OpenAI) -> str:
    vector_store_id = client.vector_stores.create(name="filters").id
    for name, attributes in FILES.items():
        done = client.vector_stores.files.upload_and_poll(
            vector_store_id=vector_store_id,
            file=(name, text_of(name)),
            attributes=attributes,
            poll_interval_ms=50,
        )
        assert done.status == "completed"
    return vector_store_id


def eq(key: str, value: str | float | bool) -> ComparisonFilter:
    return {"type": "eq", "key": key, "value": value}


OPERATORS: dict[str, tuple[Any, set[str]]] = {
    "eq": (eq("region", "eu"), {"eu.md"}),
    "eq boolean": (eq("draft", True), {"us.md"}),
    "eq a string that reads as a number": (eq("year", "2024"), {"apac.md"}),
    "ne": ({"type": "ne", "key": "region", "value": "eu"}, {"us.md", "apac.md"}),
    "gt": ({"type": "gt", "key": "year", "value": 2023}, {"us.md"}),
    "gte": ({"type": "gte", "key": "year", "value": 2023}, {"eu.md", "us.md"}),
    "lt": ({"type": "lt", "key": "year", "value": 2024}, {"eu.md"}),
    "lte": ({"type": "lte", "key": "year", "value": 2024.0}, {"eu.md", "us.md"}),
    "in": ({"type": "in", "key": "region", "value": ["eu", "apac"]}, {"eu.md", "apac.md"}),
    "nin": ({"type": "nin", "key": "region", "value": ["eu"]}, {"us.md", "apac.md"}),
    "a missing key": (eq("colour", "red"), set()),
    "and": (
        {
            "type": "and",
            "filters": [eq("draft", False), {"type": "lt", "key": "year", "value": 2030}],
        },
        {"eu.md"},
    ),
    "or of and": (
        {
            "type": "or",
            "filters": [
                eq("region", "apac"),
                {
                    "type": "and",
                    "filters": [{"type": "gt", "key": "year", "value": 2023}, eq("draft", True)],
                },
            ],
        },
        {"apac.md", "us.md"},
    ),
}


def filenames(client: openai.OpenAI, store_id: str, filters: Any, **kwargs: Any) -> set[str]:
    return {
        r.filename
        for r in client.vector_stores.search(store_id, query=QUERY, filters=filters, **kwargs)
    }


def test_each_operator_and_nesting_select_the_files(client: openai.OpenAI, store_id: str) -> None:
    assert filenames(client, store_id, None) == set(FILES)
    seen = {name: filenames(client, store_id, f) for name, (f, _) in OPERATORS.items()}
    assert seen == {name: expected for name, (_, expected) in OPERATORS.items()}


def test_results_carry_the_attributes_the_filter_matched(
    client: openai.OpenAI, store_id: str
) -> None:
    [result] = client.vector_stores.search(store_id, query=QUERY, filters=eq("region", "us"))
    assert result.filename == "us.md"
    assert result.attributes == {"region": "us", "year": 2024, "draft": True}
    assert "lantern" in result.content[0].text


def test_a_filter_keeping_one_of_many_files_still_fills_max_num_results(
    client: openai.OpenAI,
) -> None:
    # The noise files say the query word far more often than the kept one: a limit spent
    # before filtering would return none of the kept file's chunks.
    noise = [
        client.files.create(file=(f"noise{n}.txt", b"lantern " * 400), purpose="assistants").id
        for n in range(4)
    ]
    kept_text = " ".join(f"Line {n}: a lantern among plenty of other words." for n in range(80))
    kept = client.files.create(file=("kept.txt", kept_text.encode()), purpose="assistants").id
    store = client.vector_stores.create(
        file_ids=[*noise, kept],
        chunking_strategy={
            "type": "static",
            "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0},
        },
    )
    for file_id in [*noise, kept]:
        done = client.vector_stores.files.poll(
            file_id, vector_store_id=store.id, poll_interval_ms=50
        )
        assert done.status == "completed"
        client.vector_stores.files.update(
            file_id,
            vector_store_id=store.id,
            attributes={"kind": "kept" if file_id == kept else "noise"},
        )
    unfiltered = list(client.vector_stores.search(store.id, query=QUERY, max_num_results=10))
    assert {r.file_id for r in unfiltered} <= set(noise), "the noise must outrank the kept file"

    results = list(
        client.vector_stores.search(
            store.id, query=QUERY, max_num_results=10, filters=eq("kind", "kept")
        )
    )

    assert len(results) == 10
    assert {r.file_id for r in results} == {kept}
    assert {r.filename for r in results} == {"kept.txt"}


def test_changed_attributes_are_searched_as_changed(client: openai.OpenAI, store_id: str) -> None:
    eu = next(
        f.id
        for f in client.vector_stores.files.list(store_id)
        if f.attributes is not None and f.attributes.get("region") == "eu"
    )
    client.vector_stores.files.update(eu, vector_store_id=store_id, attributes={"region": "us"})

    assert filenames(client, store_id, eq("region", "eu")) == set()
    assert filenames(client, store_id, eq("region", "us")) == {"eu.md", "us.md"}
    assert filenames(client, store_id, eq("draft", False)) == set(), "its other attributes went"

    client.vector_stores.files.update(eu, vector_store_id=store_id, attributes={})
    assert filenames(client, store_id, {"type": "in", "key": "region", "value": ["us"]}) == {
        "us.md"
    }


def deep(levels: int) -> dict[str, Any]:
    """A comparison under `levels - 1` compounds."""
    f: dict[str, Any] = {"type": "eq", "key": "region", "value": "eu"}
    for _ in range(levels - 1):
        f = {"type": "and", "filters": [f]}
    return f


BAD_FILTERS: list[tuple[Any, str, str | None]] = [
    # Refused by the edge: JSON types and the closed set of `type` names.
    ("eu", "filters", "invalid_type"),
    ({"type": "like", "key": "region", "value": "eu"}, "filters.type", "invalid_value"),
    ({"type": 3, "key": "region", "value": "eu"}, "filters.type", "invalid_type"),
    ({"key": "region", "value": "eu"}, "filters.type", "missing_required_parameter"),
    ({"type": "eq", "value": "eu"}, "filters.key", "missing_required_parameter"),
    ({"type": "eq", "key": "region"}, "filters.value", "missing_required_parameter"),
    ({"type": "eq", "key": 1, "value": "eu"}, "filters.key", "invalid_type"),
    ({"type": "eq", "key": "region", "value": {"a": 1}}, "filters.value", "invalid_type"),
    ({"type": "in", "key": "region", "value": ["eu", True]}, "filters.value[1]", "invalid_type"),
    ({"type": "eq", "key": "region", "value": "eu", "extra": 1}, "filters.extra", None),
    (
        {"type": "and", "filters": [eq("a", 1), {"type": "or"}]},
        "filters.filters[1].filters",
        "missing_required_parameter",
    ),
    (
        {"type": "and", "filters": [eq("a", 1), {"type": "eqq", "key": "a", "value": 1}]},
        "filters.filters[1].type",
        "invalid_value",
    ),
    (deep(9), "filters" + ".filters[0]" * 8, "invalid_value"),
    # Refused by the core: what the values mean.
    ({"type": "and", "filters": []}, "filters.filters", "empty_array"),
    (
        {"type": "or", "filters": [eq("a", 1), {"type": "and", "filters": []}]},
        "filters.filters[1].filters",
        "empty_array",
    ),
    ({"type": "gt", "key": "draft", "value": True}, "filters.value", "invalid_type"),
    ({"type": "in", "key": "region", "value": "eu"}, "filters.value", "invalid_type"),
    ({"type": "eq", "key": "region", "value": ["eu"]}, "filters.value", "invalid_type"),
    (
        {
            "type": "or",
            "filters": [{"type": "in", "key": "k", "value": list(range(999))}, eq("k", 1)],
        },
        "filters.filters[1]",
        "invalid_value",
    ),
]


@pytest.mark.parametrize(
    ("filters", "param", "code"), BAD_FILTERS, ids=[b[1] + " " + str(b[2]) for b in BAD_FILTERS]
)
def test_a_bad_filter_is_a_400_naming_its_part(
    client: openai.OpenAI, filters: Any, param: str, code: str | None
) -> None:
    empty = client.vector_stores.create().id
    with pytest.raises(openai.BadRequestError) as info:
        client.vector_stores.search(empty, query=QUERY, filters=filters)
    assert_api_error(info.value, 400, "invalid_request_error", param=param)
    assert info.value.code == code


def test_grpc_callers_get_the_cores_checks(client: openai.OpenAI, grpc_client: GrpcClient) -> None:
    empty = client.vector_stores.create().id
    f = pb.AttributeFilter(
        comparison=pb.AttributeComparison(key="k", value=pb.AttributeFilterValue(string_value="v"))
    )
    for _ in range(8):
        f = pb.AttributeFilter(
            compound=pb.AttributeCompound(operator=pb.ATTRIBUTE_COMPOUND_OPERATOR_OR, filters=[f])
        )
    cases = {
        "filters.type": pb.AttributeFilter(
            comparison=pb.AttributeComparison(
                key="k", value=pb.AttributeFilterValue(string_value="v")
            )
        ),
        "filters" + ".filters[0]" * 8: f,
    }
    for param, given in cases.items():
        request = pb.SearchVectorStoreRequest(vector_store_id=empty, query=[QUERY], filters=given)
        with pytest.raises(grpc.RpcError) as info:
            grpc_client.vector_stores.SearchVectorStore(request)
        error = rich_error(info.value)
        assert (error.code, error.param) == (grpc.StatusCode.INVALID_ARGUMENT, param)


def test_the_node_sdk_searches_with_filters(
    session_server: ServerThread, client: openai.OpenAI, store_id: str
) -> None:
    node = node_with_locked_packages()
    plan = {
        "in": {"query": QUERY, "filters": OPERATORS["in"][0]},
        "or of and": {"query": QUERY, "filters": OPERATORS["or of and"][0], "max_num_results": 5},
        "bad": {"query": QUERY, "filters": {"type": "and", "filters": []}},
    }

    output = run_script(
        node, "vector_search.mjs", session_server.base_url, store_id, json.dumps(plan)
    ).ok()

    assert {r["filename"] for r in output["in"]["results"]} == {"eu.md", "apac.md"}
    assert {r["filename"] for r in output["or of and"]["results"]} == {"apac.md", "us.md"}
    us = next(r for r in output["or of and"]["results"] if r["filename"] == "us.md")
    assert us["attributes"] == {"region": "us", "year": 2024, "draft": True}
    assert "lantern" in us["text"]
    assert output["bad"]["error"] == {
        "status": 400,
        "type": "invalid_request_error",
        "param": "filters.filters",
        "code": "empty_array",
    }
