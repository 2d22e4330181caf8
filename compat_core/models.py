"""Which model strings the server accepts and which models it can list.

A model string is `provider/model`; a bare name (what apps written for OpenAI send) is served
by an alias or the default model. Listing asks each configured provider's `/models` with a
short timeout, so a provider that is down costs a moment, never a hung request.
"""

from __future__ import annotations

import asyncio
import logging
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

    @property
    def providers(self) -> dict[str, ProviderConfig]:
        return self._providers

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
        found = [
            models_pb2.Model(id=f"{BUILTIN}/{name}", created=BUILTIN_CREATED, owned_by=BUILTIN)
            for name in BUILTIN_MODELS
        ]
        for alias, target in sorted(self._aliases.items()):
            owner = target.partition("/")[0]
            found.append(models_pb2.Model(id=alias, created=BUILTIN_CREATED, owned_by=owner))
        listed = await asyncio.gather(*(self._list_provider(p) for p in self._listable_providers()))
        for models in listed:
            found.extend(models)
        return found

    async def get_model(self, model: str) -> models_pb2.Model:
        """One model from `list_models`, or NOT_FOUND."""
        for candidate in await self.list_models():
            if candidate.id == model:
                return candidate
        raise errors.not_found(f"The model '{model}' does not exist.", "model")

    def _listable_providers(self) -> list[ProviderConfig]:
        # OpenAI's hosted API without a key cannot list anything: skip it rather than wait.
        return [p for p in self._providers.values() if not (p.name == "openai" and not p.api_key)]

    async def _list_provider(self, provider: ProviderConfig) -> list[models_pb2.Model]:
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
            return []
        finally:
            await client.close()
