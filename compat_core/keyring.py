"""API keys: which project a presented key belongs to, without a database round trip a call.

Two sources. The keys of `COMPAT_API_KEYS` belong to the default project, as every key did
before projects existed. Keys made for a project (`assistants-compat keys create`, or an admin
API) are stored as the SHA-256 of their value (`schema.api_keys`): a key is 48 random
URL-safe characters (288 bits), so nobody can search its space, and a slow password hash
would only make every cache miss slower without protecting anything.

Verdicts are cached per presented key, good ones and bad ones (a client presenting a wrong key
over and over must not cost a query each time), for `RECHECK_SECONDS`: after that the next
call with the key looks it up again. A revocation through `revoke` forgets the key on this
core at once, and on the other cores sharing a PostgreSQL database as soon as its notice
reaches them (`Projects.on_key_revoked`, the channel the cores already share for runs).
Notices are best effort (a dropped listener loses them until it reconnects), so the re-check
bounds what a lost one costs: a revoked key works on such a core for `RECHECK_SECONDS` at
most.

Authentication is required when `COMPAT_API_KEYS` is set or any key is stored; a server with
neither (as `make run` starts) serves everyone as the default project, as before.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from compat_core import ids, tenancy
from compat_core.store.base import ApiKey, Project, Store

log = logging.getLogger(__name__)

KEY_PREFIX: Final = "sk-proj-"
PROJECT_PREFIX: Final = "proj_"
API_KEY_PREFIX: Final = "key_"
# How long a verdict on a key stands before the key is looked up again.
RECHECK_SECONDS: Final = 5.0
# `last_used_at` is written at most this often per key and core.
LAST_USED_EVERY_SECONDS: Final = 60.0
# Verdicts kept at most (the oldest go first).
MAX_CACHED: Final = 4096


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(36)


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


def redacted(key: str) -> str:
    """What a listing may show of a key: enough to tell keys apart, nothing to use."""
    return f"{KEY_PREFIX}…{key[-4:]}"


class Miss(enum.Enum):
    """A key whose verdict is not in memory (a type of its own, for `cached`)."""

    MISS = "miss"


MISS: Final = Miss.MISS


@dataclass(frozen=True)
class _Verdict:
    project_id: str | None
    key_id: str | None
    checked_at: float


class KeyRing:
    """The keys a core accepts, and the project each one opens."""

    def __init__(
        self,
        store: Store,
        config_keys: Sequence[str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._config = frozenset(key_digest(key) for key in config_keys)
        self._clock = clock
        self._verdicts: OrderedDict[bytes, _Verdict] = OrderedDict()
        # Whether any key is stored, and when that was last read.
        self._any_stored: tuple[bool, float] | None = None
        self._used_written: dict[str, float] = {}
        self._writes: set[asyncio.Task[None]] = set()
        store.on_key_revoked(self.forget)

    def cached(self, key: str) -> str | Miss | None:
        """The project of `key` from memory alone: a project ID, None for a key known to be
        bad, `MISS` when the key must be looked up (`look_up`)."""
        digest = key_digest(key)
        if digest in self._config:
            return tenancy.DEFAULT_PROJECT
        verdict = self._verdicts.get(digest)
        if verdict is None or self._clock() - verdict.checked_at > RECHECK_SECONDS:
            return MISS
        self._note_use(verdict)
        return verdict.project_id

    async def look_up(self, key: str) -> str | None:
        """The project of `key`, read from the store (and remembered); None if unknown."""
        digest = key_digest(key)
        if digest in self._config:
            return tenancy.DEFAULT_PROJECT
        stored = await self._store.api_key_by_hash(digest.hex())
        verdict = _Verdict(
            stored.project_id if stored else None, stored.id if stored else None, self._clock()
        )
        self._verdicts[digest] = verdict
        self._verdicts.move_to_end(digest)
        while len(self._verdicts) > MAX_CACHED:
            self._verdicts.popitem(last=False)
        self._note_use(verdict)
        return verdict.project_id

    def required_cached(self) -> bool | None:
        """Whether calls must present a key, from memory; None when it must be read again."""
        if self._config:
            return True
        known = self._any_stored
        if known is None or self._clock() - known[1] > RECHECK_SECONDS:
            return None
        return known[0]

    async def required(self) -> bool:
        found = self.required_cached()
        if found is not None:
            return found
        stored = await self._store.any_api_keys()
        self._any_stored = (stored, self._clock())
        return stored

    async def create(self, project_id: str, name: str) -> tuple[ApiKey, str]:
        """A new key of an existing project: the stored record and the key itself, which is
        shown once and kept nowhere."""
        value = new_key()
        record = ApiKey(
            id=ids.new_id(API_KEY_PREFIX),
            project_id=project_id,
            name=name,
            redacted_value=redacted(value),
            created_at=int(time.time()),
        )
        await self._store.create_api_key(record, key_digest(value).hex())
        self._any_stored = None
        return record, value

    async def revoke(self, key_id: str) -> bool:
        """Delete a key and forget it on this core at once (others within `RECHECK_SECONDS`)."""
        deleted = await self._store.delete_api_key(key_id)
        self.forget(key_id)
        return deleted

    def forget(self, key_id: str) -> None:
        """Drop what this core knows of a key (revoked here or, by notice, on another core)."""
        for digest, verdict in list(self._verdicts.items()):
            if verdict.key_id == key_id:
                del self._verdicts[digest]
        self._any_stored = None

    async def close(self) -> None:
        """Let the pending `last_used_at` writes finish."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    def _note_use(self, verdict: _Verdict) -> None:
        """Write `last_used_at` now if this core has not for a minute (in the background)."""
        key_id = verdict.key_id
        if key_id is None:
            return
        now = self._clock()
        written = self._used_written.get(key_id)
        if written is not None and now - written < LAST_USED_EVERY_SECONDS:
            return
        self._used_written[key_id] = now
        task = asyncio.get_running_loop().create_task(self._write_used(key_id))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write_used(self, key_id: str) -> None:
        try:
            await self._store.mark_api_keys_used({key_id: int(time.time())})
        except Exception:
            log.exception("could not record the use of API key %s", key_id)


async def project_named(store: Store, name_or_id: str, create: bool) -> Project | None:
    """The project with that ID, else the oldest of that name; made (with that name) when
    there is none and `create`."""
    if name_or_id.startswith(PROJECT_PREFIX):
        found = await store.get_project(name_or_id)
        if found is not None:
            return found
    named = await store.projects_named(name_or_id)
    if named:
        return named[0]
    if not create:
        return None
    project = Project(ids.new_id(PROJECT_PREFIX), name_or_id, int(time.time()))
    await store.create_project(project)
    return project
