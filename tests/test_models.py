"""Models over HTTP: the built-in model is listed and retrievable by its slashed ID."""

from __future__ import annotations

import httpx2
import openai
import pytest
from harness import assert_api_error
from harness.schema import validate_response

BUILTIN = "builtin/echo"


def test_list_includes_the_builtin_model(client: openai.OpenAI) -> None:
    models = {model.id: model for model in client.models.list()}
    assert BUILTIN in models
    echo = models[BUILTIN]
    assert echo.object == "model"
    assert echo.owned_by == "builtin"
    assert isinstance(echo.created, int)


def test_builtin_models_come_first(client: openai.OpenAI) -> None:
    ids = [model.id for model in client.models.list()]
    owners = [model.owned_by for model in client.models.list()]
    builtin_count = owners.count("builtin")
    assert builtin_count >= 1
    assert owners[:builtin_count] == ["builtin"] * builtin_count
    assert len(ids) == len(set(ids)), "each model once"


def test_retrieve_through_the_sdk(client: openai.OpenAI) -> None:
    # The SDK percent-encodes the slash: GET /v1/models/builtin%2Fecho.
    model = client.models.retrieve(BUILTIN)
    assert model.id == BUILTIN
    assert model.object == "model"
    assert model.owned_by == "builtin"


def test_retrieve_with_a_literal_slash(http: httpx2.Client) -> None:
    response = http.get(f"/v1/models/{BUILTIN}")
    assert response.status_code == 200
    body = response.json()
    validate_response("GET", f"/v1/models/{BUILTIN}", 200, body)
    assert body["id"] == BUILTIN
    assert body["object"] == "model"


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("builtin/no-such-model")
    assert_api_error(info.value, 404, "invalid_request_error")


def test_models_cannot_be_deleted(client: openai.OpenAI) -> None:
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.models.delete(BUILTIN)
    assert_api_error(info.value, 403, "permission_error")
    assert BUILTIN in {model.id for model in client.models.list()}
