"""Attribute filters of a vector store search, applied by the database: every operator's
meaning on both databases, nesting, filtering before the limit, attribute rows that follow
every write, and migration 0009 filling them in for files stored before it.

A SQLite file; in the PostgreSQL pass (`COMPAT_TEST_POSTGRES_URL`) a fresh PostgreSQL database
for each test.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest
import pytest_asyncio
import sqlalchemy as sa
from alembic import command
from harness.server import postgres_admin_url

from compat_core.retrieval.filters import Comparison, Compound, Filter, Scalar
from compat_core.store import SqlStore, TransactionRunner, schema
from compat_core.store.base import NewChunk
from compat_core.store.migrate import ALEMBIC_LOCK, alembic_config
from compat_core.v1 import vector_stores_pb2

ON_POSTGRES = postgres_admin_url() is not None
T0 = 1_700_000_000
VS = "vs_filters"
OTHER_VS = "vs_other"

# One chunk each, all sharing the word searched for. file-c's `year` and `draft` are strings
# that read like file-a's and file-b's number and boolean; file-d has no attributes.
FILES: dict[str, dict[str, Scalar]] = {
    "file-a": {"region": "eu", "year": 2023, "draft": False, "size": 9, "name": "apple"},
    "file-b": {"region": "us", "year": 2024, "draft": True, "size": 10, "name": "Zebra"},
    "file-c": {"region": "apac", "year": "2024", "draft": "false"},
    "file-d": {},
}


def attribute(value: Scalar) -> vector_stores_pb2.VectorStoreFileAttribute:
    if isinstance(value, bool):
        return vector_stores_pb2.VectorStoreFileAttribute(bool_value=value)
    if isinstance(value, str):
        return vector_stores_pb2.VectorStoreFileAttribute(string_value=value)
    return vector_stores_pb2.VectorStoreFileAttribute(number_value=value)


def entry(
    vector_store_id: str, file_id: str, attributes: Mapping[str, Scalar]
) -> vector_stores_pb2.VectorStoreFile:
    f = vector_stores_pb2.VectorStoreFile(
        id=file_id, created_at=T0, vector_store_id=vector_store_id
    )
    for key, value in attributes.items():
        f.attributes[key].CopyFrom(attribute(value))
    return f


async def add_file(
    store: SqlStore,
    vector_store_id: str,
    file_id: str,
    attributes: Mapping[str, Scalar],
    texts: list[str],
) -> None:
    if await store.get_vector_store(vector_store_id) is None:
        await store.create_vector_store(
            vector_stores_pb2.VectorStore(id=vector_store_id, created_at=T0)
        )
    added = await store.add_vector_store_files(
        vector_store_id, [entry(vector_store_id, file_id, attributes)]
    )
    assert added is not None
    chunks = [NewChunk(i, text, len(text.split())) for i, text in enumerate(texts)]
    await store.add_chunks(vector_store_id, file_id, chunks, T0)


async def found_files(store: SqlStore, f: Filter | None, query: str = "lantern") -> set[str]:
    return {m.file_id for m in await store.search_chunks_lexical([VS], query, 50, f)}


@pytest_asyncio.fixture(loop_scope="function")
async def filled(store: SqlStore) -> SqlStore:
    for file_id, attributes in FILES.items():
        await add_file(store, VS, file_id, attributes, [f"a lantern in {file_id}"])
    return store


def eq(key: str, value: Scalar) -> Comparison:
    return Comparison("eq", key, (value,))


CASES: list[tuple[str, Filter, set[str]]] = [
    ("eq string", eq("region", "eu"), {"file-a"}),
    ("eq number", eq("year", 2024.0), {"file-b"}),
    ("eq string that reads as a number", eq("year", "2024"), {"file-c"}),
    ("eq true", eq("draft", True), {"file-b"}),
    ("eq false", eq("draft", False), {"file-a"}),
    ("eq false is not the string", eq("draft", "false"), {"file-c"}),
    ("ne string", Comparison("ne", "region", ("eu",)), {"file-b", "file-c"}),
    ("ne boolean skips other types", Comparison("ne", "draft", (True,)), {"file-a"}),
    ("ne number skips strings", Comparison("ne", "year", (2023.0,)), {"file-b"}),
    ("gt", Comparison("gt", "year", (2023.0,)), {"file-b"}),
    ("gte", Comparison("gte", "year", (2023.0,)), {"file-a", "file-b"}),
    ("lt", Comparison("lt", "year", (2024.0,)), {"file-a"}),
    ("lte", Comparison("lte", "year", (2024.0,)), {"file-a", "file-b"}),
    # As text, "10" < "9.5"; as numbers it is the other way round.
    ("numbers compare as numbers", Comparison("gt", "size", (9.5,)), {"file-b"}),
    ("negative numbers", Comparison("gt", "size", (-1.0,)), {"file-a", "file-b"}),
    # By code point "Z" < "a"; a locale's collation would put "apple" first.
    ("strings by code point", Comparison("lt", "name", ("a",)), {"file-b"}),
    ("strings by code point, gt", Comparison("gt", "name", ("Zebra",)), {"file-a"}),
    ("in strings", Comparison("in", "region", ("eu", "us", "mars")), {"file-a", "file-b"}),
    ("in mixed types", Comparison("in", "year", (2024.0, "2024")), {"file-b", "file-c"}),
    ("in an empty list", Comparison("in", "region", ()), set()),
    ("nin strings", Comparison("nin", "region", ("eu",)), {"file-b", "file-c"}),
    ("nin numbers skips strings", Comparison("nin", "year", (2023.0,)), {"file-b"}),
    ("nin mixed types", Comparison("nin", "year", (2023.0, "1999")), {"file-b", "file-c"}),
    ("nin an empty list", Comparison("nin", "region", ()), set()),
    ("a missing key never matches eq", eq("colour", "red"), set()),
    ("a missing key never matches ne", Comparison("ne", "colour", ("red",)), set()),
    ("a number against strings", eq("region", 1.0), set()),
    ("a string against numbers", Comparison("gt", "size", ("1",)), set()),
    (
        "and",
        Compound(
            "and", (Comparison("in", "region", ("eu", "us")), Comparison("gte", "year", (2024.0,)))
        ),
        {"file-b"},
    ),
    ("or", Compound("or", (eq("region", "apac"), eq("draft", True))), {"file-b", "file-c"}),
    (
        "nested three levels",
        Compound(
            "or",
            (
                Compound(
                    "and", (eq("region", "eu"), Compound("or", (eq("size", 9.0), eq("size", 1.0))))
                ),
                Compound("and", (eq("region", "apac"), Comparison("ne", "draft", ("true",)))),
            ),
        ),
        {"file-a", "file-c"},
    ),
    ("a compound of one", Compound("and", (eq("region", "us"),)), {"file-b"}),
]


@pytest.mark.parametrize(("name", "f", "expected"), CASES, ids=[case[0] for case in CASES])
async def test_each_operator_means_the_same_on_both_databases(
    filled: SqlStore, name: str, f: Filter, expected: set[str]
) -> None:
    assert await found_files(filled, f) == expected, name


@pytest.mark.skipif(not ON_POSTGRES, reason="SQLite compares text by code point anyway")
async def test_postgres_orders_attribute_strings_by_code_point_whatever_its_locale(
    store: SqlStore, db: TransactionRunner
) -> None:
    """The database's default collation (which decides `lt` on strings otherwise) depends on
    the server's locale, C on some machines and en_US on others: the column fixes it."""

    def collation(conn: sa.Connection) -> object:
        return conn.execute(
            sa.text(
                "SELECT collation_name FROM information_schema.columns "
                "WHERE table_name = 'vector_store_file_attributes' "
                "AND column_name = 'string_value'"
            )
        ).scalar_one()

    assert await db.read(collation) == "C"


async def test_no_filter_finds_every_file(filled: SqlStore) -> None:
    assert await found_files(filled, None) == set(FILES)


async def test_a_filter_is_applied_before_the_limit(store: SqlStore) -> None:
    # 20 files match the query better than the one the filter keeps: a limit spent before
    # filtering would find nothing of it.
    for n in range(20):
        await add_file(store, VS, f"file-{n}", {"kind": "noise"}, ["lantern lantern lantern"] * 5)
    await add_file(
        store,
        VS,
        "file-kept",
        {"kind": "kept"},
        [f"a lantern among many other words, number {n}" for n in range(12)],
    )

    found = await store.search_chunks_lexical([VS], "lantern", 10, eq("kind", "kept"))

    assert len(found) == 10
    assert {m.file_id for m in found} == {"file-kept"}
    assert found[0].attributes["kind"].string_value == "kept"


async def test_chunks_of_a_file_the_store_no_longer_holds_do_not_count(
    store: SqlStore,
) -> None:
    await add_file(store, VS, "file-held", {}, ["a lantern among other words"] * 3)
    # Chunks left behind by a file whose row is gone: they match better, and must not use up
    # the limit.
    await store.add_chunks(
        VS, "file-gone", [NewChunk(i, "lantern lantern lantern", 3) for i in range(5)], T0
    )

    found = await store.search_chunks_lexical([VS], "lantern", 2)

    assert [m.file_id for m in found] == ["file-held", "file-held"]


async def test_a_search_answers_the_files_name_and_attributes(store: SqlStore) -> None:
    await add_file(store, VS, "file-x", {"topic": "lamps", "pages": 3}, ["a lantern"])

    [match] = await store.search_chunks_lexical([VS], "lantern", 5)

    # The file is not in the Files API: its name is empty, its attributes are the store's.
    assert match.filename == ""
    assert match.attributes == {"topic": attribute("lamps"), "pages": attribute(3.0)}


async def test_updated_attributes_are_what_the_filter_sees(filled: SqlStore) -> None:
    def retag(f: vector_stores_pb2.VectorStoreFile) -> None:
        f.ClearField("attributes")
        f.attributes["region"].CopyFrom(attribute("us"))
        f.attributes["year"].CopyFrom(attribute(1999))

    assert await filled.update_vector_store_file(VS, "file-a", retag) is not None

    assert await found_files(filled, eq("region", "eu")) == set()
    assert await found_files(filled, eq("region", "us")) == {"file-a", "file-b"}
    assert await found_files(filled, eq("draft", False)) == set(), "a removed attribute"
    assert await found_files(filled, Comparison("lt", "year", (2000.0,))) == {"file-a"}


async def test_attribute_rows_go_with_their_file_and_store(
    filled: SqlStore, db: TransactionRunner
) -> None:
    await add_file(filled, OTHER_VS, "file-a", {"region": "eu"}, ["a lantern"])

    assert await filled.delete_vector_store_file(VS, "file-a")
    assert await attribute_rows(db, VS, "file-a") == 0
    assert await attribute_rows(db, OTHER_VS, "file-a") == 1, "another store's file stays"
    assert await found_files(filled, eq("region", "eu")) == set()

    assert await filled.delete_vector_store(VS)
    assert await attribute_rows(db, VS) == 0
    assert await attribute_rows(db, OTHER_VS) == 1


async def attribute_rows(db: TransactionRunner, vector_store_id: str, file_id: str = "") -> int:
    table = schema.vector_store_file_attributes
    where = [table.c.vector_store_id == vector_store_id]
    if file_id:
        where.append(table.c.file_id == file_id)

    def count(conn: sa.Connection) -> int:
        return int(conn.execute(sa.select(sa.func.count()).where(*where)).scalar_one())

    return await db.read(count)


# Migration 0009

# vector_store_files as migration 0007 made it (the current schema may have more columns).
_FILES_0007 = sa.table(
    "vector_store_files",
    sa.column("id", sa.String()),
    sa.column("vector_store_id", sa.String()),
    sa.column("status", sa.Integer()),
    sa.column("usage_bytes", sa.BigInteger()),
    sa.column("created_at", sa.BigInteger()),
    sa.column("body", sa.LargeBinary()),
)
_STORES_0005 = sa.table(
    "vector_stores",
    sa.column("id", sa.String()),
    sa.column("created_at", sa.BigInteger()),
    sa.column("body", sa.LargeBinary()),
)


async def test_migration_0009_fills_in_the_attributes_of_files_stored_before_it(
    db: TransactionRunner,
) -> None:
    def at_0007_with_files(conn: sa.Connection) -> None:
        with ALEMBIC_LOCK:
            command.upgrade(alembic_config(conn), "0007")
        store = vector_stores_pb2.VectorStore(id=VS, created_at=T0)
        conn.execute(
            _STORES_0005.insert().values(id=VS, created_at=T0, body=store.SerializeToString())
        )
        conn.execute(
            _FILES_0007.insert(),
            [
                {
                    "id": file_id,
                    "vector_store_id": VS,
                    "status": vector_stores_pb2.VECTOR_STORE_FILE_STATUS_COMPLETED,
                    "usage_bytes": 0,
                    "created_at": T0,
                    "body": entry(VS, file_id, attributes).SerializeToString(),
                }
                for file_id, attributes in FILES.items()
            ],
        )

    await db.write(at_0007_with_files)
    store = SqlStore(db)
    await store.open()  # migrates to head
    for file_id in FILES:
        chunks = [NewChunk(0, f"a lantern in {file_id}", 4)]
        await store.add_chunks(VS, file_id, chunks, T0)

    assert await attribute_rows(db, VS) == sum(len(a) for a in FILES.values())
    for _, f, expected in CASES:
        assert await found_files(store, f) == expected
