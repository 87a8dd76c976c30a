"""Bearer tokens: from the config or an environment variable, each reaching only its agents;
a missing or wrong token is 401, an agent the token may not reach is 404 (as OpenAI answers
for a model one has no access to). Without tokens no auth is asked (tested everywhere else)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from actoros.config import ConfigError

from .conftest import start_gateway

pytestmark = pytest.mark.timeout(30)

USER = [{"role": "user", "content": "hello"}]

TOKENS = {
    "tokens": [
        {"name": "ops", "token": "ops-secret-token"},
        {"name": "shop", "token_env": "ACTOROS_TEST_SHOP_TOKEN", "agents": ["echo", "router"]},
    ]
}


def body(error: openai.APIStatusError) -> dict[str, Any]:
    assert isinstance(error.body, dict)
    return error.body


@pytest.fixture
def shop_token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ACTOROS_TEST_SHOP_TOKEN", "shop-secret-from-env")
    return "shop-secret-from-env"


async def test_a_token_from_the_config_reaches_every_agent_and_the_model(
    tmp_path: Path, shop_token: str
) -> None:
    async with start_gateway(tmp_path, gateway=TOKENS) as gateway:
        ops = gateway.client(api_key="ops-secret-token")
        assert [m.id for m in (await ops.models.list()).data] == [
            "echo",
            "hold",
            "faq",
            "router",
            "fake",
        ]
        for model in ("echo", "faq", "fake"):
            completion = await ops.chat.completions.create(model=model, messages=USER)
            assert completion.choices[0].message.content


async def test_a_token_from_the_environment_reaches_only_its_agents(
    tmp_path: Path, shop_token: str
) -> None:
    async with start_gateway(tmp_path, gateway=TOKENS) as gateway:
        shop = gateway.client(api_key=shop_token)
        assert [m.id for m in (await shop.models.list()).data] == ["echo", "router"]
        completion = await shop.chat.completions.create(model="echo", messages=USER)
        assert completion.choices[0].message.content == "echo: hello"
        for model in ("faq", "fake"):  # an agent, and the raw model: only "*" reaches it
            with pytest.raises(openai.NotFoundError) as caught:
                await shop.chat.completions.create(model=model, messages=USER)
            error = body(caught.value)
            assert error["code"] == "model_not_found" and error["param"] == "model"
            assert "do not have access" in error["message"]
            with pytest.raises(openai.NotFoundError):
                await shop.models.retrieve(model)
        # the router may still forward to faq: permissions are the agents' own business
        routed = await shop.chat.completions.create(model="router", messages=USER)
        assert routed.choices[0].message.content
        assert set(gateway.restarts().values()) == {0}


@pytest.mark.parametrize("api_key", ["wrong-token", "ops-secret-token-but-longer", "x"])
async def test_a_wrong_token_is_401(tmp_path: Path, shop_token: str, api_key: str) -> None:
    async with start_gateway(tmp_path, gateway=TOKENS) as gateway:
        client = gateway.client(api_key=api_key)
        with pytest.raises(openai.AuthenticationError) as caught:
            await client.chat.completions.create(model="echo", messages=USER)
        error = body(caught.value)
        assert error["code"] == "invalid_api_key"
        assert "Incorrect API key" in error["message"]
        assert api_key not in error["message"] or len(api_key) <= 2
        with pytest.raises(openai.AuthenticationError):
            await client.models.list()
        ok = gateway.client(api_key="ops-secret-token")
        assert (await ok.chat.completions.create(model="echo", messages=USER)).choices


async def test_a_missing_token_is_401(tmp_path: Path, shop_token: str) -> None:
    async with start_gateway(tmp_path, gateway=TOKENS) as gateway:
        client = gateway.client()
        none = {"Authorization": openai.omit}  # the client's own header left out
        for call in (
            client.chat.completions.create(model="echo", messages=USER, extra_headers=none),
            client.chat.completions.create(
                model="echo", messages=USER, stream=True, extra_headers=none
            ),
            client.models.list(extra_headers=none),
            client.models.list(extra_headers={"Authorization": "Basic b3BzOnNlY3JldA=="}),
        ):
            with pytest.raises(openai.AuthenticationError) as caught:
                await call
            assert "didn't provide an API key" in body(caught.value)["message"]


async def test_auth_comes_before_everything_else(tmp_path: Path, shop_token: str) -> None:
    async with start_gateway(tmp_path, gateway=TOKENS) as gateway:
        client = gateway.client(api_key="wrong")
        with pytest.raises(openai.AuthenticationError):  # not a 400 for the body
            await client.chat.completions.create(model="nobody", messages=[])


async def test_an_unset_token_variable_stops_the_start_with_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACTOROS_TEST_SHOP_TOKEN", raising=False)
    with pytest.raises(ConfigError) as caught:
        async with start_gateway(tmp_path, gateway=TOKENS):
            pass
    [line] = caught.value.lines()
    assert "gateway.tokens[1].token_env" in line
    assert "ACTOROS_TEST_SHOP_TOKEN is not set" in line


async def test_metrics_need_a_token_when_the_gateway_has_tokens(
    tmp_path: Path, shop_token: str
) -> None:
    async with start_gateway(tmp_path, gateway=TOKENS) as gateway:
        async with httpx.AsyncClient(base_url=gateway.url) as http:
            assert (await http.get("/metrics")).status_code == 401
            wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            ok = await http.get("/metrics", headers={"Authorization": f"Bearer {shop_token}"})
            assert ok.status_code == 200 and "actoros_actors" in ok.text
