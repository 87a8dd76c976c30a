"""The connection guards: a deadline for a request's headers, a cap on open connections.

Issue 9: connections that sent no or half headers were never closed (300 held for 20 s, none
closed). Here a short ``header_timeout`` and loopback sockets; each test waits for the
server's close on the socket itself (EOF), never for a guessed time. Bounded: 60 sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from actoros.gateway.connections import guarded_protocol
from actoros.gateway.server import _Server

from .conftest import RawConnection, RunningGateway, start_gateway

pytestmark = pytest.mark.timeout(30)

USER = [{"role": "user", "content": "hello"}]
HELD = 60
CLOSED_WITHIN = 10.0  # seconds to wait for a close that a 0.5 s or 2 s deadline makes

HALF_REQUESTS = [
    b"",  # connects and sends nothing
    b"G",
    b"POST /v1/chat/completions HTTP/1.1\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl",
]


async def echo(gateway: RunningGateway) -> str | None:
    reply = await gateway.client().chat.completions.create(model="echo", messages=USER)  # type: ignore[arg-type]
    return reply.choices[0].message.content


async def test_connections_that_send_no_or_half_headers_are_closed_after_the_deadline(
    tmp_path: Path,
) -> None:
    async with start_gateway(tmp_path, gateway={"header_timeout": 0.5}) as gateway:
        held = [await RawConnection.open(gateway.url) for _ in range(HELD)]
        try:
            for i, raw in enumerate(held):
                if HALF_REQUESTS[i % len(HALF_REQUESTS)]:
                    await raw.send(HALF_REQUESTS[i % len(HALF_REQUESTS)])
            assert await echo(gateway) == "echo: hello"  # served beside them
            await asyncio.wait_for(asyncio.gather(*(raw.closed() for raw in held)), CLOSED_WITHIN)
        finally:
            for raw in held:
                raw.close()
        assert await echo(gateway) == "echo: hello"


async def test_a_kept_alive_connection_that_starts_a_request_must_finish_its_headers(
    tmp_path: Path,
) -> None:
    async with start_gateway(tmp_path, gateway={"header_timeout": 0.5}) as gateway:
        idle = await RawConnection.open(gateway.url)
        slow = await RawConnection.open(gateway.url)
        try:
            request = b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            for raw in (idle, slow):
                await raw.send(request)
                status, _, _ = await raw.response()
                assert status == 200
            await slow.send(b"GET /v1/models HTTP/1.1\r\nHost: 127.")  # and no more
            await asyncio.wait_for(slow.closed(), CLOSED_WITHIN)
            # the idle one, answered before ``slow`` was, has sent nothing since: idle
            # kept-alive connections are uvicorn's business (75 s), it still serves
            await idle.send(request)
            status, _, _ = await idle.response()
            assert status == 200
        finally:
            slow.close()
            idle.close()


async def test_a_request_that_completes_its_headers_in_time_is_served_past_the_deadline(
    tmp_path: Path,
) -> None:
    async with start_gateway(tmp_path, gateway={"header_timeout": 0.5}) as gateway:
        client = gateway.client()
        held = asyncio.ensure_future(client.chat.completions.create(model="hold", messages=USER))  # type: ignore[arg-type]
        await gateway.gate.entered.wait()
        # its connection outlives the deadline of a connection opened after it
        late = await RawConnection.open(gateway.url)
        try:
            await asyncio.wait_for(late.closed(), CLOSED_WITHIN)
        finally:
            late.close()
        gateway.gate.open()
        reply = await held
        assert reply.choices[0].message.content


async def test_connections_over_max_connections_get_503_until_others_close(
    tmp_path: Path,
) -> None:
    # 2 s: the held ones must still be open when the one over the cap arrives
    limits = {"max_connections": 3, "header_timeout": 2.0}
    async with start_gateway(tmp_path, gateway=limits) as gateway:
        held = [await RawConnection.open(gateway.url) for _ in range(3)]
        try:
            over = await RawConnection.open(gateway.url)
            try:
                await over.send(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                status, headers, body = await over.response()
                assert status == 503 and headers["connection"] == "close"
                assert body["error"]["code"] == "too_many_connections"
                assert "gateway.max_connections" in body["error"]["message"]
                await asyncio.wait_for(over.closed(), CLOSED_WITHIN)
            finally:
                over.close()
            await asyncio.wait_for(asyncio.gather(*(raw.closed() for raw in held)), CLOSED_WITHIN)
        finally:
            for raw in held:
                raw.close()
        assert await echo(gateway) == "echo: hello"


# -- both of uvicorn's HTTP implementations -------------------------------------------------


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


@contextlib.asynccontextmanager
async def bare_server(base: type[asyncio.Protocol], **limits: float) -> AsyncIterator[str]:
    """uvicorn with ``hello`` on a free loopback port, its protocol ``base`` guarded."""
    sock = socket.create_server(("127.0.0.1", 0))
    protocol = guarded_protocol(base=base, **limits)  # type: ignore[arg-type]
    config = uvicorn.Config(hello, http=protocol, lifespan="off", log_config=None)
    server = _Server(config)  # the gateway's: no signal handlers, a ready event
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        await server.ready.wait()
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.mark.parametrize("base", [HttpToolsProtocol, H11Protocol], ids=["httptools", "h11"])
async def test_both_http_implementations_close_half_requests_and_cap_connections(
    base: type[asyncio.Protocol],
) -> None:
    async with bare_server(base, header_timeout=2.0, max_connections=4) as url:
        held = [await RawConnection.open(url) for _ in range(3)]
        try:
            await held[1].send(b"GET / HTTP/1.1\r\n")
            served = await RawConnection.open(url)
            over = await RawConnection.open(url)
            try:
                for raw, expected in ((served, 200), (over, 503)):
                    await raw.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                    status, _, _ = await raw.response()
                    assert status == expected
            finally:
                served.close()
                over.close()
            await asyncio.wait_for(asyncio.gather(*(r.closed() for r in held)), CLOSED_WITHIN)
        finally:
            for raw in held:
                raw.close()
