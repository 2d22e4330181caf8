"""When a vector store expires: `expires_after.days` after its last activity, for good.

Reading or changing a store through the API is activity, and so is a run's file_search over
it: a thread's store that is in use does not expire under the conversation.
"""

from __future__ import annotations

from typing import Final

from compat_core.v1 import vector_stores_pb2

DAY_SECONDS: Final = 86_400


def touch(store: vector_stores_pb2.VectorStore, moment: int) -> None:
    """Mark the store used at `moment`, which moves its expiry with it, unless it expired.

    An expired store stays expired: using it does not bring it back, as with OpenAI.
    """
    if mark_expired(store, moment):
        return
    store.last_active_at = max(store.last_active_at, moment)
    if store.HasField("expires_after"):
        store.expires_at = store.last_active_at + store.expires_after.days * DAY_SECONDS
    else:
        store.ClearField("expires_at")


def mark_expired(store: vector_stores_pb2.VectorStore, moment: int) -> bool:
    """Answer `expired` for a store whose `expires_at` has passed; True if it has."""
    if store.status == vector_stores_pb2.VECTOR_STORE_STATUS_EXPIRED:
        return True
    if store.HasField("expires_at") and store.expires_at <= moment:
        store.status = vector_stores_pb2.VECTOR_STORE_STATUS_EXPIRED
        return True
    return False
