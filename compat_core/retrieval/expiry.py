"""When a vector store was last used, and when that makes it expire.

OpenAI's only expiry policy counts days from `last_active_at`, and `last_active_at` means use:
creating a store, changing it, giving it files and searching it (the search endpoint or a
run's file_search). Reading it is not use, so a client polling a store does not keep it alive.
An expired store stays expired whatever happens to it later, as OpenAI's do.

The services and the store layer both apply these rules (a store's activity is written in the
transaction that uses it), so they live here, apart from either.
"""

from __future__ import annotations

from typing import Final

from compat_core.v1 import vector_stores_pb2

VectorStore = vector_stores_pb2.VectorStore

DAY_SECONDS: Final = 86_400
# OpenAI's only anchor.
ANCHOR: Final = "last_active_at"
# The policy of the store a thread gets for its messages' file_search attachments, as
# OpenAI's thread stores had.
THREAD_STORE_DAYS: Final = 7


def thread_store_policy() -> vector_stores_pb2.VectorStoreExpirationAfter:
    return vector_stores_pb2.VectorStoreExpirationAfter(anchor=ANCHOR, days=THREAD_STORE_DAYS)


def has_expired(store: VectorStore, moment: int) -> bool:
    """Whether the store is expired at `moment`: marked so, or past its `expires_at`."""
    if store.status == vector_stores_pb2.VECTOR_STORE_STATUS_EXPIRED:
        return True
    return store.HasField("expires_at") and store.expires_at <= moment


def mark_expired(store: VectorStore, moment: int) -> bool:
    """Set `expired` on a store whose time has passed at `moment`; whether it is expired.

    Only the sweep writes this (in the transaction that drops the store's chunks); everyone
    else marks it only in what they answer.
    """
    if has_expired(store, moment):
        store.status = vector_stores_pb2.VECTOR_STORE_STATUS_EXPIRED
        return True
    return False


def touch(store: VectorStore, moment: int) -> bool:
    """Mark the store used at `moment`, which moves its expiry with it; True if that changed
    the store (a second use within the same second does not, so a caller can skip the write).

    A store whose time has passed is left as it is: using it does not bring it back, and it
    is the sweep's to expire.
    """
    if has_expired(store, moment):
        return False
    before = (store.last_active_at, store.expires_at if store.HasField("expires_at") else None)
    store.last_active_at = max(store.last_active_at, moment)
    if store.HasField("expires_after"):
        store.expires_at = store.last_active_at + store.expires_after.days * DAY_SECONDS
    else:
        store.ClearField("expires_at")
    after = (store.last_active_at, store.expires_at if store.HasField("expires_at") else None)
    return after != before


def pending_expiry(store: VectorStore) -> int | None:
    """When the store will expire, or None if it never will or the sweep expired it already:
    what the store layer indexes so that its sweep finds the stores whose time has come."""
    if store.status == vector_stores_pb2.VECTOR_STORE_STATUS_EXPIRED:
        return None
    return store.expires_at if store.HasField("expires_at") else None
