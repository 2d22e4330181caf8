"""Admin keys (`COMPAT_ADMIN_KEYS`): the only keys of the admin surface, and of nothing else.

OpenAI keeps the two kinds of key apart: an admin key manages projects and keys but cannot
call the API of any project, and a project's key cannot manage anything. So does this
server. `AdminAuth` is what the guard asks around every `AdminService` method instead of
`ApiKeyAuth`; `ApiKeyAuth` asks `AdminKeys.holds` only about a key it has already refused,
so that an admin key presented to the project API gets a refusal that says why.

Presented keys are compared by their SHA-256 with `hmac.compare_digest`, against every admin
key whatever the outcome, so the time a check takes says nothing about how close a guess was.
Neither the keys nor their digests are ever logged or repeated in an answer.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Final

from compat_core import errors, tenancy
from compat_core.guard import MISSING_KEY, Metadata, credentials
from compat_core.keyring import MISS, KeyRing, key_digest

# OpenAI's words (and status, 403) for a key without the management scope.
NOT_ADMIN: Final = (
    "You have insufficient permissions for this operation. Missing scopes: "
    "api.management.read. The admin API takes a key of COMPAT_ADMIN_KEYS, not a project's key."
)
NO_ADMIN_KEYS: Final = (
    "You have insufficient permissions for this operation: this server has no admin keys. "
    "Set COMPAT_ADMIN_KEYS (comma-separated) to turn the admin API on."
)


class AdminKeys:
    """The digests of `COMPAT_ADMIN_KEYS`."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._digests = tuple(key_digest(key) for key in keys if key)

    @property
    def configured(self) -> bool:
        return bool(self._digests)

    def holds(self, key: str) -> bool:
        """Whether `key` is an admin key, in a time that depends on nothing but the number of
        admin keys."""
        presented = key_digest(key)
        found = False
        for digest in self._digests:
            found |= hmac.compare_digest(presented, digest)
        return found


class AdminAuth:
    """The scope of an `AdminService` call: all projects, for a caller with an admin key.

    A caller without one is refused as OpenAI refuses it: no key or an unknown one is a 401
    (as on every route), a project's key a 403 (it lacks the management scope), and on a
    server without admin keys every caller with a key is told how to turn them on.
    """

    def __init__(self, admin: AdminKeys, keys: KeyRing) -> None:
        self._admin = admin
        self._keys = keys

    async def scope(self, metadata: Metadata | None) -> tenancy.Scope:
        header, token, _ = credentials(metadata)
        if not token:
            raise errors.unauthenticated("Incorrect API key provided." if header else MISSING_KEY)
        if self._admin.holds(token):
            return tenancy.ALL_PROJECTS
        if not self._admin.configured:
            raise errors.permission_denied(NO_ADMIN_KEYS)
        cached = self._keys.cached(token)
        project = await self._keys.look_up(token) if cached is MISS else cached
        if project is None:
            raise errors.unauthenticated("Incorrect API key provided.")
        raise errors.permission_denied(NOT_ADMIN)
