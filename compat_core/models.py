"""Which model strings the server accepts and which models it can list.

A model string is `provider/model`; a bare name (what apps written for OpenAI send) is served
by an alias or the default model. Listing asks each configured provider's `/models` with a
short timeout, so a provider that is down costs a moment, never a hung request.

A provider's list is kept for `COMPAT_MODELS_CACHE_SECONDS` (a failure for at most
`FAILED_LIST_SECONDS`), and callers that want it while it is being fetched share that one
request: asking every provider on every call made `/v1/models` cost 45 ms instead of 1.6,
and would have sent every call to OpenAI with `OPENAI_API_KEY` set. A builtin model or an
alias is known without asking anyone; `provider/model` asks only that provider.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import openai

from compat_core import errors
from compat_core.config import ConfigError, ProviderConfig, Settings
from compat_core.v1 import models_pb2

log = logging.getLogger(__name__)

BUILTIN = "builtin"
BUILTIN_MODELS = ("echo",)
# 2026-01-01T00:00:00Z: a fixed date, so the builtin model's object never changes.
BUILTIN_CREATED = 1767225600
LIST_TIMEOUT_SECONDS = 2.0
# How long a provider that failed to list is left alone: long enough that a dead provider
# costs its timeout once in a while rather than on every call, short enough that it is
# listed soon after it comes back.
FAILED_LIST_SECONDS = 5.0


@dataclass(frozen=True)
class _Listed:
    """A provider's models as last fetched, good until `expires` (monotonic seconds)."""

    models: list[models_pb2.Model]
    expires: float


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model string is served: the provider's name and the upstream model name."""

    provider: str
    name: str


class ModelRegistry:
    """Resolves model strings and lists the models of the builtin and upstream providers."""

    def __init__(self, settings: Settings) -> None:
        self._providers = settings.providers()
        self._aliases = dict(settings.model_aliases)
        self._default = settings.default_model
        self._cache_seconds = settings.models_cache_seconds
        self._listed: dict[str, _Listed] = {}
        self._fetching: dict[str, asyncio.Task[list[models_pb2.Model]]] = {}
        # Each target with the setting it came from, for the one line that names it.
        targets = [(self._default, f"COMPAT_DEFAULT_MODEL={self._default!r}")]
        targets += [
            (target, f"COMPAT_MODEL_ALIASES entry {f'{alias}={target}'!r}")
            for alias, target in self._aliases.items()
        ]
        for target, setting in targets:
            try:
                self.resolve(target, param="model")
            except errors.ApiError as exc:
                raise ConfigError(f"{setting}: {exc.message}") from exc
        self.embedding = self._embedding_model(settings.embedding_model)

    @property
    def providers(self) -> dict[str, ProviderConfig]:
        return self._providers

    def _embedding_model(self, model: str) -> ResolvedModel | None:
        """`COMPAT_EMBEDDING_MODEL` resolved, None when unset; a ConfigError naming it when it
        names no configured provider. A bare name is refused rather than served by an alias or
        the default: those name chat models, and embedding with one fails on every file."""
        if not model:
            return None
        setting = f"COMPAT_EMBEDDING_MODEL={model!r}"
        provider = model.partition("/")[0]
        if provider == BUILTIN:
            raise ConfigError(
                f"{setting}: no built-in embedding model ships; name an OpenAI-compatible "
                "provider's model (such as ollama/nomic-embed-text), or leave it empty for "
                "lexical search"
            )
        try:
            return self.resolve(model, param="model")
        except errors.ApiError as exc:
            raise ConfigError(f"{setting}: {exc.message}") from exc

    def resolve(self, model: str, param: str = "model") -> ResolvedModel:
        """The provider and upstream name for `model`, or a 400 on `param`."""
        if not model:
            raise errors.invalid(
                f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
            )
        if "/" not in model:
            return self.resolve(self._aliases.get(model, self._default), param)
        provider, _, name = model.partition("/")
        if provider == BUILTIN:
            if name not in BUILTIN_MODELS:
                raise errors.invalid(
                    f"The model '{model}' does not exist. Built-in models: "
                    + ", ".join(f"{BUILTIN}/{m}" for m in BUILTIN_MODELS)
                    + ".",
                    param,
                    "model_not_found",
                )
        elif provider not in self._providers:
            raise errors.invalid(
                f"The model '{model}' names provider '{provider}', which is not configured. "
                f"Configured providers: {', '.join([BUILTIN, *sorted(self._providers)])}.",
                param,
                "model_not_found",
            )
        if not name:
            raise errors.invalid(f"The model '{model}' has no name after '/'.", param)
        return ResolvedModel(provider=provider, name=name)

    async def list_models(self) -> list[models_pb2.Model]:
        """Builtin models, aliases, then each reachable provider's models by name."""
        found = self._local_models()
        listed = await asyncio.gather(*(self._models_of(p) for p in self._listable_providers()))
        for models in listed:
            found.extend(models)
        return found

    async def get_model(self, model: str) -> models_pb2.Model:
        """One model from `list_models`, or NOT_FOUND; only `provider/…` asks a provider."""
        for candidate in self._local_models():
            if candidate.id == model:
                return candidate
        name, slash, _ = model.partition("/")
        provider = self._providers.get(name) if slash else None
        if provider is not None and _listable(provider):
            for candidate in await self._models_of(provider):
                if candidate.id == model:
                    return candidate
        raise errors.not_found(f"The model '{model}' does not exist.", "model")

    def _local_models(self) -> list[models_pb2.Model]:
        found = [
            models_pb2.Model(id=f"{BUILTIN}/{name}", created=BUILTIN_CREATED, owned_by=BUILTIN)
            for name in BUILTIN_MODELS
        ]
        for alias, target in sorted(self._aliases.items()):
            owner = target.partition("/")[0]
            found.append(models_pb2.Model(id=alias, created=BUILTIN_CREATED, owned_by=owner))
        return found

    def _listable_providers(self) -> list[ProviderConfig]:
        return [p for p in self._providers.values() if _listable(p)]

    async def _models_of(self, provider: ProviderConfig) -> list[models_pb2.Model]:
        """The provider's models, from the cache while it lasts, else fetched once for all
        who ask meanwhile."""
        listed = self._listed.get(provider.name)
        if listed is not None and listed.expires > time.monotonic():
            return listed.models
        fetching = self._fetching.get(provider.name)
        if fetching is None:
            fetching = asyncio.create_task(
                self._fetch(provider), name=f"list-models-{provider.name}"
            )
            self._fetching[provider.name] = fetching
        # Shielded: a caller that gives up does not cancel the fetch the others wait for.
        return await asyncio.shield(fetching)

    async def _fetch(self, provider: ProviderConfig) -> list[models_pb2.Model]:
        try:
            models = await self._list_provider(provider)
            keep = self._cache_seconds
            if models is None:
                keep = min(keep, FAILED_LIST_SECONDS)
            listed = _Listed(models or [], time.monotonic() + keep)
            self._listed[provider.name] = listed
            return listed.models
        finally:
            del self._fetching[provider.name]

    async def _list_provider(self, provider: ProviderConfig) -> list[models_pb2.Model] | None:
        """The provider's models, or None if it could not list them."""
        client = openai.AsyncOpenAI(
            base_url=provider.base_url,
            api_key=provider.api_key or "unused",
            timeout=LIST_TIMEOUT_SECONDS,
            max_retries=0,
        )
        try:
            page = await asyncio.wait_for(client.models.list(), LIST_TIMEOUT_SECONDS)
            return sorted(
                (
                    models_pb2.Model(
                        id=f"{provider.name}/{item.id}",
                        created=int(item.created or 0),
                        owned_by=provider.name,
                    )
                    for item in page.data
                ),
                key=lambda m: m.id,
            )
        except (openai.OpenAIError, TimeoutError) as exc:
            log.info("provider %s did not list its models: %s", provider.name, exc)
            return None
        finally:
            await client.close()


def _listable(provider: ProviderConfig) -> bool:
    # OpenAI's hosted API without a key cannot list anything: skip it rather than wait.
    return not (provider.name == "openai" and not provider.api_key)
