"""The code_interpreter tool in runs (issue 17), through the Python SDK's helpers.

`builtin/echo` runs code when a message says `/call code_interpreter {"code": …}` (the code
JSON-escaped on one line) and answers `code_interpreter returned: …` with what the model is
shown of the call, links to written files included, which become `file_path` annotations; a
scripted upstream plays a model that writes its code in small pieces and links a file in its
reply. Every test runs real code in the real sandbox: without one they skip, and fail when
`COMPAT_TEST_REQUIRE_SANDBOX` is set (CI).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Final

import openai
import orjson
from harness import MakeClient, MakeServer
from harness.server import ServerThread
from openai import AssistantEventHandler
from openai.types.beta import Assistant
from openai.types.beta.threads import ImageFile, Message, Text, TextDelta
from openai.types.beta.threads.runs import RunStep, ToolCall, ToolCallDelta
from openai.types.beta.threads.runs.code_interpreter_tool_call import CodeInterpreter
from typing_extensions import override

from runs.nodejs import run_script
from runs.support import POLL_MS, run_messages, run_steps
from runs.upstream import Call, ScriptedModel, text, tool_calls

PNG: Final = b"\x89PNG\r\n\x1a\n"
SALES: Final = "month,amount\n1,10\n2,32\n3,58\n"
PLOT: Final = (
    "import pandas as pd\n"
    "import matplotlib.pyplot as plt\n"
    "df = pd.read_csv('/mnt/data/sales.csv')\n"
    "print('total', df['amount'].sum())\n"
    "df.to_csv('/mnt/data/summary.csv', index=False)\n"
    "df.plot(x='month', y='amount')\n"
    "plt.show()\n"
)


def ask(code: str) -> str:
    return "/call code_interpreter " + orjson.dumps({"code": code}).decode()


def coding_assistant(client: openai.OpenAI, model: str = "builtin/echo", **extra: Any) -> Assistant:
    return client.beta.assistants.create(model=model, tools=[{"type": "code_interpreter"}], **extra)


def code_step(step: RunStep) -> CodeInterpreter:
    details = step.step_details
    assert details.type == "tool_calls", step
    [call] = details.tool_calls
    assert call.type == "code_interpreter", call
    return call.code_interpreter


def logs(call: CodeInterpreter) -> str:
    return "".join(o.logs for o in call.outputs if o.type == "logs")


def images(call: CodeInterpreter) -> list[str]:
    return [o.image.file_id for o in call.outputs if o.type == "image"]


def run_code(
    client: openai.OpenAI, assistant: Assistant, thread_id: str, code: str
) -> tuple[CodeInterpreter, Message]:
    client.beta.threads.messages.create(thread_id, role="user", content=ask(code))
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant.id, poll_interval_ms=POLL_MS
    )
    assert run.status == "completed", run.last_error
    tool_step, _ = run_steps(client, thread_id, run.id)
    [reply] = run_messages(client, thread_id, run.id)
    return code_step(tool_step), reply


def test_a_csv_attached_is_summarised_and_plotted(
    client: openai.OpenAI, sandbox_ready: None
) -> None:
    upload = client.files.create(file=("sales.csv", SALES.encode()), purpose="assistants")
    assistant = coding_assistant(client)
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": ask(PLOT),
                "attachments": [{"file_id": upload.id, "tools": [{"type": "code_interpreter"}]}],
            }
        ]
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=POLL_MS
    )
    assert run.status == "completed", run.last_error
    tool_step, message_step = run_steps(client, thread.id, run.id)
    call = code_step(tool_step)
    assert call.input == PLOT
    assert "total 100" in logs(call)
    [image_id] = images(call)
    png = client.files.content(image_id).read()
    assert png.startswith(PNG)
    assert client.files.retrieve(image_id).purpose == "assistants_output"

    [reply] = run_messages(client, thread.id, run.id)
    assert message_step.step_details.message_creation.message_id == reply.id  # type: ignore[union-attr]
    image_part, text_part = reply.content
    assert image_part.type == "image_file"
    assert image_part.image_file.file_id == image_id
    assert text_part.type == "text"
    body = text_part.text
    [link] = [a for a in body.annotations if a.type == "file_path"]
    assert link.text == "sandbox:/mnt/data/summary.csv"
    assert body.value[link.start_index : link.end_index] == link.text
    summary = client.files.content(link.file_path.file_id).read()
    assert summary.decode().splitlines() == SALES.strip().splitlines()
    listed = client.files.list(purpose="assistants_output")
    assert {image_id, link.file_path.file_id} <= {f.id for f in listed}


def test_state_is_kept_between_runs_of_a_thread(client: openai.OpenAI, sandbox_ready: None) -> None:
    assistant = coding_assistant(client)
    thread_id = client.beta.threads.create().id
    run_code(
        client, assistant, thread_id, "answer = 41\nopen('/mnt/data/note.txt', 'w').write('x')"
    )
    call, _ = run_code(client, assistant, thread_id, "print(answer + 1)")
    assert logs(call).strip() == "42"
    # Another thread is another session: nothing of the first is there.
    other = client.beta.threads.create().id
    call, _ = run_code(
        client, assistant, other, "import os\nprint('answer' in dir(), os.listdir('/mnt/data'))"
    )
    assert logs(call).strip() == "False []"


def test_an_error_in_the_code_is_its_output_not_a_failed_run(
    client: openai.OpenAI, sandbox_ready: None
) -> None:
    assistant = coding_assistant(client)
    thread_id = client.beta.threads.create().id
    call, reply = run_code(client, assistant, thread_id, "1 / 0")
    assert "ZeroDivisionError" in logs(call)
    assert "\x1b[" not in logs(call), "terminal colours are stripped"
    assert "ZeroDivisionError" in reply.content[-1].text.value  # type: ignore[union-attr]


class CodeWatcher(AssistantEventHandler):
    """What OpenAI's quick start for code_interpreter listens to."""

    def __init__(self) -> None:
        super().__init__()
        self.created: list[ToolCall] = []
        self.inputs: list[str] = []
        self.outputs: list[Any] = []
        self.images: list[ImageFile] = []
        self.text = ""

    @override
    def on_tool_call_created(self, tool_call: ToolCall) -> None:
        self.created.append(tool_call)

    @override
    def on_tool_call_delta(self, delta: ToolCallDelta, snapshot: ToolCall) -> None:
        if delta.type == "code_interpreter" and delta.code_interpreter:
            if delta.code_interpreter.input:
                self.inputs.append(delta.code_interpreter.input)
            self.outputs.extend(delta.code_interpreter.outputs or ())

    @override
    def on_image_file_done(self, image_file: ImageFile) -> None:
        self.images.append(image_file)

    @override
    def on_text_delta(self, delta: TextDelta, snapshot: Text) -> None:
        self.text += delta.value or ""


def test_a_scripted_model_streams_its_code_and_links_its_file(
    client: openai.OpenAI, scripted: ScriptedModel, sandbox_ready: None
) -> None:
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 4, 9])\nplt.show()\nprint('drawn')\n"
    code += "open('/mnt/data/squares.txt', 'w').write('1 4 9')\n"
    reply = "Here is the chart, and the numbers: [squares](sandbox:/mnt/data/squares.txt)."
    scripted.push(
        tool_calls(Call("code_interpreter", orjson.dumps({"code": code}).decode(), piece=5)),
        text(*[reply[i : i + 7] for i in range(0, len(reply), 7)]),
    )
    assistant = coding_assistant(client, model=scripted.model)
    thread_id = client.beta.threads.create(
        messages=[{"role": "user", "content": "plot the squares"}]
    ).id
    watcher = CodeWatcher()
    with client.beta.threads.runs.stream(
        thread_id=thread_id, assistant_id=assistant.id, event_handler=watcher
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
        [final] = stream.get_final_messages()

    assert run.status == "completed", run.last_error
    [created] = watcher.created
    assert created.type == "code_interpreter"
    assert len(watcher.inputs) > 5, "the code streams as the model writes it"
    assert "".join(watcher.inputs) == code
    tool_step, _ = run_steps(client, thread_id, run.id)
    stored = code_step(tool_step)
    assert stored.input == code
    streamed_logs = "".join(o.logs or "" for o in watcher.outputs if o.type == "logs")
    assert streamed_logs == logs(stored)
    assert "drawn" in streamed_logs
    [image_id] = images(stored)
    assert [i.file_id for i in watcher.images] == [image_id]
    assert watcher.text == reply
    assert final.content[0].type == "image_file"
    body = final.content[-1].text  # type: ignore[union-attr]
    [link] = body.annotations
    assert link.type == "file_path"
    assert client.files.content(link.file_path.file_id).read() == b"1 4 9"  # type: ignore[union-attr]
    # The model's second call was shown the call: its code and what it printed.
    second = scripted.requests[-1]["messages"]
    shown = [m for m in second if m["role"] == "tool"][-1]["content"]
    assert "drawn" in shown
    assert "sandbox:/mnt/data/squares.txt" in shown


def test_without_a_sandbox_a_run_that_needs_one_fails_and_says_why(
    make_server: MakeServer, make_client: MakeClient, tmp_path: Any
) -> None:
    server = make_server(code_interpreter_env=str(tmp_path / "no-such-env"))
    client = make_client(server)
    assistant = coding_assistant(client)
    thread_id = client.beta.threads.create(messages=[{"role": "user", "content": ask("1")}]).id
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant.id, poll_interval_ms=POLL_MS
    )
    assert run.status == "failed"
    assert run.last_error is not None
    assert run.last_error.code == "server_error"
    assert "code_interpreter" in run.last_error.message
    assert "no-such-env" in run.last_error.message
    # A run that does not call it is not affected.
    other = client.beta.threads.create(messages=[{"role": "user", "content": "hello"}]).id
    done = client.beta.threads.runs.create_and_poll(
        thread_id=other, assistant_id=assistant.id, poll_interval_ms=POLL_MS
    )
    assert done.status == "completed"


def test_cancel_stops_the_code_and_the_thread_goes_on(
    client: openai.OpenAI, code_sessions_dir: Path, sandbox_ready: None
) -> None:
    assistant = coding_assistant(client)
    thread_id = client.beta.threads.create().id
    run_code(client, assistant, thread_id, "kept = 1")
    sleeper = "import time\nopen('/mnt/data/started', 'w').close()\ntime.sleep(600)"
    client.beta.threads.messages.create(thread_id, role="user", content=ask(sleeper))
    run = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant.id)
    # The session's /mnt/data, seen from the host: the code is running once the file is there.
    started = code_sessions_dir / "runs-server" / thread_id / "started"
    deadline = time.monotonic() + 60
    while not started.exists():
        assert time.monotonic() < deadline, "the code never started"
        time.sleep(0.05)
    client.beta.threads.runs.cancel(run.id, thread_id=thread_id)
    ended = client.beta.threads.runs.poll(run.id, thread_id=thread_id, poll_interval_ms=POLL_MS)
    assert ended.status == "cancelled"
    # The killed session's state is gone; the thread runs code again at once.
    call, _ = run_code(client, assistant, thread_id, "print('kept' in dir())")
    assert logs(call).strip() == "False"


# The Node SDK's helpers


def test_node_sdk_create_and_poll_and_stream(
    node: str, runs_server: ServerThread, client: openai.OpenAI, sandbox_ready: None
) -> None:
    upload = client.files.create(file=("sales.csv", SALES.encode()), purpose="assistants")
    assistant = coding_assistant(client)
    streamed_code = (
        "import matplotlib.pyplot as plt\nplt.bar([1, 2], [3, 4])\nplt.show()\nprint(7 * 6)"
    )
    seen = run_script(
        node,
        "code_interpreter.mjs",
        runs_server.base_url,
        assistant.id,
        upload.id,
        ask(PLOT),
        ask(streamed_code),
        ask("print(int(df['amount'].sum()) * 2)"),
    ).ok()

    poll = seen["poll"]
    assert poll["status"] == "completed", poll["lastError"]
    assert poll["call"]["type"] == "code_interpreter"
    assert poll["call"]["code_interpreter"]["input"] == PLOT
    assert poll["contentTypes"] == ["image_file", "text"]
    [image] = poll["images"]
    assert image["head"] == PNG.hex()
    assert poll["imageParts"] == [image["id"]]
    [link] = poll["links"]
    assert link["text"] == link["sliced"] == "sandbox:/mnt/data/summary.csv"
    assert link["file"]["text"].splitlines() == SALES.strip().splitlines()
    # The second run of the thread found the first one's `df`.
    assert poll["againStatus"] == "completed"
    assert poll["againLogs"].strip() == "200"

    stream = seen["stream"]
    assert stream["status"] == "completed"
    assert stream["created"] == ["code_interpreter"]
    assert "".join(stream["inputs"]) == stream["stored"]["input"] == streamed_code
    assert len(stream["inputs"]) > 1
    assert "".join(stream["logs"]).strip() == "42"
    stored_images = [
        o["image"]["file_id"] for o in stream["stored"]["outputs"] if o["type"] == "image"
    ]
    assert stream["imageOutputs"] == stored_images
    assert stream["imagesDone"] == stored_images
    assert len(stored_images) == 1


def test_a_restart_keeps_the_threads_files_not_its_state(
    make_server: MakeServer, make_client: MakeClient, code_sessions_dir: Path, sandbox_ready: None
) -> None:
    server = make_server(code_interpreter_dir=str(code_sessions_dir / "restarted"))
    client = make_client(server)
    upload = client.files.create(file=("sales.csv", SALES.encode()), purpose="assistants")
    assistant = coding_assistant(
        client, tool_resources={"code_interpreter": {"file_ids": [upload.id]}}
    )
    thread_id = client.beta.threads.create().id
    count = "print(len(open('/mnt/data/sales.csv').readlines()), 'x' in dir())"
    call, _ = run_code(client, assistant, thread_id, f"x = 1\n{count}")
    assert logs(call).strip() == "4 True"
    server.stop()
    server.start()
    client = make_client(server)  # on the restarted server's new port
    call, _ = run_code(client, assistant, thread_id, count)
    assert logs(call).strip() == "4 False"


def test_deleting_the_thread_ends_its_session_and_deletes_its_files(
    client: openai.OpenAI, code_sessions_dir: Path, sandbox_ready: None
) -> None:
    assistant = coding_assistant(client)
    thread_id = client.beta.threads.create().id
    run_code(client, assistant, thread_id, "open('/mnt/data/scratch.txt', 'w').write('x')")
    data_dir = code_sessions_dir / "runs-server" / thread_id
    assert (data_dir / "scratch.txt").read_text() == "x"
    assert client.beta.threads.delete(thread_id).deleted
    assert not data_dir.exists()


def test_the_threads_files_and_later_attachments_are_under_mnt_data(
    client: openai.OpenAI, sandbox_ready: None
) -> None:
    first = client.files.create(file=("notes.txt", b"first"), purpose="assistants")
    same_name = client.files.create(file=("notes.txt", b"second"), purpose="assistants")
    assistant = coding_assistant(client)
    thread_id = client.beta.threads.create(
        tool_resources={"code_interpreter": {"file_ids": [first.id]}}
    ).id
    listing = "import os\nprint(sorted(os.listdir('/mnt/data')))"
    call, _ = run_code(client, assistant, thread_id, listing)
    assert logs(call).strip() == "['notes.txt']"
    client.beta.threads.messages.create(
        thread_id,
        role="user",
        content="here is another",
        attachments=[{"file_id": same_name.id, "tools": [{"type": "code_interpreter"}]}],
    )
    show = (
        f"print(open('/mnt/data/{same_name.id}-notes.txt').read(), "
        "open('/mnt/data/notes.txt').read())"
    )
    call, _ = run_code(client, assistant, thread_id, show)
    assert logs(call).strip() == "second first"
