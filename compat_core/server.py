"""The grpc.aio server of the core: services, health, reflection and graceful shutdown."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from google.protobuf.descriptor import ServiceDescriptor
from grpc import aio
from grpc_health.v1 import health, health_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2

from compat_core import tenancy
from compat_core.admin_auth import AdminAuth, AdminKeys
from compat_core.config import Settings
from compat_core.engine.code_interpreter import CodeInterpreter
from compat_core.engine.code_sessions import CodeSessions
from compat_core.engine.context import EngineContext, new_replica_id
from compat_core.engine.events import RunEventHub
from compat_core.engine.file_search import FileSearch
from compat_core.engine.hosted import HostedTools
from compat_core.engine.manager import RunEngine
from compat_core.guard import ApiKeyAuth, RpcGuard
from compat_core.health import BoundedHealth
from compat_core.keyring import KeyRing
from compat_core.methods import MethodTable
from compat_core.metrics import MAX_PROJECT_LABELS, OTHER_PROJECT, CoreMetrics
from compat_core.models import BUILTIN, ModelRegistry
from compat_core.providers.base import ChatProvider
from compat_core.providers.builtin import EchoProvider
from compat_core.providers.upstream import UpstreamProvider
from compat_core.ratelimit import Limits as RateLimits
from compat_core.ratelimit import RateLimiter
from compat_core.retrieval.embeddings import Embedder, UpstreamEmbedder
from compat_core.retrieval.ingestion import Ingestion
from compat_core.retrieval.reindex import Reindexer
from compat_core.sandbox.base import Limits
from compat_core.sandbox.bubblewrap import BubblewrapSandbox
from compat_core.sandbox.environment import DEFAULT_DIR
from compat_core.services.access import AccessService
from compat_core.services.admin import AdminService
from compat_core.services.assistants import AssistantsService
from compat_core.services.files import FilesService
from compat_core.services.inline_stores import InlineStores
from compat_core.services.messages import MessagesService
from compat_core.services.models import ModelsService
from compat_core.services.references import References
from compat_core.services.runs import RunsService
from compat_core.services.threads import ThreadsService
from compat_core.services.vector_store_files import VectorStoreFiles
from compat_core.services.vector_stores import VectorStoresService
from compat_core.startup import (
    check_files_dir,
    check_listenable,
    database_errors,
    vectors_errors,
)
from compat_core.storage_metrics import StorageGauge
from compat_core.store import BlobStore, create_store
from compat_core.store.base import Store
from compat_core.store.sweep import Sweeper
from compat_core.tools import Tool, load_tools, registry
from compat_core.v1 import (
    access_pb2,
    admin_pb2,
    assistants_pb2,
    files_pb2,
    messages_pb2,
    models_pb2,
    runs_pb2,
    threads_pb2,
    vector_stores_pb2,
)

log = logging.getLogger(__name__)

ASSISTANTS = assistants_pb2.DESCRIPTOR.services_by_name["AssistantsService"]
THREADS = threads_pb2.DESCRIPTOR.services_by_name["ThreadsService"]
MESSAGES = messages_pb2.DESCRIPTOR.services_by_name["MessagesService"]
RUNS = runs_pb2.DESCRIPTOR.services_by_name["RunsService"]
FILES = files_pb2.DESCRIPTOR.services_by_name["FilesService"]
MODELS = models_pb2.DESCRIPTOR.services_by_name["ModelsService"]
ACCESS = access_pb2.DESCRIPTOR.services_by_name["AccessService"]
ADMIN = admin_pb2.DESCRIPTOR.services_by_name["AdminService"]
VECTOR_STORES = vector_stores_pb2.DESCRIPTOR.services_by_name["VectorStoresService"]
SERVICE_NAMES = tuple(
    service.full_name
    for service in (
        ASSISTANTS,
        THREADS,
        MESSAGES,
        RUNS,
        FILES,
        MODELS,
        ACCESS,
        VECTOR_STORES,
        ADMIN,
    )
)
_HEALTH = health_pb2.DESCRIPTOR.services_by_name["Health"]
_REFLECTION = reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"]
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# How long a call that reached the core may wait for the server to take it up. A loop kept
# busy relaying hundreds of streams hands new calls to their handlers at a few dozen a second
# (grpc's transport has them all within milliseconds): with grpc's default of 30 s, calls
# queued behind such a burst were cancelled (seen with 1,000 streamed runs started at once on
# 2 cores). Waiting is better than failing; the SDKs' own request timeout (600 s) bounds it.
MAX_UNTAKEN_CALL_SECONDS = 600
GRPC_OPTIONS = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.so_reuseport", 0),
    ("grpc.server_max_unrequested_time_in_server", MAX_UNTAKEN_CALL_SECONDS),
)


class CoreServer:
    """Owns the store and the gRPC server; `start` binds, `stop` drains and closes."""

    def __init__(self, settings: Settings, tools: Sequence[Tool] = ()) -> None:
        self.settings = settings
        self.tools = registry([*load_tools(settings.tools), *tools])
        self.models = ModelRegistry(settings)
        self._store: Store | None = None
        self._server: aio.Server | None = None
        self._health: health.aio.HealthServicer | None = None
        self._engine: RunEngine | None = None
        self._sweeper: Sweeper | None = None
        self._ingestion: Ingestion | None = None
        self._embedder: Embedder | None = None
        self._reindexer: Reindexer | None = None
        self._code_sessions: CodeSessions | None = None
        self._keys: KeyRing | None = None
        self._limiter: RateLimiter | None = None
        self._storage_gauge: StorageGauge | None = None
        self.metrics = CoreMetrics()
        self.port = 0

    async def start(self, host: str | None = None, port: int | None = None) -> int:
        """Open the store (migrating it), bind and serve; returns the bound port.

        A setting that keeps it from starting (the port, the database) is a ConfigError
        naming the variable, raised before the database is touched where it can be.
        """
        settings = self.settings
        bind_host = settings.grpc_host if host is None else host
        bind_port = settings.grpc_port if port is None else port
        check_listenable("GRPC", bind_host, bind_port)
        with database_errors(settings.database_url):
            store = create_store(settings.database_url, exclusive=True)
            try:
                await store.open()
                if self.models.embedding is not None:
                    with vectors_errors(settings.embedding_model), tenancy.all_projects():
                        await store.enable_vectors()
            except BaseException:
                await store.close()  # and with it the claim on a SQLite file
                raise
        self._store = store
        check_files_dir(settings.resolved_files_dir())
        blobs = BlobStore(settings.resolved_files_dir())
        self._sweeper = Sweeper(blobs, store, settings.sweep_interval_seconds)
        await self._sweeper.start()
        references = References(store)
        replica_id = settings.replica_id or new_replica_id()
        # One embedder for the whole core: ingestion, the search endpoint and the file_search
        # tool rank with the same model, so the tool finds what the endpoint finds.
        embedder = self._embedder = _embedder(self.models)
        ingestion = self._ingestion = Ingestion(
            store, blobs, replica_id, settings.run_lease_seconds, embedder
        )
        if embedder is not None:
            self._reindexer = Reindexer(store, embedder, replica_id, settings.run_lease_seconds)
        code_sessions = self._code_sessions = _code_sessions(settings)
        await code_sessions.start()
        store_files = VectorStoreFiles(store, blobs, ingestion.wake)
        inline = InlineStores(store_files, ingestion.wake)

        server = aio.server(options=GRPC_OPTIONS)
        methods = MethodTable()
        # Every servicer but health's goes through the guard (see `compat_core.guard`).
        metrics = self.metrics
        keys = self._keys = KeyRing(store, settings.api_keys)
        limiter = self._limiter = RateLimiter(
            store,
            RateLimits(
                settings.rate_limit_requests_per_minute,
                settings.rate_limit_tokens_per_minute,
                settings.rate_limit_concurrent_runs,
                settings.rate_limit_concurrent_streams,
            ),
            settings.rate_limit_window_seconds,
            on_refused=metrics.rate_limited,
            core_id=replica_id,
            # A core's open streams stop counting as soon as its runs go to other cores.
            slot_seconds=settings.run_lease_seconds,
        )
        await limiter.start()
        admin_keys = AdminKeys(settings.admin_keys)
        guard = RpcGuard(ApiKeyAuth(keys, admin_keys.holds), metrics, limiter)

        def guarded(servicer: object, service: ServiceDescriptor) -> None:
            methods.add(guard.servicer(servicer, service), service)

        guarded(AssistantsService(store, self.models, references, inline), ASSISTANTS)
        threads = ThreadsService(store, references, inline, code_sessions.forget)
        guarded(threads, THREADS)
        guarded(MessagesService(store, references, inline), MESSAGES)
        hub = RunEventHub(settings.event_log_max_bytes)

        def run_finished(run: runs_pb2.Run) -> None:
            metrics.run_finished(run)
            limiter.run_finished(run)

        hub.on_finished = run_finished
        engine = self._engine = RunEngine(
            EngineContext(
                store=store,
                hub=hub,
                models=self.models,
                providers={
                    name: metrics.metered(name, provider)
                    for name, provider in _providers(self.models).items()
                },
                tools=self.tools,
                hosted=HostedTools(
                    [
                        FileSearch(embedder=embedder),
                        CodeInterpreter(code_sessions, blobs, settings.max_upload_bytes),
                    ]
                ),
                requires_action_timeout=settings.requires_action_timeout_seconds,
                replica_id=replica_id,
                lease_seconds=settings.run_lease_seconds,
            )
        )
        guarded(RunsService(store, self.models, references, threads, engine, limiter), RUNS)
        metrics.runs_active.set_function(lambda: engine.executing)
        metrics.event_log_bytes.set_function(lambda: hub.bytes)
        metrics.store_pending.set_function(store.pending_transactions)
        self._storage_gauge = StorageGauge(
            store,
            settings.storage_metrics_seconds,
            metrics.registry,
            MAX_PROJECT_LABELS,
            OTHER_PROJECT,
        )
        await self._storage_gauge.start()
        guarded(FilesService(store, blobs, settings.max_upload_bytes), FILES)
        guarded(VectorStoresService(store, store_files, embedder), VECTOR_STORES)
        guarded(ModelsService(self.models), MODELS)
        guarded(AccessService(), ACCESS)
        # Admin keys alone reach the admin service (`compat_core.admin_auth`).
        methods.add(
            guard.servicer(
                AdminService(store, keys, limiter), ADMIN, AdminAuth(admin_keys, keys).scope
            ),
            ADMIN,
        )

        self._health = BoundedHealth(settings.max_health_watches)
        methods.add(self._health, _HEALTH)
        for name in ("", *SERVICE_NAMES):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        guarded(
            reflection.aio.ReflectionServicer(
                (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME)
            ),
            _REFLECTION,
        )
        server.add_generic_rpc_handlers((methods,))

        self.port = server.add_insecure_port(f"{bind_host}:{bind_port}")
        if self.port == 0:
            raise OSError(f"could not bind the gRPC port {bind_host}:{bind_port}")
        await server.start()
        self._server = server
        await self._engine.start()
        await ingestion.start()
        if self._reindexer is not None:
            await self._reindexer.start()
        log.info("core serving gRPC on %s:%d", bind_host, self.port)
        return self.port

    async def stop(self, grace: float = 5.0) -> None:
        """Say NOT_SERVING, let in-flight calls finish within `grace`, then close the store."""
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
        if self._ingestion is not None:
            await self._ingestion.stop()
            self._ingestion = None
        if self._reindexer is not None:
            await self._reindexer.stop()
            self._reindexer = None
        if self._embedder is not None:
            await self._embedder.close()
            self._embedder = None
        if self._engine is not None:
            await self._engine.stop()
            self._engine = None
        if self._code_sessions is not None:
            await self._code_sessions.stop()
            self._code_sessions = None
        if self._sweeper is not None:
            await self._sweeper.stop()
            self._sweeper = None
        if self._storage_gauge is not None:
            await self._storage_gauge.close()
            self._storage_gauge = None
        if self._keys is not None:
            await self._keys.close()
            self._keys = None
        if self._limiter is not None:
            await self._limiter.close()
            self._limiter = None
        if self._store is not None:
            await self._store.close()
            self._store = None

    async def wait_for_termination(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()


def _code_sessions(settings: Settings) -> CodeSessions:
    """code_interpreter's sandbox and sessions, as configured."""
    mib = 1024 * 1024
    limits = Limits(
        call_seconds=settings.code_interpreter_call_seconds,
        memory_bytes=settings.code_interpreter_memory_mb * mib,
        processes=settings.code_interpreter_processes,
        file_bytes=settings.code_interpreter_file_mb * mib,
        output_bytes=settings.code_interpreter_output_kb * 1024,
    )
    return CodeSessions(
        BubblewrapSandbox(
            Path(settings.code_interpreter_env) if settings.code_interpreter_env else DEFAULT_DIR
        ),
        settings.resolved_sessions_dir(),
        limits,
        idle_seconds=settings.code_interpreter_idle_seconds,
        max_sessions=settings.code_interpreter_max_sessions,
    )


def _embedder(models: ModelRegistry) -> Embedder | None:
    """The configured embedding model's client (one pooled client, like the chat providers')."""
    if models.embedding is None:
        return None
    return UpstreamEmbedder(models.providers[models.embedding.provider], models.embedding.name)


def _providers(models: ModelRegistry) -> dict[str, ChatProvider]:
    """One client per provider, shared by all runs (connection pooling)."""
    providers: dict[str, ChatProvider] = {BUILTIN: EchoProvider()}
    for name, config in models.providers.items():
        providers[name] = UpstreamProvider(config)
    return providers
