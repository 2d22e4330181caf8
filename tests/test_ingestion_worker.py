"""The ingestion worker's rounds, driven one at a time on a real database and blob directory.

A SQLite file; in the PostgreSQL pass (`COMPAT_TEST_POSTGRES_URL`) a PostgreSQL database.
The first core's store counts the write transactions it asks its database for: an idle core
polls every second for good, and on SQLite each write would queue on the one writer.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final, TypeVar

import pytest
import pytest_asyncio
from fpdf import FPDF
from harness.counting import CountingRunner
from harness.memory import AllocationPeak

from compat_core import ids
from compat_core.config import ProviderConfig
from compat_core.retrieval.embeddings import UpstreamEmbedder
from compat_core.retrieval.ingestion import Ingestion
from compat_core.retrieval.reindex import Reindexer
from compat_core.services.vector_store_files import new_files
from compat_core.store import BlobStore, SqlStore, TransactionRunner, create_store
from compat_core.store.base import Store
from compat_core.v1 import common_pb2, files_pb2, vector_stores_pb2

T = TypeVar("T")
T0: Final = 1_700_000_000
LEASE_SECONDS: Final = 30.0
COMPLETED: Final = vector_stores_pb2.VECTOR_STORE_FILE_STATUS_COMPLETED
NOTES: Final = b"Zebracorns eat clover at dawn.\nThey sleep under birch trees.\n"


@pytest.fixture
def counting(db: TransactionRunner) -> CountingRunner:
    return CountingRunner(db)


@pytest_asyncio.fixture(loop_scope="function")
async def store(counting: CountingRunner) -> SqlStore:
    """The first core's store; the `db` fixture closes its database."""
    sql_store = SqlStore(counting)
    await sql_store.open()
    return sql_store


@pytest_asyncio.fixture(loop_scope="function")
async def other(db_url: str) -> AsyncIterator[Store]:
    """Another core's store on the same database."""
    sql_store = create_store(db_url)
    await sql_store.open()
    yield sql_store
    await sql_store.close()


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    """The blob directory the cores share."""
    return BlobStore(tmp_path / "blobs")


def worker(store: SqlStore, blobs: BlobStore, owner: str = "core-a") -> Ingestion:
    return Ingestion(store, blobs, owner, LEASE_SECONDS)


async def add_upload(
    store: Store, blobs: BlobStore, vector_store_id: str, name: str, data: bytes
) -> str:
    """Upload `data` as `name` and add it to the store (created if need be), `in_progress`."""

    async def chunks() -> AsyncIterator[bytes]:
        yield data

    file_id = ids.new_id(ids.FILE)
    await blobs.write(file_id, chunks(), len(data))
    await store.create_file(
        files_pb2.File(id=file_id, created_at=T0, filename=name, bytes=len(data))
    )
    if await store.get_vector_store(vector_store_id) is None:
        await store.create_vector_store(vector_stores_pb2.VectorStore(id=vector_store_id))
    entries = new_files(vector_store_id, [file_id], common_pb2.ChunkingStrategy(), {}, T0)
    assert await store.add_vector_store_files(vector_store_id, entries) is not None
    return file_id


async def status(store: Store, vector_store_id: str, file_id: str) -> int:
    found = await store.get_vector_store_file(vector_store_id, file_id)
    assert found is not None
    return found.status


# The idle poll


async def test_an_idle_core_polls_without_writing(
    store: SqlStore, counting: CountingRunner, blobs: BlobStore
) -> None:
    ingestion = worker(store, blobs)
    before = counting.writes
    for _ in range(3):
        assert await ingestion._round() is False
    assert counting.writes == before


async def test_a_file_another_core_holds_is_no_work_and_costs_no_write(
    store: SqlStore, counting: CountingRunner, other: Store, blobs: BlobStore
) -> None:
    file_id = await add_upload(other, blobs, "vs_held", "notes.txt", NOTES)
    # Core B claims it (as its own worker would) and is still at it.
    [held] = await other.claim_vector_store_files("core-b", T0 * 1000, 2**62, 4)
    assert held.id == file_id
    before = counting.writes

    assert await worker(store, blobs)._round() is False

    assert counting.writes == before
    assert await status(store, "vs_held", file_id) != COMPLETED


async def test_work_another_core_added_is_picked_up_by_the_poll(
    store: SqlStore, counting: CountingRunner, other: Store, blobs: BlobStore
) -> None:
    ingestion = worker(store, blobs)
    assert await ingestion._round() is False
    idle_writes = counting.writes

    file_id = await add_upload(other, blobs, "vs_elsewhere", "notes.txt", NOTES)

    assert await ingestion._round() is True
    assert counting.writes > idle_writes, "claiming and finishing are writes"
    assert await status(other, "vs_elsewhere", file_id) == COMPLETED
    [match] = await other.search_chunks_lexical(["vs_elsewhere"], "what do zebracorns eat", 5)
    assert match.file_id == file_id
    assert await ingestion._round() is False


# Reading the upload


def pdf_with_bulk(text: str, bulk_bytes: int) -> bytes:
    """A one-page PDF saying `text` that also carries `bulk_bytes` of incompressible data (an
    embedded file, which text extraction has no reason to read)."""
    document = FPDF()
    document.set_font("Helvetica", size=12)
    document.add_page()
    document.cell(text=text)
    document.embed_file(bytes=os.urandom(bulk_bytes), basename="bulk.bin", compress=False)
    return bytes(document.output())


async def test_a_large_upload_is_read_as_a_file_not_held_whole(
    store: SqlStore, blobs: BlobStore
) -> None:
    """Parsers seek in a file and read what they need; a 20 MB upload read whole would hold
    twice that at once (its pieces and their join)."""
    ingestion = worker(store, blobs)
    # A first file loads what every ingestion shares (the tokenizer's tables, the database's
    # connections and prepared statements), so the measure below is of one file's reading.
    await add_upload(store, blobs, "vs_warm", "warm.txt", NOTES)
    assert await ingestion._round() is True
    data = pdf_with_bulk("Zebracorns eat clover at dawn.", 20_000_000)
    file_id = await add_upload(store, blobs, "vs_big", "big.pdf", data)
    del data

    with AllocationPeak() as peak:
        assert await ingestion._round() is True

    assert await status(store, "vs_big", file_id) == COMPLETED
    [match] = await store.search_chunks_lexical(["vs_big"], "zebracorns clover", 5)
    assert match.text.strip() == "Zebracorns eat clover at dawn."
    assert peak.bytes < 5_000_000, f"{peak.bytes} bytes held at once for a 20 MB upload"


async def test_an_idle_reindexer_polls_without_writing(
    store: SqlStore, counting: CountingRunner
) -> None:
    # Never asked to embed anything: with no store to re-embed, the round ends at its read.
    embedder = UpstreamEmbedder(ProviderConfig(name="emb", base_url="http://127.0.0.1:9/v1"), "m")
    try:
        reindexer = Reindexer(store, embedder, "core-a", LEASE_SECONDS)
        before = counting.writes
        for _ in range(3):
            assert await reindexer._round() is False
        assert counting.writes == before
    finally:
        await embedder.close()
