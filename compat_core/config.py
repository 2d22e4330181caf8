"""Configuration from the environment (and a `.env` file), per DESIGN.md's table.

Providers are named by variables of the form `COMPAT_PROVIDER_<NAME>_BASE_URL`, so they cannot
be fixed fields of the settings model; `providers()` gathers them from the same sources.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

from dotenv import dotenv_values
from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
OLLAMA_DEFAULT_BASE_URL = "http://localhost:11434/v1"

_PROVIDER_VAR = re.compile(r"^COMPAT_PROVIDER_([A-Z0-9_]+?)_(BASE_URL|API_KEY)$")
_PROVIDER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class ProviderConfig(BaseModel):
    """An OpenAI-compatible upstream that serves `name/…` models."""

    name: str
    base_url: str
    api_key: str = ""


class Settings(BaseSettings):
    """Every knob of the server; see README's configuration table."""

    model_config = SettingsConfigDict(
        env_prefix="COMPAT_", env_file=".env", extra="ignore", frozen=True
    )

    http_host: str = "0.0.0.0"
    http_port: int = Field(default=8080, ge=0, le=65535)
    grpc_host: str = "0.0.0.0"
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    core_target: str = ""
    database_url: str = "sqlite:///./data/compat.db"
    files_dir: str = ""
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["*"])
    log_requests: bool = False
    tools: Annotated[list[str], NoDecode] = Field(default_factory=list)
    default_model: str = "builtin/echo"
    model_aliases: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    # Providers given in code (the embedded server's `providers=` argument); they win over
    # same-named ones from the environment.
    extra_providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    requires_action_timeout_seconds: int = Field(default=600, ge=1)
    max_upload_bytes: int = Field(default=512 * 1024 * 1024, ge=1)
    # This core's name on the runs it executes; empty: host, process and a random part.
    replica_id: str = Field(default="", max_length=100)
    # How long a core's claim on a run lasts unless renewed: how soon other cores resume the
    # runs of a core that died. Renewed several times per lease (at most every second).
    run_lease_seconds: float = Field(default=10.0, ge=0.5, le=3600)
    # How often a core removes the temporary files of uploads a crash interrupted (it also
    # does at start): how long such a file outlives a core that crashed and stays down.
    sweep_interval_seconds: float = Field(default=600.0, gt=0, le=86400)
    # Memory for the event logs of runs kept for late watchers: finished runs' logs are
    # dropped, oldest first, once all logs together hold more (running runs' never are).
    event_log_max_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    # How long a provider's model list is reused before `/v1/models` asks it again.
    models_cache_seconds: float = Field(default=60.0, ge=0, le=86400)

    _split = field_validator("api_keys", "cors_origins", "tools", mode="before")(_split_commas)

    @field_validator("model_aliases", mode="before")
    @classmethod
    def _parse_aliases(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        aliases: dict[str, str] = {}
        for pair in value.split(","):
            if not pair.strip():
                continue
            name, sep, target = str(pair).partition("=")
            if not sep or not name.strip() or "/" not in target:
                raise ValueError(
                    f"COMPAT_MODEL_ALIASES entry {pair!r} must look like name=provider/model"
                )
            aliases[name.strip()] = target.strip()
        return aliases

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgresql+asyncpg://")):
            raise ValueError("COMPAT_DATABASE_URL must be sqlite:///PATH or postgresql://…")
        return value

    @field_validator("default_model")
    @classmethod
    def _check_default_model(cls, value: str) -> str:
        if "/" not in value:
            raise ValueError("COMPAT_DEFAULT_MODEL must look like provider/model")
        return value

    def sqlite_path(self) -> Path | None:
        """The database file for a SQLite URL, else None."""
        if self.database_url.startswith("sqlite:///"):
            return Path(self.database_url.removeprefix("sqlite:///"))
        return None

    def resolved_files_dir(self) -> Path:
        """Where file bytes live: `COMPAT_FILES_DIR`, else `files/` beside the SQLite file."""
        if self.files_dir:
            return Path(self.files_dir)
        db_path = self.sqlite_path()
        if db_path is not None:
            return db_path.parent / "files"
        return Path("./data/files")

    def resolved_core_target(self) -> str:
        """Where an edge finds the core: `COMPAT_CORE_TARGET`, else this machine's core."""
        if self.core_target:
            return self.core_target
        host = "127.0.0.1" if self.grpc_host in ("0.0.0.0", "::", "") else self.grpc_host
        return f"{host}:{self.grpc_port}"

    def providers(self) -> dict[str, ProviderConfig]:
        """The OpenAI-compatible providers: `openai`, `ollama` and any configured ones."""
        env = _environment()
        found: dict[str, dict[str, str]] = {}
        for key, value in env.items():
            match = _PROVIDER_VAR.match(key)
            if match:
                name = match.group(1).lower()
                found.setdefault(name, {})[match.group(2).lower()] = value
        providers = {
            "openai": ProviderConfig(
                name="openai",
                base_url=env.get("OPENAI_BASE_URL") or OPENAI_DEFAULT_BASE_URL,
                api_key=env.get("OPENAI_API_KEY", ""),
            ),
            "ollama": ProviderConfig(name="ollama", base_url=OLLAMA_DEFAULT_BASE_URL),
        }
        for name, values in found.items():
            if not _PROVIDER_NAME.match(name) or name == "builtin":
                raise ValueError(f"provider name {name!r} is not allowed")
            base = providers.get(name)
            base_url = values.get("base_url") or (base.base_url if base else "")
            if not base_url:
                raise ValueError(f"COMPAT_PROVIDER_{name.upper()}_BASE_URL is required")
            api_key = values.get("api_key") or (base.api_key if base else "")
            providers[name] = ProviderConfig(name=name, base_url=base_url, api_key=api_key)
        for name, config in self.extra_providers.items():
            if not _PROVIDER_NAME.match(name) or name == "builtin":
                raise ValueError(f"provider name {name!r} is not allowed")
            providers[name] = config.model_copy(update={"name": name})
        return providers


def _environment() -> dict[str, str]:
    """The process environment over the `.env` file, as pydantic-settings layers them."""
    merged = {k: v for k, v in dotenv_values(".env").items() if v is not None}
    merged.update(os.environ)
    return merged
