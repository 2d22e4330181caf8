"""The tables, written once with SQLAlchemy Core so every dialect runs the same statements.

Each object is kept whole as its serialized protobuf message in `body`; the other columns
exist only because a query filters, orders or joins on them, and are derived from the body on
every write so they never disagree with it. `seq` is the insertion order that keyset paging
walks; `id` (random, see `compat_core.ids`) cannot give an order.

This module describes the *current* schema for the code that queries it. The history of how a
database reaches it lives in `migrations/versions/`, which never imports this module (a
migration must keep meaning what it meant when it was written); a test checks that the two
agree.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import TEXT

# Names for every constraint and index, so later migrations can drop or alter them by name
# (SQLite can only change a table by copying it, which needs to know the names).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# 64-bit on PostgreSQL; on SQLite only a column declared exactly INTEGER becomes the rowid, which
# is what makes `seq` free to store and to range-scan.
SEQ_TYPE = BigInteger().with_variant(Integer(), "sqlite")
ID_TYPE = String(64)


def _seq() -> Column[int]:
    return Column("seq", SEQ_TYPE, primary_key=True, autoincrement=True)


def _id() -> Column[str]:
    return Column("id", ID_TYPE, nullable=False)


def _created_at() -> Column[int]:
    return Column("created_at", BigInteger, nullable=False)


def _body() -> Column[bytes]:
    return Column("body", LargeBinary, nullable=False)


def _project() -> Column[str]:
    """The project the row belongs to (migration 0012), which the store filters every
    statement on (`sql_scope`). No foreign key: projects are archived, never deleted, and
    SQLite cannot add a column that references another table with a default but NULL."""
    return Column("project_id", ID_TYPE, nullable=False)


# `sqlite_autoincrement`: never hand out the seq of a deleted last row again, so that a cursor
# taken before a delete can never end up pointing at a newer object.

assistants = Table(
    "assistants",
    metadata,
    _seq(),
    _id(),
    _project(),
    _created_at(),
    _body(),
    UniqueConstraint("id"),
    Index(None, "project_id", "seq"),
    sqlite_autoincrement=True,
)

threads = Table(
    "threads",
    metadata,
    _seq(),
    _id(),
    _project(),
    _created_at(),
    _body(),
    UniqueConstraint("id"),
    sqlite_autoincrement=True,
)

messages = Table(
    "messages",
    metadata,
    _seq(),
    _id(),
    _project(),
    Column("thread_id", ID_TYPE, ForeignKey("threads.id"), nullable=False),
    # NULL for messages a client wrote; set for those a run wrote.
    Column("run_id", ID_TYPE, nullable=True),
    _created_at(),
    _body(),
    UniqueConstraint("id"),
    Index(None, "thread_id", "seq"),
    sqlite_autoincrement=True,
)

runs = Table(
    "runs",
    metadata,
    _seq(),
    _id(),
    _project(),
    Column("thread_id", ID_TYPE, ForeignKey("threads.id"), nullable=False),
    # The `RunStatus` enum number: the contract's own stable identifier for a state.
    Column("status", Integer, nullable=False),
    _created_at(),
    _body(),
    UniqueConstraint("id"),
    Index(None, "thread_id", "seq"),
    # Restart recovery and expiry sweeps find runs by status, oldest first.
    Index(None, "status", "seq"),
    sqlite_autoincrement=True,
)

run_steps = Table(
    "run_steps",
    metadata,
    _seq(),
    _id(),
    _project(),
    Column("run_id", ID_TYPE, ForeignKey("runs.id"), nullable=False),
    # Not a foreign key: its thread is reached through the run, and an unindexed foreign key
    # would make every thread deletion scan this table.
    Column("thread_id", ID_TYPE, nullable=False),
    _created_at(),
    _body(),
    UniqueConstraint("id"),
    Index(None, "run_id", "seq"),
    sqlite_autoincrement=True,
)

# `bytes` (migration 0014) copies the body's, so that what a project stores is one aggregate
# over the (project_id, bytes) index.
files = Table(
    "files",
    metadata,
    _seq(),
    _id(),
    _project(),
    Column("purpose", String(64), nullable=False),
    _created_at(),
    _body(),
    Column("bytes", BigInteger, server_default="0", nullable=False),
    UniqueConstraint("id"),
    Index(None, "project_id", "seq"),
    Index(None, "project_id", "purpose", "seq"),
    Index(None, "purpose", "seq"),
    Index(None, "project_id", "bytes"),
    sqlite_autoincrement=True,
)

# `expires_at` (migration 0011): when the store will expire, NULL if it never will or already
# did (`retrieval.expiry.pending_expiry`), so that the expiry sweep reads only the stores whose
# time has come.
vector_stores = Table(
    "vector_stores",
    metadata,
    _seq(),
    _id(),
    _project(),
    _created_at(),
    _body(),
    Column("expires_at", BigInteger, nullable=True),
    UniqueConstraint("id"),
    Index(None, "project_id", "seq"),
    Index(None, "expires_at"),
    sqlite_autoincrement=True,
)

# The files of vector stores (migration 0007): `id` is the file's ID, unique within its store
# (and indexed alone, migration 0011, for deleting a file from every store that holds it);
# `status` and `usage_bytes` copy the body's so that a store's counts are one aggregate; the
# lease columns say which core is ingesting an `in_progress` file and until when (unix ms).
# `batch_id` (migration 0008) copies the body's too: the batch the file joined with, "" for
# none, so that a batch's files are one index range. (project_id, usage_bytes) (migration
# 0014) holds what a project's storage sum reads.
vector_store_files = Table(
    "vector_store_files",
    metadata,
    _seq(),
    _id(),
    _project(),
    Column("vector_store_id", ID_TYPE, nullable=False),
    Column("status", Integer, nullable=False),
    Column("usage_bytes", BigInteger, nullable=False),
    _created_at(),
    _body(),
    Column("claimed_by", String(128), server_default="", nullable=False),
    Column("lease_expires_at_ms", BigInteger, server_default="0", nullable=False),
    Column("batch_id", ID_TYPE, server_default="", nullable=False),
    UniqueConstraint("vector_store_id", "id"),
    Index(None, "vector_store_id", "seq"),
    Index(None, "status", "lease_expires_at_ms"),
    Index(None, "batch_id", "seq"),
    Index(None, "id"),
    Index(None, "project_id", "usage_bytes"),
    sqlite_autoincrement=True,
)

# Batches of vector store files (migration 0008). The body is the batch as created, its
# `status` CANCELLED once a cancel was asked for (IN_PROGRESS until then): the status and counts
# a client sees are worked out from the batch's files at each read. Never listed, so no `seq`.
vector_store_file_batches = Table(
    "vector_store_file_batches",
    metadata,
    Column("id", ID_TYPE, primary_key=True),
    _project(),
    Column("vector_store_id", ID_TYPE, nullable=False),
    _created_at(),
    _body(),
    Index(None, "vector_store_id"),
)

# The attributes of the files of vector stores, one row per attribute (migration 0009), so that
# search filters run in the database: the value sits in the column of its JSON type, the others
# are NULL (see `sql_file_attributes`). Strings compare by code point on both databases, which
# on PostgreSQL takes the "C" collation.
vector_store_file_attributes = Table(
    "vector_store_file_attributes",
    metadata,
    Column("vector_store_id", ID_TYPE, primary_key=True),
    Column("file_id", ID_TYPE, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("string_value", Text().with_variant(TEXT(collation="C"), "postgresql"), nullable=True),
    Column("number_value", Double, nullable=True),
    Column("bool_value", Boolean, nullable=True),
    Index("ix_vector_store_file_attributes_string_value", "vector_store_id", "key", "string_value"),
    Index("ix_vector_store_file_attributes_number_value", "vector_store_id", "key", "number_value"),
)

# The chunks of the files of vector stores, which file_search searches. `id` is the chunk's key
# (the rowid on SQLite, which the FTS5 index is keyed by); AUTOINCREMENT so that an ID a search
# returned never names another chunk later. The unique index also serves deleting a file's chunks
# (its first two columns) and a whole store's (its first).
vector_store_chunks = Table(
    "vector_store_chunks",
    metadata,
    Column("id", SEQ_TYPE, primary_key=True, autoincrement=True),
    Column("vector_store_id", ID_TYPE, nullable=False),
    Column("file_id", ID_TYPE, nullable=False),
    Column("chunk_index", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("token_count", Integer, nullable=False),
    _created_at(),
    UniqueConstraint("vector_store_id", "file_id", "chunk_index"),
    sqlite_autoincrement=True,
)

# The full-text index over the chunks' text is each database's own (see migration 0006), so it
# is not in `metadata`: the SQLite FTS5 table (and the shadow tables FTS5 keeps under names that
# start with its own), and PostgreSQL's generated tsvector column and its GIN index.
CHUNKS_FTS = "vector_store_chunks_fts"
CHUNKS_TEXT_SEARCH = "text_search"
CHUNKS_TEXT_SEARCH_INDEX = "ix_vector_store_chunks_text_search"


# Each vector store's embedding model and dimension (migration 0010): every vector of a store is
# of that model; `complete` says every chunk has one; the lease columns say which core is
# re-embedding the store (after the configured model changed) and until when (unix ms).
vector_store_embeddings = Table(
    "vector_store_embeddings",
    metadata,
    Column(
        "vector_store_id",
        ID_TYPE,
        ForeignKey("vector_stores.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("model", String(256), server_default="", nullable=False),
    Column("dimensions", Integer, server_default="0", nullable=False),
    Column("complete", Boolean, server_default="0", nullable=False),
    Column("claimed_by", String(128), server_default="", nullable=False),
    Column("lease_expires_at_ms", BigInteger, server_default="0", nullable=False),
)

# The vectors are each database's own, so not in `metadata` either: on SQLite a BLOB table and
# a `version` column of `vector_store_embeddings` that triggers bump on every change of a
# store's vectors (migration 0010); on PostgreSQL a pgvector table that a core creates at
# start-up, only when an embedding model is configured (`sql_vectors`).
CHUNK_VECTORS = "vector_store_chunk_vectors"
EMBEDDINGS_VERSION = "version"


def described(name: str | None, type_: str, parent_names: dict[str, str | None]) -> bool:
    """Whether a database object is one `metadata` describes, not a dialect's own search index
    (an `include_name` hook for Alembic's comparison of the schema with a database)."""
    if type_ == "table":
        return name is not None and not name.startswith((CHUNKS_FTS, CHUNK_VECTORS))
    if type_ == "column" and parent_names.get("table_name") == vector_store_chunks.name:
        return name != CHUNKS_TEXT_SEARCH
    if type_ == "column" and parent_names.get("table_name") == vector_store_embeddings.name:
        return name != EMBEDDINGS_VERSION
    return name != CHUNKS_TEXT_SEARCH_INDEX


# One row for each run that some core must be executing (queued, in_progress, cancelling): which
# core does (`owner`, its replica ID; "" for none) and until when (unix milliseconds) unless it
# renews. The store keeps the row in step with the run's status in every write of the run, so
# a run can never be active with no row for a core to claim. A core claims rows whose lease
# ran out (its owner died, or released them on shutdown) and resumes those runs.
run_leases = Table(
    "run_leases",
    metadata,
    Column("run_id", ID_TYPE, ForeignKey("runs.id"), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("expires_at_ms", BigInteger, nullable=False),
    Index(None, "expires_at_ms"),
    Index(None, "owner"),
)

# The events a run announced, for watchers on other cores than the one executing it (written
# only when several cores may share the database). `sequence` is the run's own event number;
# rows go with their thread, or when older than the retention the sweeper keeps.
run_events = Table(
    "run_events",
    metadata,
    Column("run_id", ID_TYPE, primary_key=True),
    Column("sequence", BigInteger, primary_key=True),
    _created_at(),
    _body(),
    Index(None, "created_at"),
)

# One row per list that has no parent row to lock (assistants, files, vector stores): inserting
# into such a list locks its row first, so that inserts into it happen one at a time (see
# `sql_store`).
list_locks = Table(
    "list_locks",
    metadata,
    Column("name", String(64), primary_key=True),
)

# Projects (migration 0012): every tenant's object belongs to one, and so does every API key.
# `proj_default` holds the objects stored before projects existed and those of the keys in
# `COMPAT_API_KEYS` (see `compat_core.tenancy`). Archived, never deleted.
projects = Table(
    "projects",
    metadata,
    Column("id", ID_TYPE, primary_key=True),
    Column("name", String(256), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("archived_at", BigInteger, nullable=True),
)

# API keys of projects (migration 0012), stored as the SHA-256 of the key (hex): a key is 48
# random characters, so no one can search the space a slow hash would protect, and a fast one
# keeps the lookup a single index probe. `redacted_value` is what a listing may show.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", ID_TYPE, primary_key=True),
    Column("project_id", ID_TYPE, ForeignKey("projects.id"), nullable=False),
    Column("name", String(256), nullable=False),
    Column("key_hash", String(64), nullable=False),
    Column("redacted_value", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("last_used_at", BigInteger, nullable=True),
    UniqueConstraint("key_hash"),
    Index(None, "project_id"),
)

# A project's own rate limits (migration 0013); a NULL column takes the server's default
# (`COMPAT_RATE_LIMIT_*`), 0 is unlimited. See `compat_core.ratelimit`.
project_limits = Table(
    "project_limits",
    metadata,
    Column("project_id", ID_TYPE, ForeignKey("projects.id"), primary_key=True),
    Column("requests_per_minute", BigInteger, nullable=True),
    Column("tokens_per_minute", BigInteger, nullable=True),
    Column("concurrent_runs", BigInteger, nullable=True),
    Column("concurrent_streams", BigInteger, nullable=True),
)

# What the cores sharing a database have spent of a project's rate window (migration 0013):
# `kind` is `requests` (budget the cores leased, in batches) or `tokens` (of runs that
# finished), `window_start` the window's first second (unix); `last_grant` what the latest
# take added (what the upsert that takes returns). Old windows are purged.
rate_windows = Table(
    "rate_windows",
    metadata,
    Column("project_id", ID_TYPE, primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("window_start", BigInteger, primary_key=True),
    Column("used", BigInteger, nullable=False),
    Column("last_grant", BigInteger, nullable=False),
    Index(None, "window_start"),
)

# A project's usage by UTC day and model (migration 0013), added to in the transaction that
# ends each run: its tokens in and out and one run.
usage_daily = Table(
    "usage_daily",
    metadata,
    Column("project_id", ID_TYPE, primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("model", String(256), primary_key=True),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("runs", BigInteger, nullable=False),
)

# The event streams each core has open for a project whose streams are limited, on a database
# several cores share (migration 0015): `core_id` is the core's replica ID, `open_streams` its
# count, which it rewrites as streams open and close; `expires_at_ms` (unix milliseconds) is
# when the row stops counting unless the core renews it, so a core that died stops holding
# slots. See `compat_core.ratelimit`.
stream_slots = Table(
    "stream_slots",
    metadata,
    Column("project_id", ID_TYPE, primary_key=True),
    Column("core_id", String(128), primary_key=True),
    Column("open_streams", BigInteger, nullable=False),
    Column("expires_at_ms", BigInteger, nullable=False),
)

# The tables whose rows belong to a project, which `sql_scope` filters. The accounting tables
# name their project in every statement themselves: they are read across projects (a core's
# limits) or for a project named by the admin surface, never in a client's scope.
TENANT_TABLES = frozenset(
    table.name for table in metadata.tables.values() if "project_id" in table.c
) - {"api_keys", "project_limits", "rate_windows", "usage_daily", "stream_slots"}
