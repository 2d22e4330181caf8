"""Fuzzing the HTTP surface against OpenAI's own spec: no request, however malformed, gets a
5xx or a status the SDKs would retry.

Schemathesis reads `openai-assistants-v2.openapi.yaml` as it is and turns each operation into
a Hypothesis strategy, of requests that fit the spec and of requests that break it. Random
path IDs only ever reach the 404 of a missing object, so half the requests carry the IDs of
real objects instead (an assistant, a thread waiting on a tool call, its message, run and
step, a file), which takes them past the ID checks into the checks of their bodies.

Bounded, and the same every run: a fixed number of examples per operation (derandomized, no
shrinking, no example database), a few hundred requests a store in all. Select it alone with
`pytest -m fuzz`; it runs with the rest of the suite too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import openai
import pytest
import schemathesis
from harness.schema import SPEC_PATH
from harness.server import ServerThread, database_url, drop_database
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from runs.tools import GET_WEATHER
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from schemathesis.core.transport import Response
from schemathesis.generation.case import Case

pytestmark = pytest.mark.fuzz

EXAMPLES_PER_OPERATION: Final = 8
REQUEST_TIMEOUT: Final = 30.0
# What the SDKs retry by default. 501 is left to the check below: the server answers it for
# what it does not implement yet, with `x-should-retry: false`.
RETRYABLE: Final = frozenset({408, 409, 429}) | frozenset(range(500, 600))
ERROR_FIELDS: Final = frozenset({"message", "type", "param", "code"})

SCHEMA = schemathesis.openapi.from_path(SPEC_PATH)
LOADED: Final = list(SCHEMA.get_all_operations())
OPERATIONS: Final = sorted(
    (result.ok().method.upper(), result.ok().path) for result in LOADED if isinstance(result, Ok)
)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A server of the fuzz's own: it leaves hundreds of odd objects behind."""
    server = ServerThread(database_url=database_url(tmp_path_factory.mktemp("fuzz")))
    server.start()
    try:
        yield server
    finally:
        try:
            server.stop()
        finally:
            drop_database(server.database_url)


@pytest.fixture(scope="module")
def real_ids(fuzz_server: ServerThread) -> dict[str, str]:
    """Path parameters naming real objects, the run among them waiting for a tool output."""
    with openai.OpenAI(base_url=fuzz_server.base_url, api_key="fuzz", max_retries=0) as client:
        assistant = client.beta.assistants.create(model="builtin/echo", tools=[GET_WEATHER])
        thread = client.beta.threads.create(
            messages=[{"role": "user", "content": '/call get_weather {"city": "Oslo"}'}]
        )
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
        )
        assert run.status == "requires_action"
        message = client.beta.threads.messages.list(thread.id).data[0]
        step = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data[0]
        file = client.files.create(file=("fuzz.txt", b"fuzz"), purpose="assistants")
    return {
        "assistant_id": assistant.id,
        "thread_id": thread.id,
        "message_id": message.id,
        "run_id": run.id,
        "step_id": step.id,
        "file_id": file.id,
        "model": "builtin/echo",
    }


def check(case: Case[Any], response: Response) -> None:
    """No 5xx but an unimplemented path's 501, no retryable status, errors in OpenAI's shape."""
    status = response.status_code
    where = f"{case.as_curl_command()}\n-> {status} {response.text[:500]}"
    if status == 501:
        assert response.headers.get("x-should-retry") == ["false"], where
    else:
        assert status not in RETRYABLE, where
    if status >= 400:
        try:
            body = response.json()
        except ValueError:
            pytest.fail(f"an error that is not JSON: {where}")
        assert isinstance(body, dict), where
        assert isinstance(body.get("error"), dict), where
        assert body["error"].keys() >= ERROR_FIELDS, where


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_request_gets_a_server_error(
    fuzz_server: ServerThread, real_ids: dict[str, str], method: str, path: str
) -> None:
    operation = SCHEMA[path][method]
    names = {parameter.name for parameter in operation.path_parameters}
    known = {name: value for name, value in real_ids.items() if name in names}
    cases: Any = st.one_of(
        *(
            operation.as_strategy(generation_mode=mode, path_parameters=fixed)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            for fixed in ({}, known)
        )
    )

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def fuzz(case: Case[Any]) -> None:
        check(case, case.call(base_url=fuzz_server.base_url, timeout=REQUEST_TIMEOUT))

    fuzz()


def test_every_operation_is_fuzzed() -> None:
    # An operation the loader could not read would be fuzzed by no test, silently.
    assert len(OPERATIONS) == len(LOADED)
    assert ("POST", "/threads/{thread_id}/runs/{run_id}/submit_tool_outputs") in OPERATIONS
