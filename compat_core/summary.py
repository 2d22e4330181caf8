"""The block a server logs once it listens: what it serves, where, and from what settings.

A newcomer's first questions after `make run` are answered here rather than by reading the
configuration back: which database (password masked), whether callers need a key, which
tools and models are there, which browser origins may call, and which address to give a
client (a server bound to 0.0.0.0 listens on every interface; a client on this machine uses
127.0.0.1).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from compat_core.config import Settings, mask_password
from compat_core.startup import format_host

Mode = Literal["run", "core", "edge"]

_ALL_INTERFACES = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


@dataclass(frozen=True)
class Listening:
    """The addresses a started server is bound to (ports as bound: never 0)."""

    http_port: int | None = None
    grpc_port: int | None = None
    core_target: str | None = None
    metrics_port: int | None = None


def startup_summary(
    mode: Mode, settings: Settings, listening: Listening, tools: Iterable[str] = ()
) -> str:
    """The summary for `mode` (`core` has no HTTP side, `edge` no store, tools or models)."""
    lines = [f"assistants-compat {mode}: ready"]
    if listening.http_port is not None:
        root, client = _addresses("http://", settings.http_host, listening.http_port)
        lines.append(
            f"HTTP       {root} ({_scope(settings.http_host)}; OpenAI base URL {client}/v1)"
        )
        lines.append(f"metrics    {root}/metrics (Prometheus)")
    if listening.grpc_port is not None:
        bound, client = _addresses("", settings.grpc_host, listening.grpc_port)
        lines.append(f"gRPC       {bound} ({_scope(settings.grpc_host)}; clients use {client})")
    if listening.metrics_port is not None:
        bound, _ = _addresses("http://", settings.metrics_host, listening.metrics_port)
        lines.append(f"metrics    {bound}/metrics ({_scope(settings.metrics_host)}; Prometheus)")
    if listening.core_target is not None:
        source = "COMPAT_CORE_TARGET" if settings.core_target else "this machine's COMPAT_GRPC_PORT"
        lines.append(f"core       {listening.core_target} ({source})")
    if mode != "edge":
        lines += _core_lines(settings, list(tools))
    if mode != "core":
        origins = ", ".join(settings.cors_origins) or "none (browsers may not call)"
        lines.append(f"CORS       {'* (any origin)' if origins == '*' else origins}")
    return "\n  ".join(lines)


def _core_lines(settings: Settings, tools: list[str]) -> list[str]:
    keys = len(settings.api_keys)
    providers = ", ".join(
        f"{name} {mask_password(config.base_url)}" + (" (key set)" if config.api_key else "")
        for name, config in sorted(settings.providers().items())
    )
    aliases = ", ".join(f"{name}={target}" for name, target in settings.model_aliases.items())
    return [
        f"database   {mask_password(settings.database_url)} "
        f"(files in {settings.resolved_files_dir()})",
        f"auth       on ({keys} API key{'s' if keys != 1 else ''})"
        if keys
        else "auth       off (COMPAT_API_KEYS is empty: anyone who reaches the port may call)",
        f"tools      {', '.join(sorted(tools)) or 'none'}",
        f"providers  builtin, {providers}",
        f"models     default {settings.default_model}; aliases {aliases or 'none'}",
    ]


def _addresses(scheme: str, host: str, port: int) -> tuple[str, str]:
    """The bound address and the one a client on this machine uses."""
    client = _ALL_INTERFACES.get(host, host)
    return (
        f"{scheme}{format_host(host or '0.0.0.0')}:{port}",
        f"{scheme}{format_host(client)}:{port}",
    )


def _scope(host: str) -> str:
    return "all interfaces" if host in _ALL_INTERFACES else "this address only"
