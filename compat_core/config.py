"""Configuration from the environment (and a `.env` file), per DESIGN.md's table.

Providers are named by variables of the form `COMPAT_PROVIDER_<NAME>_BASE_URL`, so they cannot
be fixed fields of the settings model; `providers()` gathers them from the same sources.

A bad value is a `ConfigError`: one line per bad variable, naming it, because the person who
reads it is setting up a server and needs to know which variable to fix, not how pydantic
reports a validation error (`load_settings`).
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError
from sqlalchemy.engine import make_url

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
OLLAMA_DEFAULT_BASE_URL = "http://localhost:11434/v1"

_PROVIDER_VAR = re.compile(r"^COMPAT_PROVIDER_([A-Z0-9_]+?)_(BASE_URL|API_KEY)$")
_PROVIDER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class ConfigError(ValueError):
    """Settings the server cannot start with; each of `lines` names the variable to fix."""

    def __init__(self, *lines: str) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


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
    # Keys of the admin surface (`/v1/organization/…`, `AdminService`), which open nothing
    # else; none: the admin surface refuses every call (docs/projects.md).
    admin_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["*"])
    log_requests: bool = False
    tools: Annotated[list[str], NoDecode] = Field(default_factory=list)
    default_model: str = "builtin/echo"
    model_aliases: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    # `provider/model` of an OpenAI-compatible `/v1/embeddings`: turns on dense and hybrid
    # file_search. Empty: lexical search only, which needs no model and works offline.
    embedding_model: str = ""
    # Providers given in code (the embedded server's `providers=` argument); they win over
    # same-named ones from the environment.
    extra_providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    # code_interpreter (docs/code-interpreter.md): the sandbox's Python environment (empty:
    # the checkout's `.sandbox`, what `make sandbox-env` builds), where sessions keep their
    # /mnt/data (empty: `sessions/`
    # beside the files directory), how long a thread's session lives unused, how many live at
    # once in a core (the one idle longest is closed first), and what one session may use.
    code_interpreter_env: str = ""
    code_interpreter_dir: str = ""
    code_interpreter_idle_seconds: float = Field(default=3600.0, gt=0, le=7 * 86400)
    code_interpreter_max_sessions: int = Field(default=16, ge=1, le=10_000)
    code_interpreter_call_seconds: float = Field(default=60.0, gt=0, le=3600)
    code_interpreter_memory_mb: int = Field(default=2048, ge=256)
    code_interpreter_processes: int = Field(default=64, ge=8, le=65_536)
    code_interpreter_file_mb: int = Field(default=256, ge=1)
    code_interpreter_output_kb: int = Field(default=1024, ge=1)
    requires_action_timeout_seconds: int = Field(default=600, ge=1)
    max_upload_bytes: int = Field(default=512 * 1024 * 1024, ge=1)
    # This core's name on the runs it executes; empty: host, process and a random part.
    replica_id: str = Field(default="", max_length=100)
    # How long a core's claim on a run lasts unless renewed: how soon other cores resume the
    # runs of a core that died. Renewed several times per lease (at most every second). Also
    # how long the event streams a core counted against a project's limit keep counting
    # after it died (`compat_core.ratelimit`).
    run_lease_seconds: float = Field(default=10.0, ge=0.5, le=3600)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # `json`: one JSON object per line, for log shippers (see `compat_core.logs`).
    log_format: Literal["text", "json"] = "text"
    # The HTTP edge's connections (`http_edge.connections`): how long a client may take to
    # send a request's head (from connecting, or from the first byte of a next request), how
    # long its body may pause, how long an idle connection is kept; how many connections and
    # event streams one edge serves at once (503 beyond).
    http_header_timeout_seconds: float = Field(default=10.0, gt=0, le=3600)
    http_body_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    http_keepalive_seconds: float = Field(default=75.0, gt=0, le=86400)
    max_connections: int = Field(default=4096, ge=1)
    max_streams: int = Field(default=2048, ge=1)
    # Every project's rate limits unless it has its own (`compat_core.ratelimit`); 0 is
    # unlimited. The per-minute limits count in windows of `rate_limit_window_seconds`.
    rate_limit_requests_per_minute: int = Field(default=0, ge=0)
    rate_limit_tokens_per_minute: int = Field(default=0, ge=0)
    rate_limit_concurrent_runs: int = Field(default=0, ge=0)
    rate_limit_concurrent_streams: int = Field(default=0, ge=0)
    rate_limit_window_seconds: int = Field(default=60, ge=1, le=3600)
    # How long a stopping server lets open event streams and in-flight requests finish.
    shutdown_grace_seconds: float = Field(default=10.0, ge=0, le=3600)
    # Concurrent `grpc.health.v1` Watch streams a core serves (they need no key).
    max_health_watches: int = Field(default=100, ge=1)
    # How often a core removes the temporary files of uploads a crash interrupted, and drops
    # the chunks of vector stores that expired (it also does at start): how long such a file
    # outlives a core that crashed and stays down, and an expired store's chunks its expiry.
    sweep_interval_seconds: float = Field(default=600.0, gt=0, le=86400)
    # Memory for the event logs of runs kept for late watchers: finished runs' logs are
    # dropped, oldest first, once all logs together hold more (running runs' never are).
    event_log_max_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    # How long a provider's model list is reused before `/v1/models` asks it again.
    models_cache_seconds: float = Field(default=60.0, ge=0, le=86400)
    # How often a core reads what each project stores for its metrics
    # (`compat_core.storage_metrics`): a scrape reads the last figures, never the database.
    storage_metrics_seconds: float = Field(default=60.0, gt=0, le=86400)
    # Where a stand-alone core (`assistants-compat core`) serves its Prometheus metrics (0: a
    # free port, as for the other ports). The all-in-one server shows them on the edge's
    # `/metrics` instead.
    metrics_host: str = "0.0.0.0"
    metrics_port: int = Field(default=9464, ge=0, le=65535)

    _split = field_validator("api_keys", "admin_keys", "cors_origins", "tools", mode="before")(
        _split_commas
    )

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        return value.upper() if value.lower() in _LOG_LEVELS else value.lower()

    @field_validator("core_target")
    @classmethod
    def _check_core_target(cls, value: str) -> str:
        if value:
            _check_grpc_target(value)
        return value

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            # Browsers send `Origin: scheme://host[:port]`, compared verbatim: an origin with a
            # path or a trailing slash, or without a scheme, would never match.
            if origin in ("*", "null"):
                continue
            parts = urlsplit(origin)
            if not (parts.scheme and parts.netloc) or parts.path or parts.query:
                raise ValueError(
                    f"origin {origin!r} must be scheme://host[:port] "
                    "(such as https://app.example.com, no path or trailing slash) or *"
                )
        return value

    @field_validator("tools")
    @classmethod
    def _check_tools(cls, value: list[str]) -> list[str]:
        for spec in value:
            module, sep, attribute = spec.partition(":")
            if not sep or not module or not attribute:
                raise ValueError(f"entry {spec!r} must look like package.module:attribute")
        return value

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
                raise ValueError(f"entry {pair!r} must look like name=provider/model")
            aliases[name.strip()] = target.strip()
        return aliases

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgresql+asyncpg://")):
            raise ValueError("must be sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB")
        try:
            parsed = make_url(value)
        except ValueError as exc:
            raise ValueError(f"not a URL SQLAlchemy can read ({exc})") from None
        if parsed.drivername == "sqlite" and parsed.database in (None, "", ":memory:"):
            raise ValueError("a SQLite URL needs a file: sqlite:///PATH")
        return value

    @field_validator("default_model")
    @classmethod
    def _check_default_model(cls, value: str) -> str:
        if "/" not in value:
            raise ValueError("must look like provider/model")
        return value

    @field_validator("embedding_model")
    @classmethod
    def _check_embedding_model(cls, value: str) -> str:
        value = value.strip()
        if value and "/" not in value:
            raise ValueError("must look like provider/model (or be empty: lexical search only)")
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

    def resolved_sessions_dir(self) -> Path:
        """Where code_interpreter sessions keep their files: `COMPAT_CODE_INTERPRETER_DIR`,
        else `sessions/` beside the files directory."""
        if self.code_interpreter_dir:
            return Path(self.code_interpreter_dir)
        return self.resolved_files_dir().parent / "sessions"

    def resolved_core_target(self) -> str:
        """Where an edge finds the core: `COMPAT_CORE_TARGET`, else this machine's core."""
        if self.core_target:
            return self.core_target
        host = "127.0.0.1" if self.grpc_host in ("0.0.0.0", "::", "") else self.grpc_host
        return f"{host}:{self.grpc_port}"

    def providers(self) -> dict[str, ProviderConfig]:
        """The OpenAI-compatible providers: `openai`, `ollama` and any configured ones."""
        env = _environment()
        problems = _provider_problems(env)
        if problems:
            raise ConfigError(*problems)
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
            base = providers.get(name)
            base_url = values.get("base_url") or (base.base_url if base else "")
            api_key = values.get("api_key") or (base.api_key if base else "")
            providers[name] = ProviderConfig(name=name, base_url=base_url, api_key=api_key)
        for name, config in self.extra_providers.items():
            if not _PROVIDER_NAME.match(name) or name == "builtin":
                raise ConfigError(f"provider name {name!r} is not allowed")
            problem = _url_problem(f"provider {name!r}", config.base_url)
            if problem:
                raise ConfigError(problem)
            providers[name] = config.model_copy(update={"name": name})
        return providers


def load_settings() -> Settings:
    """The settings from the environment and `.env`, every one checked (providers too).

    Raises ConfigError with one line per bad variable, all of them at once: a newcomer fixes
    them in one go rather than one start at a time.
    """
    try:
        settings = Settings()
    except ValidationError as exc:
        lines = [_describe(error) for error in exc.errors()]
        raise ConfigError(*lines, *_provider_problems(_environment())) from None
    except SettingsError as exc:
        # A structured (JSON) variable that does not parse: pydantic-settings names the field.
        field = re.search(r'field "(\w+)"', str(exc))
        name = f"COMPAT_{field.group(1).upper()}" if field else "a COMPAT_ variable"
        raise ConfigError(f"{name}: not valid JSON") from None
    settings.providers()
    return settings


def mask_password(url: str) -> str:
    """`url` with the password of its `user:password@` part, if any, shown as `***`.

    Textual, so that it also masks URLs no parser accepts (they appear in error messages).
    """
    return _URL_PASSWORD.sub(r"\1***@", url)


# Fields whose values are never repeated in a message: they are credentials.
_SECRET_FIELDS = frozenset({"api_keys", "admin_keys"})
_URL_PASSWORD = re.compile(r"(://[^/@:]*:)[^@/]*@")
_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
# gRPC name-resolver schemes (`scheme:…`); those with addresses are checked further.
_GRPC_SCHEMES = ("dns", "ipv4", "ipv6", "unix", "unix-abstract", "vsock", "xds", "google-c2p")
_HOST_PORT = re.compile(
    r"^(?:\[(?P<v6>[0-9A-Fa-f:.%\w]+)\]|(?P<host>[A-Za-z0-9_.-]+))(?::(?P<port>.*))?$"
)


def _describe(error: ErrorDetails) -> str:
    """One pydantic error as one line naming the environment variable."""
    message = error["msg"].removeprefix("Value error, ")
    message = message[:1].lower() + message[1:]
    if not error["loc"]:
        return message
    field = str(error["loc"][0])
    variable = f"COMPAT_{field.upper()}"
    if field in _SECRET_FIELDS or not isinstance(error["input"], str | int | float):
        return f"{variable}: {message}"
    shown = error["input"]
    if field == "database_url":
        shown = mask_password(str(shown))
    return f"{variable}={shown!r}: {message}"


def _provider_problems(env: dict[str, str]) -> list[str]:
    """A line for each provider variable in `env` that no provider could be made of."""
    problems: list[str] = []
    openai_url = env.get("OPENAI_BASE_URL")
    if openai_url:
        problems.append(_url_problem("OPENAI_BASE_URL", openai_url) or "")
    named: dict[str, dict[str, str]] = {}
    for key, value in env.items():
        match = _PROVIDER_VAR.match(key)
        if match:
            named.setdefault(match.group(1), {})[match.group(2)] = value
    for name, values in sorted(named.items()):
        variable = f"COMPAT_PROVIDER_{name}_BASE_URL"
        if not _PROVIDER_NAME.match(name.lower()) or name.lower() == "builtin":
            problems.append(f"{variable}: provider name {name.lower()!r} is not allowed")
        elif values.get("BASE_URL"):
            problems.append(_url_problem(variable, values["BASE_URL"]) or "")
        elif name.lower() not in ("openai", "ollama"):
            problems.append(f"{variable} is required (COMPAT_PROVIDER_{name}_API_KEY is set)")
    return [problem for problem in problems if problem]


def _url_problem(variable: str, url: str) -> str | None:
    """A provider's base URL must be an absolute http(s) URL: anything else fails every call."""
    parts = urlsplit(url)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if parts.scheme in ("http", "https") and parts.hostname and port_ok:
        return None
    return (
        f"{variable}={mask_password(url)!r}: must be an http:// or https:// URL, "
        "such as http://127.0.0.1:8000/v1"
    )


def _check_grpc_target(target: str) -> None:
    """Raise ValueError unless grpc can resolve `target` as written (see README's table)."""
    usage = "must be host:port, dns:///host:port or ipv4:ADDRESS:PORT[,ADDRESS:PORT…]"
    scheme, sep, rest = target.partition(":")
    if sep and "://" in target and scheme not in _GRPC_SCHEMES:
        raise ValueError(f"{usage}, not a URL")
    if sep and scheme in _GRPC_SCHEMES:
        if scheme == "dns":
            # dns:[//authority/]host[:port]
            addresses = [rest.rsplit("/", 1)[-1] if rest.startswith("//") else rest]
        elif scheme in ("ipv4", "ipv6"):
            addresses = rest.split(",")
        else:
            if not rest:
                raise ValueError(usage)
            return
        for address in addresses:
            _check_host_port(address, usage, scheme if scheme != "dns" else None)
        return
    _check_host_port(target, usage, None)


def _check_host_port(address: str, usage: str, family: str | None) -> None:
    if family == "ipv6" and _is_ip(address, 6):
        return
    match = _HOST_PORT.match(address)
    if match is None:
        raise ValueError(f"{usage}; {address!r} is not host:port")
    port = match["port"]
    if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"{usage}; {port!r} is not a port")
    host = match["v6"] or match["host"]
    if family is not None and not _is_ip(host, 4 if family == "ipv4" else 6):
        raise ValueError(f"{usage}; {host!r} is not an {family} address")


def _is_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def _environment() -> dict[str, str]:
    """The process environment over the `.env` file, as pydantic-settings layers them."""
    merged = {k: v for k, v in dotenv_values(".env").items() if v is not None}
    merged.update(os.environ)
    return merged
