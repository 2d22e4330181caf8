"""`/v1/models` asks providers as seldom as it can: a provider's list is cached for
`COMPAT_MODELS_CACHE_SECONDS` (a failure briefly), callers at once share one request, and a
builtin model or an alias is answered without asking any provider.

Each test has its own scripted upstream, which counts the `GET /v1/models` it serves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from harness import MakeClient, MakeServer, assert_api_error

from compat_core.config import ProviderConfig, Settings
from compat_core.models import ModelRegistry
from runs.upstream import ScriptedUpstream


@pytest.fixture
def listing() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream(provider="listing") as server:
        yield server


def _providers(listing: ScriptedUpstream, dead_url: str) -> dict[str, ProviderConfig]:
    return {
        "listing": ProviderConfig(name="listing", base_url=listing.base_url),
        "openai": ProviderConfig(name="openai", base_url=dead_url, api_key="sk-test"),
        "ollama": ProviderConfig(name="ollama", base_url=dead_url),
    }


def _server_settings(listing: ScriptedUpstream, dead_url: str, **more: Any) -> dict[str, Any]:
    return {
        "extra_providers": _providers(listing, dead_url),
        "model_aliases": {"mini": "listing/small"},
        **more,
    }


def test_two_lists_ask_the_provider_once(
    make_server: MakeServer, make_client: MakeClient, listing: ScriptedUpstream, dead_url: str
) -> None:
    listing.model("small")
    client = make_client(make_server(**_server_settings(listing, dead_url)))
    first = [model.id for model in client.models.list()]
    second = [model.id for model in client.models.list()]
    assert first == second
    assert first[:2] == ["builtin/echo", "mini"]
    assert "listing/small" in first
    assert listing.model_lists == 1
    # A provider's model is found in the list already fetched.
    assert client.models.retrieve("listing/small").owned_by == "listing"
    assert listing.model_lists == 1


def test_builtin_and_alias_lookups_never_ask_a_provider(
    make_server: MakeServer, make_client: MakeClient, listing: ScriptedUpstream, dead_url: str
) -> None:
    client = make_client(make_server(**_server_settings(listing, dead_url)))
    assert client.models.retrieve("builtin/echo").owned_by == "builtin"
    alias = client.models.retrieve("mini")
    assert (alias.id, alias.owned_by) == ("mini", "listing")
    for missing in ("gpt-unknown", "builtin/nope", "nowhere/model"):
        with pytest.raises(openai.NotFoundError) as info:
            client.models.retrieve(missing)
        assert_api_error(info.value, 404, "invalid_request_error")
    assert listing.model_lists == 0


def test_a_failed_list_is_not_asked_again_at_once(
    make_server: MakeServer, make_client: MakeClient, listing: ScriptedUpstream, dead_url: str
) -> None:
    listing.model_list_status = 500
    client = make_client(make_server(**_server_settings(listing, dead_url)))
    for _ in range(3):
        ids = [model.id for model in client.models.list()]
        assert ids == ["builtin/echo", "mini"]
    assert listing.model_lists == 1


def _registry(listing: ScriptedUpstream, dead_url: str, cache_seconds: float) -> ModelRegistry:
    return ModelRegistry(
        Settings(
            extra_providers=_providers(listing, dead_url),
            models_cache_seconds=cache_seconds,
        )
    )


def test_callers_at_once_share_one_request_even_without_a_cache(
    listing: ScriptedUpstream, dead_url: str
) -> None:
    listing.model("small")
    registry = _registry(listing, dead_url, cache_seconds=0)

    async def at_once() -> list[list[str]]:
        lists = await asyncio.gather(*(registry.list_models() for _ in range(8)))
        return [[model.id for model in found] for found in lists]

    lists = asyncio.run(at_once())
    assert all(found == lists[0] for found in lists)
    assert "listing/small" in lists[0]
    assert listing.model_lists == 1
    # No cache: the next call asks again.
    asyncio.run(registry.list_models())
    assert listing.model_lists == 2
