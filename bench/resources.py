"""Section 1, resource calls: our unary calls against the floor of our shape.

Four calls (create assistant, create message, list 20 messages, get run) at concurrency 1, 16
and 64, through the HTTP edge and straight over gRPC, each beside the floor (`bench.floor`):
a bare aiohttp handler making one bare grpc.aio call, answering with bodies of the same sizes
as ours, measured first. Ours and the floor are measured in turns (A B B A), so that the
machine's noise hits both alike.

Over gRPC both sides are called with pre-serialised request bytes and read the reply as bytes,
so the client does the same work for both and the difference is all server. The issue's
targets are for calls through the edge; the gRPC rows carry none (see `_row`).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from typing import Final

import aiohttp
import grpc

from bench import api, floor
from bench.config import Context
from bench.load import Call, LoadResult, alternate, http_call, http_session, run_load
from bench.report import Row, ratio
from compat_core.v1 import assistants_pb2, messages_pb2, runs_pb2

SECTION: Final = "1 resource calls"
CALLS: Final = ("create_assistant", "create_message", "list_messages", "get_run")
LABELS: Final = {
    "create_assistant": "create assistant",
    "create_message": "create message",
    "list_messages": "list 20 messages",
    "get_run": "get run",
}
ASSISTANT_BODY: Final = b'{"model":"builtin/echo","name":"bench"}'
MESSAGE_BODY: Final = b'{"role":"user","content":"hello"}'
LIST_THREAD_MESSAGES: Final = 30
RPC_TIMEOUT: Final = 30.0
# The targets for resource calls.
MIN_FLOOR_SHARE: Final = 0.50
MAX_ADDED_P50_MS: Final = 2.0


def _grpc_path(module: object, service: str, method: str) -> str:
    descriptor = module.DESCRIPTOR.services_by_name[service]  # type: ignore[attr-defined]
    return f"/{descriptor.full_name}/{method}"


OUR_METHODS: Final = {
    "create_assistant": _grpc_path(assistants_pb2, "AssistantsService", "CreateAssistant"),
    "create_message": _grpc_path(messages_pb2, "MessagesService", "CreateMessage"),
    "list_messages": _grpc_path(messages_pb2, "MessagesService", "ListMessages"),
    "get_run": _grpc_path(runs_pb2, "RunsService", "GetRun"),
}


@dataclass(frozen=True)
class Fixtures:
    """What the calls act on: created once, before anything is measured."""

    assistant_id: str
    list_thread: str
    run_thread: str
    run_id: str
    # One thread per worker for create message, so that workers do not queue on one thread.
    worker_threads: tuple[str, ...]

    def http(self, base_url: str, call: str, worker: int) -> tuple[str, str, bytes | None]:
        """(method, URL, body) of a call by `worker`, on the server at `base_url`."""
        if call == "create_assistant":
            return "POST", f"{base_url}/v1/assistants", ASSISTANT_BODY
        if call == "create_message":
            thread = self.worker_threads[worker % len(self.worker_threads)]
            return "POST", f"{base_url}/v1/threads/{thread}/messages", MESSAGE_BODY
        if call == "list_messages":
            return "GET", f"{base_url}/v1/threads/{self.list_thread}/messages?limit=20", None
        return "GET", f"{base_url}/v1/threads/{self.run_thread}/runs/{self.run_id}", None

    def rpc(self, call: str, worker: int) -> bytes:
        """The serialised gRPC request of a call by `worker`."""
        if call == "create_assistant":
            return assistants_pb2.CreateAssistantRequest(
                assistant=assistants_pb2.Assistant(model="builtin/echo", name="bench")
            ).SerializeToString()
        if call == "create_message":
            thread = self.worker_threads[worker % len(self.worker_threads)]
            return messages_pb2.CreateMessageRequest(
                thread_id=thread,
                message=messages_pb2.MessageInput(
                    role=messages_pb2.MESSAGE_ROLE_USER,
                    content=[
                        messages_pb2.MessageContent(text=messages_pb2.TextContent(value="hello"))
                    ],
                ),
            ).SerializeToString()
        if call == "list_messages":
            return messages_pb2.ListMessagesRequest(
                thread_id=self.list_thread, limit=20
            ).SerializeToString()
        return runs_pb2.GetRunRequest(
            thread_id=self.run_thread, run_id=self.run_id
        ).SerializeToString()


async def _setup(session: aiohttp.ClientSession, root: str, workers: int) -> Fixtures:
    base = f"{root}/v1"
    assistant_id = await api.create_assistant(session, base, "builtin/echo")
    list_thread = await api.create_thread(session, base)
    for index in range(LIST_THREAD_MESSAGES):
        await api.add_message(session, base, list_thread, f"message {index}")
    run_thread = await api.create_thread(session, base, ["hello"])
    run_id = await api.completed_run(session, base, run_thread, assistant_id)
    worker_threads = await api.bounded_gather(workers, lambda _: api.create_thread(session, base))
    return Fixtures(assistant_id, list_thread, run_thread, run_id, tuple(worker_threads))


async def _sizes(
    session: aiohttp.ClientSession, root: str, grpc_target: str, fixtures: Fixtures
) -> dict[str, dict[str, int]]:
    """Our HTTP body and gRPC reply sizes, call by call, for the floor to match."""
    sizes: dict[str, dict[str, int]] = {}
    async with grpc.aio.insecure_channel(grpc_target) as channel:
        for call in CALLS:
            method, url, body = fixtures.http(root, call, 0)
            headers = {"Content-Type": "application/json"} if body else None
            async with session.request(method, url, data=body, headers=headers) as response:
                payload = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{call}: HTTP {response.status}: {payload[:300]!r}")
            reply = await channel.unary_unary(OUR_METHODS[call])(
                fixtures.rpc(call, 0), timeout=RPC_TIMEOUT
            )
            sizes[call] = {"json": len(payload), "proto": len(reply)}
    return sizes


async def _http_point(
    ctx: Context, root: str, pid: int, fixtures: Fixtures, call: str, concurrency: int
) -> LoadResult:
    config = ctx.config
    async with http_session(concurrency) as session:

        def make_call(worker: int) -> Call:
            method, url, body = fixtures.http(root, call, worker)
            return http_call(session, method, url, body)

        return await run_load(
            make_call,
            concurrency=concurrency,
            duration=config.load_duration / config.load_rounds,
            warmup=config.load_warmup,
            cpu_pids=(pid,),
        )


async def _grpc_point(
    ctx: Context,
    target: str,
    pid: int,
    method: str,
    fixtures: Fixtures,
    call: str,
    concurrency: int,
) -> LoadResult:
    config = ctx.config
    async with grpc.aio.insecure_channel(target) as channel:
        # No serialisers: bytes in, bytes out, the same client work for ours and the floor.
        rpc = channel.unary_unary(method)

        def make_call(worker: int) -> Call:
            request = fixtures.rpc(call, worker)

            async def unary() -> None:
                await rpc(request, timeout=RPC_TIMEOUT)

            return unary

        return await run_load(
            make_call,
            concurrency=concurrency,
            duration=config.load_duration / config.load_rounds,
            warmup=config.load_warmup,
            cpu_pids=(pid,),
        )


def _row(transport: str, call: str, ours: LoadResult, base: LoadResult) -> Row:
    """Throughput ratio always; the target that applies at this concurrency.

    The issue sets its targets for calls through the edge. Straight over gRPC the floor is a
    handler that answers canned bytes, so those rows show what the core's work costs (the
    store, checks, protobuf), without a target.
    """
    concurrency = ours.concurrency
    share = ours.rps / base.rps if base.rps else math.nan
    cell = ratio(ours.rps, base.rps)
    target, met = "—", None
    added = ours.p50_ms - base.p50_ms
    if concurrency == 1:
        cell += f" (p50 {added:+.2f} ms)"
    if transport == "HTTP" and concurrency == 1:
        target = f"p50 +< {MAX_ADDED_P50_MS:g} ms"
        met = added < MAX_ADDED_P50_MS and not ours.errors
    elif transport == "HTTP" and concurrency == 64:
        target = f"≥ {MIN_FLOOR_SHARE:.2f}x req/s"
        met = share >= MIN_FLOOR_SHARE and not ours.errors
    return Row(
        SECTION,
        f"{LABELS[call]} · {transport} · c={concurrency}",
        ours.summary(),
        base.summary(),
        cell,
        target,
        met,
    )


async def run(ctx: Context) -> list[Row]:
    concurrencies = ctx.config.concurrencies
    rows: list[Row] = []
    async with ctx.children("resources") as children:
        ours = await children.spawn(
            "ours",
            ["-m", "bench.ours", "--database-url", ctx.database_for("resources")],
            profile=True,
        )
        root, our_grpc = str(ours.ready["http"]), str(ours.ready["grpc"])
        async with aiohttp.ClientSession() as session:
            fixtures = await _setup(session, root, max(concurrencies))
            sizes = await _sizes(session, root, our_grpc, fixtures)
        bare = await children.spawn("floor", ["-m", "bench.floor", "--sizes", json.dumps(sizes)])
        floor_root, floor_grpc = str(bare.ready["http"]), str(bare.ready["grpc"])
        rounds = ctx.config.load_rounds
        for call in CALLS:
            for c in concurrencies:
                mine, base = await alternate(
                    functools.partial(_http_point, ctx, root, ours.pid, fixtures, call, c),
                    functools.partial(_http_point, ctx, floor_root, bare.pid, fixtures, call, c),
                    rounds,
                )
                rows.append(_row("HTTP", call, mine, base))
        for call in CALLS:
            for c in concurrencies:
                mine, base = await alternate(
                    functools.partial(
                        _grpc_point, ctx, our_grpc, ours.pid, OUR_METHODS[call], fixtures, call, c
                    ),
                    functools.partial(
                        _grpc_point,
                        ctx,
                        floor_grpc,
                        bare.pid,
                        floor.grpc_method(call),
                        fixtures,
                        call,
                        c,
                    ),
                    rounds,
                )
                rows.append(_row("gRPC", call, mine, base))
        sizes_text = ", ".join(
            f"{LABELS[call]} {size['json']} B JSON / {size['proto']} B proto"
            for call, size in sizes.items()
        )
        rows.append(Row(SECTION, "response sizes (the floor pads to them)", sizes_text, "same"))
    return rows
