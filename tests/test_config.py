"""Configuration from the environment: every DESIGN.md variable parses as documented."""

from __future__ import annotations

import pytest

from compat_core.config import OLLAMA_DEFAULT_BASE_URL, OPENAI_DEFAULT_BASE_URL, Settings
from compat_core.models import ModelRegistry


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    import os

    for key in list(os.environ):
        if key.startswith(("COMPAT_", "OPENAI_")):
            monkeypatch.delenv(key)
    monkeypatch.chdir(str(tmp_path))  # no stray .env file


def test_defaults_match_the_design() -> None:
    settings = Settings()
    assert (settings.http_host, settings.http_port) == ("0.0.0.0", 8080)
    assert (settings.grpc_host, settings.grpc_port) == ("0.0.0.0", 50051)
    assert settings.database_url == "sqlite:///./data/compat.db"
    assert settings.api_keys == []
    assert settings.cors_origins == ["*"]
    assert settings.log_requests is False
    assert settings.default_model == "builtin/echo"
    assert settings.resolved_core_target() == "127.0.0.1:50051"
    assert str(settings.resolved_files_dir()) == "data/files"


def test_comma_separated_lists_and_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPAT_API_KEYS", "k1, k2,,")
    monkeypatch.setenv("COMPAT_CORS_ORIGINS", "https://a.example,https://b.example")
    monkeypatch.setenv("COMPAT_TOOLS", "pkg.mod:calc,pkg.mod:more")
    monkeypatch.setenv("COMPAT_MODEL_ALIASES", "gpt-4o-mini=ollama/llama3.2:3b, big=openai/gpt-4o")
    monkeypatch.setenv("COMPAT_LOG_REQUESTS", "true")
    settings = Settings()
    assert settings.api_keys == ["k1", "k2"]
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.tools == ["pkg.mod:calc", "pkg.mod:more"]
    assert settings.model_aliases == {"gpt-4o-mini": "ollama/llama3.2:3b", "big": "openai/gpt-4o"}
    assert settings.log_requests is True


def test_dotenv_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    from pathlib import Path

    Path(str(tmp_path), ".env").write_text(
        "COMPAT_HTTP_PORT=9999\nCOMPAT_PROVIDER_VLLM_BASE_URL=http://127.0.0.1:8000/v1\n"
    )
    settings = Settings()
    assert settings.http_port == 9999
    assert settings.providers()["vllm"].base_url == "http://127.0.0.1:8000/v1"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("COMPAT_MODEL_ALIASES", "no-equals-sign"),
        ("COMPAT_MODEL_ALIASES", "name=bare"),
        ("COMPAT_DATABASE_URL", "mysql://x"),
        ("COMPAT_DEFAULT_MODEL", "bare"),
        ("COMPAT_HTTP_PORT", "70000"),
    ],
)
def test_bad_values_are_rejected(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=variable.removeprefix("COMPAT_").lower()):
        Settings()


def test_providers_builtin_and_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("COMPAT_PROVIDER_LOCAL_BASE_URL", "http://127.0.0.1:2/v1")
    monkeypatch.setenv("COMPAT_PROVIDER_LOCAL_API_KEY", "local-key")
    monkeypatch.setenv("COMPAT_PROVIDER_OLLAMA_BASE_URL", "http://127.0.0.1:3/v1")
    providers = Settings().providers()
    assert providers["openai"].base_url == "http://127.0.0.1:1/v1"
    assert providers["openai"].api_key == "sk-env"
    assert providers["local"].api_key == "local-key"
    assert providers["ollama"].base_url == "http://127.0.0.1:3/v1"


def test_provider_specific_openai_settings_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    monkeypatch.setenv("COMPAT_PROVIDER_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    providers = Settings().providers()
    assert providers["openai"].base_url == "http://127.0.0.1:9/v1"
    assert Settings().providers()["ollama"].base_url == OLLAMA_DEFAULT_BASE_URL
    assert OPENAI_DEFAULT_BASE_URL.startswith("https://")


def test_provider_without_base_url_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPAT_PROVIDER_NEW_API_KEY", "k")
    with pytest.raises(ValueError, match="COMPAT_PROVIDER_NEW_BASE_URL"):
        Settings().providers()


def test_alias_to_unknown_provider_fails_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPAT_MODEL_ALIASES", "gpt-4o=nowhere/model")
    with pytest.raises(ValueError, match="nowhere"):
        ModelRegistry(Settings())


def test_model_resolution() -> None:
    registry = ModelRegistry(Settings(model_aliases={"fast": "ollama/llama3.2:3b"}))
    assert registry.resolve("fast").provider == "ollama"
    assert registry.resolve("fast").name == "llama3.2:3b"
    assert registry.resolve("gpt-4o-mini").provider == "builtin"
    assert registry.resolve("openai/gpt-4o").name == "gpt-4o"
