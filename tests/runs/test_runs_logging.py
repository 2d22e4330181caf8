"""What an operator reads in the server's log while runs go through it: `assistants-compat run`
with `COMPAT_LOG_FORMAT=json`, driven by the real SDK against a scripted upstream.

- every line of stderr is one JSON object (time, level, logger, message);
- a run that fails is logged once, at WARNING, with its ID, code and message;
- the upstream HTTP requests behind the runs are not logged one INFO line each.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx2
import openai
from harness.processes import Process
from harness.server import database_url, drop_database

from runs.upstream import ScriptedModel, ScriptedUpstream, http_error, text

WAIT = 30.0


def test_the_log_is_json_a_failed_run_is_one_warning_and_upstream_requests_are_quiet(
    tmp_path: Path, upstream: ScriptedUpstream, scripted: ScriptedModel
) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("COMPAT_", "OPENAI_"))}
    db_url = database_url(tmp_path)
    process = Process(
        "run",
        {
            **base,
            "COMPAT_DATABASE_URL": db_url,
            "COMPAT_HTTP_HOST": "127.0.0.1",
            "COMPAT_HTTP_PORT": "0",
            "COMPAT_GRPC_HOST": "127.0.0.1",
            "COMPAT_GRPC_PORT": "0",
            "COMPAT_PROVIDER_SCRIPTED_BASE_URL": upstream.base_url,
            "COMPAT_LOG_FORMAT": "json",
        },
        tmp_path,
    )
    try:
        base_url = process.wait_for(r"OpenAI base URL (\S+)\)")[1]
        client = openai.OpenAI(
            base_url=base_url,
            api_key="test",
            max_retries=0,
            http_client=httpx2.Client(timeout=WAIT),
        )
        assistant = client.beta.assistants.create(model=scripted.model)
        scripted.push(text("Fine ", "thanks."), http_error(503, "scripted outage"))
        done = client.beta.threads.create_and_run_poll(
            assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "hi"}]}
        )
        failed = client.beta.threads.create_and_run_poll(
            assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "hi"}]}
        )
        client.close()
    finally:
        assert process.stop() == 0
        drop_database(db_url)
    assert done.status == "completed"
    assert failed.status == "failed"
    assert failed.last_error is not None

    records: list[dict[str, Any]] = [json.loads(line) for line in process.log]
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys(), record
    about_failed = [record for record in records if failed.id in record["message"]]
    assert len(about_failed) == 1, about_failed
    assert about_failed[0]["level"] == "WARNING"
    assert failed.last_error.code in about_failed[0]["message"]
    assert failed.last_error.message in about_failed[0]["message"]
    assert "scripted outage" in failed.last_error.message
    assert not [record for record in records if done.id in record["message"]]
    per_request = [
        record
        for record in records
        if record["level"] == "INFO" and record["logger"].startswith(("httpx", "openai"))
    ]
    assert per_request == []
