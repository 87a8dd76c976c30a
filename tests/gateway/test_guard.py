"""``RequestGuard``: without tokens only loopback ``Host`` names and no cross-origin browser
requests; always JSON bodies on ``POST`` and at most ``max_body_bytes`` of them.

Issue 9: a ``text/plain`` POST with ``Host: evil.example.com`` got 200, so any web page could
drive the agents (cross-site request forgery) or read their replies (DNS rebinding). Raw
``httpx`` here: these are requests the ``openai`` client never makes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from actoros.gateway.guard import is_loopback_host, is_loopback_origin

from .conftest import RawConnection, RunningGateway, chat_post, start_gateway

pytestmark = pytest.mark.timeout(30)

CHAT = {"model": "echo", "messages": [{"role": "user", "content": "hello"}]}
JSON = {"Content-Type": "application/json"}


def http(gateway: RunningGateway) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=gateway.url, timeout=10.0)


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    return error


async def assert_serving(gateway: RunningGateway) -> None:
    reply = await gateway.client().chat.completions.create(**CHAT)  # type: ignore[call-overload]
    assert reply.choices[0].message.content == "echo: hello"


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "localhost:8000",
        "LOCALHOST:1",
        "127.0.0.1",
        "127.0.0.1:8000",
        "127.1.2.3:80",
        "[::1]",
        "[::1]:8000",
    ],
)
def test_loopback_host_names(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize(
    "host",
    [
        "",
        "evil.example.com",
        "evil.example.com:8000",
        "127.0.0.1.evil.example.com",
        "localhost.evil.example.com",
        "0.0.0.0:8000",
        "192.168.1.10:8000",
        "[::]:8000",
        "127.0.0.1:port",
        "user@127.0.0.1",
        "127.0.0.1/path",
        "[::1",
        "::1",
    ],
)
def test_other_host_names(host: str) -> None:
    assert not is_loopback_host(host)


@pytest.mark.parametrize(
    ("origin", "loopback"),
    [
        ("http://localhost:5173", True),
        ("http://127.0.0.1:8000", True),
        ("https://[::1]", True),
        ("http://evil.example.com", False),
        ("https://localhost.evil.example.com", False),
        ("null", False),
        ("file://", False),
        ("http://localhost:x", False),
    ],
)
def test_loopback_origins(origin: str, loopback: bool) -> None:
    assert is_loopback_origin(origin) is loopback


async def test_without_tokens_a_request_for_another_host_name_is_403(
    gateway: RunningGateway,
) -> None:
    async with http(gateway) as client:
        # the request: a page's form post after DNS rebinding
        forged = await client.post(
            "/v1/chat/completions",
            content=b'{"model": "echo", "messages": [{"role": "user", "content": "hi"}]}',
            headers={"Host": "evil.example.com", "Content-Type": "text/plain"},
        )
        assert forged.status_code == 403
        error = error_of(forged)
        assert error["code"] == "host_not_allowed" and error["param"] == "Host"
        assert "'evil.example.com'" in error["message"] and "gateway.tokens" in error["message"]
        for path in ("/v1/models", "/", "/api/tree", "/metrics"):
            read = await client.get(path, headers={"Host": "evil.example.com:8000"})
            assert read.status_code == 403, path
    await assert_serving(gateway)


async def test_without_tokens_loopback_host_names_are_served(gateway: RunningGateway) -> None:
    port = gateway.url.rsplit(":", 1)[1]
    async with http(gateway) as client:
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "localhost"):
            response = await client.post("/v1/chat/completions", json=CHAT, headers={"Host": host})
            assert response.status_code == 200, host
            assert response.json()["choices"][0]["message"]["content"] == "echo: hello"


async def test_a_request_without_a_host_header_is_403(gateway: RunningGateway) -> None:
    raw = await RawConnection.open(gateway.url)
    try:
        await raw.send(b"GET /v1/models HTTP/1.0\r\n\r\n")  # HTTP/1.0 may omit Host
        status, _, body = await raw.response()
        assert status == 403 and body["error"]["code"] == "host_not_allowed"
    finally:
        raw.close()


@pytest.mark.parametrize(
    "origin", ["http://evil.example.com", "https://evil.example.com:8000", "null"]
)
async def test_without_tokens_a_cross_origin_request_is_403(
    gateway: RunningGateway, origin: str
) -> None:
    async with http(gateway) as client:
        posted = await client.post("/v1/chat/completions", json=CHAT, headers={"Origin": origin})
        assert posted.status_code == 403
        error = error_of(posted)
        assert error["code"] == "origin_not_allowed" and error["param"] == "Origin"
        assert repr(origin) in error["message"]
        read = await client.get("/v1/models", headers={"Origin": origin})
        assert read.status_code == 403
        feed = await client.get("/api/tree", headers={"Origin": origin})
        assert feed.status_code == 403


async def test_without_tokens_pages_served_from_loopback_may_call(gateway: RunningGateway) -> None:
    async with http(gateway) as client:
        for origin in ("http://localhost:5173", gateway.url):
            response = await client.post(
                "/v1/chat/completions", json=CHAT, headers={"Origin": origin}
            )
            assert response.status_code == 200, origin


TOKENS = {"tokens": [{"name": "ops", "token": "ops-secret-token"}]}
AUTH = {"Authorization": "Bearer ops-secret-token"}


async def test_with_tokens_host_and_origin_are_left_to_the_token(tmp_path: Path) -> None:
    async with start_gateway(tmp_path, gateway=TOKENS) as gateway, http(gateway) as client:
        foreign = {"Host": "api.example.com", "Origin": "https://app.example.com"}
        answered = await client.post("/v1/chat/completions", json=CHAT, headers=AUTH | foreign)
        assert answered.status_code == 200
        unauthorized = await client.post("/v1/chat/completions", json=CHAT, headers=foreign)
        assert unauthorized.status_code == 401


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonp",
    ],
)
@pytest.mark.parametrize("tokens", [False, True], ids=["no-tokens", "tokens"])
async def test_a_post_body_that_is_not_declared_json_is_415(
    tmp_path: Path, content_type: str | None, tokens: bool
) -> None:
    sections = {"gateway": TOKENS} if tokens else {}
    async with start_gateway(tmp_path, **sections) as gateway, http(gateway) as client:
        headers = {**(AUTH if tokens else {})}
        if content_type is not None:
            headers["Content-Type"] = content_type
        body = b'{"model": "echo", "messages": [{"role": "user", "content": "hi"}]}'
        refused = await client.post("/v1/chat/completions", content=body, headers=headers)
        assert refused.status_code == 415
        error = error_of(refused)
        assert error["code"] == "unsupported_media_type"
        assert "application/json" in error["message"]
        headers["Content-Type"] = "Application/JSON; charset=utf-8"
        accepted = await client.post("/v1/chat/completions", content=body, headers=headers)
        assert accepted.status_code == 200


LIMIT = 4096  # the smallest max_body_bytes the config allows is 1024


async def test_a_body_over_max_body_bytes_is_413(tmp_path: Path) -> None:
    async with start_gateway(tmp_path, gateway={"max_body_bytes": LIMIT}) as gateway:
        client = gateway.client()
        big = [{"role": "user", "content": "x" * LIMIT}]
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model="echo", messages=big)  # type: ignore[arg-type]
        assert caught.value.status_code == 413
        assert isinstance(caught.value.body, dict)
        assert caught.value.body["code"] == "request_too_large"
        assert "gateway.max_body_bytes" in caught.value.body["message"]
        fits = [{"role": "user", "content": "x" * (LIMIT - 200)}]
        reply = await client.chat.completions.create(model="echo", messages=fits)  # type: ignore[arg-type]
        assert reply.choices[0].message.content == "echo: " + "x" * (LIMIT - 200)


async def test_a_chunked_body_that_grows_past_the_limit_is_413(tmp_path: Path) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"model": "echo", "messages": [{"role": "user", "content": "'
        for _ in range(LIMIT // 512 + 1):
            yield b"x" * 512
        yield b'"}]}'

    async with start_gateway(tmp_path, gateway={"max_body_bytes": LIMIT}) as gateway:
        async with http(gateway) as client:
            response = await client.post("/v1/chat/completions", content=chunks(), headers=JSON)
        assert response.status_code == 413
        assert error_of(response)["code"] == "request_too_large"
        await assert_serving(gateway)


async def test_a_declared_length_over_the_limit_is_413_before_the_body_is_read(
    tmp_path: Path,
) -> None:
    limits = {"max_body_bytes": LIMIT, "header_timeout": 0.5}
    async with start_gateway(tmp_path, gateway=limits) as gateway:
        raw = await RawConnection.open(gateway.url)
        try:
            # 100 MB announced, none of it sent: the answer cannot wait for the body
            await raw.send(chat_post(100_000_000))
            status, _, body = await asyncio.wait_for(raw.response(), 10)
            assert status == 413 and body["error"]["code"] == "request_too_large"
            # what follows is dropped, and the connection closed within the header deadline
            await raw.send(b"x" * 65536)
            await asyncio.wait_for(raw.closed(), 10)
        finally:
            raw.close()
        await assert_serving(gateway)
